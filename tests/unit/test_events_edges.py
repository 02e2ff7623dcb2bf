"""The edges of events.md, field by field, through `decode`: each limit of the contract on
both sides (the last value accepted, the first refused) and the reason code each refusal gets.
Expectations are read off events.md (envelope, types, "Precise points (version 1.1)")."""

from __future__ import annotations

import itertools
import json

import pytest

from ccmon.stream.events import BadEvent, Event, decode

BOM = b"\xef\xbb\xbf"
# 10000-01-01T00:00:00Z in Unix ms: 8030 years of 365 days from 1970 plus their 1947 leap
# days (2007 multiples of 4, less 80 of 100, plus 20 of 400), times 86 400 000.
END_MS = (8030 * 365 + 1947) * 86_400_000


def raw(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def queued(**changes: object) -> dict:
    event = {"event_id": "e1", "type": "contact.queued", "ts": 0, "contact_id": "c1",
             "queue": "billing"}
    event.update(changes)
    return {k: v for k, v in event.items() if v is not ...}


def agent(**changes: object) -> dict:
    event = {"event_id": "e1", "type": "agent.state", "ts": 0, "agent_id": "a1",
             "state": "available", "queues": ["billing"]}
    event.update(changes)
    return {k: v for k, v in event.items() if v is not ...}


def reason(value: bytes | dict | None, topic: str | None = "voice") -> str | None:
    """The reason code `decode` refuses a value with, None when it accepts it."""
    if isinstance(value, dict):
        value = json.dumps(value).encode()
    try:
        decode(value, topic)
    except BadEvent as bad:
        return bad.reason
    return None


def ok(value: bytes | dict, topic: str | None = "voice") -> Event:
    return decode(json.dumps(value).encode() if isinstance(value, dict) else value, topic)


# -- the message value -------------------------------------------------------------------------

def test_a_leading_byte_order_mark_is_dropped_and_only_there():
    assert ok(BOM + raw(**queued())).queue == "billing"
    assert reason(b" " + BOM + raw(**queued())) == "invalid_json"
    assert reason(BOM) == "invalid_json"  # nothing left but an empty value


@pytest.mark.parametrize(("value", "code"), [
    (None, "invalid_json"),  # a tombstone
    (b"", "invalid_json"),
    (b"\xff\xfe{}", "not_utf8"),
    (b'{"event_id": "\xe9"}', "not_utf8"),  # Latin-1, not UTF-8
    (b"{", "invalid_json"),
    ('{"a": 1', "invalid_json"),  # a str (not bytes) that is not JSON
    (b"NaN", "invalid_json"),  # not JSON
    (b'{"ts": NaN}', "invalid_json"),
    (b"[]", "not_object"), (b'"x"', "not_object"), (b"1e400", "not_object"),
    (b"null", "not_object"),
])
def test_values_that_are_not_a_json_object(value, code):
    assert reason(value) == code


def test_numbers_beyond_a_double_are_judged_by_their_field():
    # events.md 1.1: a ts outside 1970-9999 is bad_ts, a wrap above a day bad_value, even
    # when the number overflows a double; broken JSON around such a number stays invalid.
    assert reason(b'{"event_id":"e","type":"contact.queued","ts":1e400}') == "bad_ts"
    assert reason(b'{"event_id":"e","type":"contact.queued","ts":-1e400}') == "bad_ts"
    assert reason(b'{"event_id":"e","type":"contact.ended","ts":0,"contact_id":"c",'
                  b'"wrap_seconds":1e400}') == "bad_value"
    assert reason(b'{"ts":1e400') == "invalid_json"
    assert reason(b'{"ts":1e400, "n": NaN}') == "invalid_json"
    assert reason(b'{"ts":1e400, "n": Infinity}') == "invalid_json"


# -- the envelope ------------------------------------------------------------------------------

@pytest.mark.parametrize(("event_id", "code"), [
    ("e", None), ("e" * 128, None), ("e" * 129, "bad_value"), ("", "bad_value"),
    (..., "missing_field"), (None, "missing_field"), (7, "wrong_type"), (["e"], "wrong_type"),
])
def test_event_id_is_1_to_128_characters(event_id, code):
    assert reason(queued(event_id=event_id)) == code


@pytest.mark.parametrize(("kind", "code"), [
    (..., "missing_field"), (None, "missing_field"), (1, "wrong_type"),
    ("contact.created", "unknown_type"), ("Contact.queued", "unknown_type"),
    ("agent.states", "unknown_type"),
])
def test_type_is_one_of_the_v1_types(kind, code):
    assert reason(queued(type=kind)) == code


@pytest.mark.parametrize(("ts", "ms"), [
    (0, 0), (0.001, 1), (1.5, 1500),
    # the last millisecond of 9999 as epoch seconds, and as RFC 3339
    (253_402_300_799.999, END_MS - 1), ("9999-12-31T23:59:59.999Z", END_MS - 1),
    ("1970-01-01T00:00:00Z", 0), ("1970-01-01T01:00:00+01:00", 0),
    ("2026-11-22T09:30:00Z", 1_795_339_800_000),  # exactly 20 characters, the shortest
    ("2026-11-22 09:30:00Z", 1_795_339_800_000), ("2026-11-22t09:30:00.5z", 1_795_339_800_500),
])
def test_ts_forms_at_the_edges_of_years_1970_to_9999(ts, ms):
    assert ok(queued(ts=ts)).ts == ms


@pytest.mark.parametrize("ts", [
    -0.001, -1, END_MS / 1000, END_MS // 1000 + 1, 1e300, False, True, [0], {"s": 0},
    "1969-12-31T23:59:59.999Z", "10000-01-01T00:00:00Z", "9999-12-31T23:59:59-00:01",
    "9999-12-31T23:00:00-01:00",  # 10000-01-01T00:00:00Z itself, the first instant refused
    "0001-01-01T00:00:00Z", "", "z", "Z",
    "2026-11-22T09:30Z", "2026-11-22T09:30+01",  # no seconds: not RFC 3339
    "2026-11-22T09:30:00~", "2026-11-22T09:30:00\u00e9",  # no offset, a letter after "z"
    "2026-11-22X09:30:00Z", "2026-11-22T09:30:00",  # another separator; no offset
    # ISO 8601 that RFC 3339 is not: a week date, no colons, an offset without its colon
    "2026-W47-7T09:30:00Z", "2026-11-22T093000+01", "2026-11-22T09:30:00+0100",
    "2026-11-22T09:30:00.Z", "+2026-11-22T09:30:00Z", "2026-11-22T09:30:00Z ",
])
def test_ts_refused(ts):
    assert reason(queued(ts=ts)) == "bad_ts"


def test_ts_missing_is_a_missing_field():
    assert reason(queued(ts=...)) == "missing_field"


def test_channel_defaults_to_the_topic_and_must_agree_with_it():
    assert ok(queued()).channel == "voice"
    assert ok(queued(channel=None), "chat").channel == "chat"
    assert ok(queued(channel="social"), "social").channel == "social"
    assert ok(queued(channel="chat"), None).channel == "chat"  # a topic of no channel
    for given, topic in itertools.permutations(("voice", "chat", "social"), 2):
        assert reason(queued(channel=given), topic) == "channel_mismatch"
    assert reason(queued(channel="fax")) == "bad_value"
    assert reason(queued(channel="Voice")) == "bad_value"
    assert reason(queued(channel=1)) == "wrong_type"
    assert reason(queued(), None) == "missing_field"  # no channel anywhere


# -- contact events ----------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "required"), [
    ("contact_id", True), ("queue", True), ("customer_id", False),
])
def test_names_of_a_queued_contact_are_1_to_256_characters(name, required):
    assert getattr(ok(queued(**{name: "n" * 256})), name) == "n" * 256
    assert getattr(ok(queued(**{name: "n"})), name) == "n"
    assert reason(queued(**{name: "n" * 257})) == "bad_value"
    assert reason(queued(**{name: ""})) == "bad_value"
    assert reason(queued(**{name: 5})) == "wrong_type"
    assert reason(queued(**{name: ...})) == ("missing_field" if required else None)
    assert reason(queued(**{name: None})) == ("missing_field" if required else None)


def test_a_queued_contact_read_whole():
    event = ok(queued(event_id="e9", ts="2026-11-22T09:00:00Z", customer_id="u9"), "chat")
    assert event == Event("e9", "contact.queued", 1_795_338_000_000, "chat", "c1",
                          queue="billing", customer_id="u9")


def test_answered_transferred_and_hold_fields():
    answered = ok(queued(type="contact.answered", queue=..., agent_id="a7"))
    assert (answered.agent_id, answered.queue) == ("a7", None)
    assert ok(queued(type="contact.answered", queue=...)).agent_id is None
    assert reason(queued(type="contact.answered", agent_id="a" * 257)) == "bad_value"
    assert ok(queued(type="contact.transferred", to_queue="sales")).to_queue == "sales"
    assert reason(queued(type="contact.transferred")) == "missing_field"
    assert reason(queued(type="contact.transferred", to_queue="")) == "bad_value"
    for kind in ("contact.hold_started", "contact.hold_ended", "contact.abandoned"):
        event = ok(queued(type=kind, queue=...))
        assert (event.type, event.contact_id, event.queue) == (kind, "c1", None)
        assert reason(queued(type=kind, contact_id=...)) == "missing_field"


def test_fields_of_other_types_are_not_judged():
    # events.md lists each type's fields; another type's field on an event is not its own.
    abandoned = ok(queued(type="contact.abandoned", resolved="yes", wrap_seconds=-5,
                          agent_id=""))
    assert (abandoned.wrap_ms, abandoned.resolved, abandoned.agent_id) == (0, None, None)
    assert ok(queued(type="contact.hold_ended", to_queue=7, kind="x")).type == "contact.hold_ended"
    assert ok(queued(type="contact.answered", queue="", wrap_seconds="x")).queue is None
    assert ok(agent(contact_id=5, queue="")).queue is None


@pytest.mark.parametrize(("wrap", "wrap_ms"), [
    (..., 0), (None, 0), (0, 0), (0.0, 0), (20, 20_000), (20.5, 20_500), (0.001, 1),
    (86_400, 86_400_000),  # one day, the most events.md 1.1 allows
])
def test_wrap_seconds_from_0_to_a_day(wrap, wrap_ms):
    assert ok(queued(type="contact.ended", wrap_seconds=wrap)).wrap_ms == wrap_ms


@pytest.mark.parametrize(("wrap", "code"), [
    (-0.001, "bad_value"), (-1, "bad_value"), (86_400.001, "bad_value"), (86_401, "bad_value"),
    (True, "wrong_type"), (False, "wrong_type"), ("20", "wrong_type"), ([20], "wrong_type"),
])
def test_wrap_seconds_refused(wrap, code):
    assert reason(queued(type="contact.ended", wrap_seconds=wrap)) == code


def test_resolved_is_an_optional_boolean():
    assert ok(queued(type="contact.ended", resolved=True)).resolved is True
    assert ok(queued(type="contact.ended", resolved=False)).resolved is False
    assert ok(queued(type="contact.ended")).resolved is None
    assert ok(queued(type="contact.ended", resolved=None)).resolved is None
    assert reason(queued(type="contact.ended", resolved=1)) == "wrong_type"
    assert reason(queued(type="contact.ended", resolved="true")) == "wrong_type"


# -- surveys -----------------------------------------------------------------------------------

def survey(**changes: object) -> dict:
    event = queued(type="survey.submitted", queue=..., kind="csat", score=4)
    event.update(changes)
    return {k: v for k, v in event.items() if v is not ...}


@pytest.mark.parametrize(("kind", "low", "high"), [("csat", 1, 5), ("nps", 0, 10),
                                                   ("ces", 1, 7)])
def test_survey_scores_within_their_kind(kind, low, high):
    for score in (low, high):
        event = ok(survey(kind=kind, score=score))
        assert (event.kind, event.score, event.queue) == (kind, score, None)
    assert reason(survey(kind=kind, score=low - 1)) == "bad_value"
    assert reason(survey(kind=kind, score=high + 1)) == "bad_value"


@pytest.mark.parametrize(("changes", "code"), [
    ({"kind": ...}, "missing_field"), ({"kind": None}, "missing_field"),
    ({"kind": 1}, "wrong_type"), ({"kind": "CSAT"}, "bad_value"), ({"kind": "csat5"}, "bad_value"),
    ({"score": ...}, "missing_field"), ({"score": None}, "missing_field"),
    ({"score": True}, "wrong_type"), ({"score": 4.0}, "wrong_type"),
    ({"score": "4"}, "wrong_type"), ({"queue": ""}, "bad_value"), ({"queue": 3}, "wrong_type"),
])
def test_survey_refused(changes, code):
    assert reason(survey(**changes)) == code


def test_a_survey_may_name_its_queue():
    assert ok(survey(queue="q" * 256)).queue == "q" * 256


# -- agent events ------------------------------------------------------------------------------

def test_an_agent_event_read_whole():
    event = ok(agent(state="acw", queues=["b", "a", "b"], channel=None), None)
    # Repeated queue names count once, in their first order.
    assert event == Event("e1", "agent.state", 0, None, agent_id="a1", state="acw",
                          queues=("b", "a"))
    assert ok(agent(queues=[])).queues == ()
    assert ok(agent(channel="voice"), "voice").channel is None  # agents have no channel
    assert ok(agent(queues=["q" * 256], agent_id="a" * 256)).queues == ("q" * 256,)
    for state in ("available", "busy", "acw", "away", "offline"):
        assert ok(agent(state=state), None).state == state


@pytest.mark.parametrize(("changes", "code"), [
    ({"agent_id": ...}, "missing_field"), ({"agent_id": ""}, "bad_value"),
    ({"agent_id": "a" * 257}, "bad_value"),
    ({"state": ...}, "missing_field"), ({"state": None}, "missing_field"),
    ({"state": 1}, "wrong_type"), ({"state": "lunch"}, "bad_value"),
    ({"state": "Available"}, "bad_value"),
    ({"queues": ...}, "missing_field"), ({"queues": None}, "missing_field"),
    ({"queues": "billing"}, "wrong_type"), ({"queues": ["a", 1]}, "wrong_type"),
    ({"queues": {"billing": 1}}, "wrong_type"),
    ({"queues": ["a", ""]}, "bad_value"), ({"queues": ["q" * 257, "a"]}, "bad_value"),
    ({"channel": "chat"}, "channel_mismatch"), ({"channel": "fax"}, "bad_value"),
])
def test_agent_event_refused(changes, code):
    assert reason(agent(**changes)) == code
