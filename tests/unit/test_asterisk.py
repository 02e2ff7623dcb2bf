"""stream/asterisk.py by hand: the queue_log day of tests/data/queue_log (every event app_queue
writes, after the Asterisk documentation's "Queue Logs" page) mapped line by line to the v1
events worked out from adapters.md, then its figures through the pure engine."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccmon.figures import engine_figures
from ccmon.settings import load
from ccmon.stream.asterisk import QueueLog
from ccmon.stream.engine import EngineConfig, Pipeline, Record
from tests.support import DATA

DAY = DATA / "queue_log"
T0 = 1_772_438_400  # 2026-03-02T08:00:00Z, the first line of the day
C1, C2, C3, C4 = "1772438500.11", "1772438700.14", "1772438800.17", "1772439100.20"
C5, C6, C7, C8, C9 = ("1772439400.23", "1772439610.26", "1772439700.29", "1772439900.32",
                      "1772440200.35")
ALICE, BOB, CAROL, DAN = "PJSIP/6001", "PJSIP/6002", "Agent/1001", "Agent/1002"
BOTH = ["sales", "support"]

# (seconds after T0, type, contact or agent, what: queue | to_queue | state, agent's queues)
# in the order the lines produce them; the comments say which line and why.
DAY_EVENTS = [
    (60, "agent.state", ALICE, "available", ["support"]),  # ADDMEMBER
    (61, "agent.state", ALICE, "available", BOTH),
    (62, "agent.state", BOB, "available", ["support"]),
    (70, "agent.state", CAROL, "available", []),  # AGENTLOGIN: no queue known yet
    (75, "agent.state", DAN, "available", []),  # AGENTCALLBACKLOGIN
    (100, "contact.queued", C1, "support", None),
    (110, "contact.answered", C1, ALICE, None),  # CONNECT
    (110, "agent.state", ALICE, "busy", BOTH),
    (250, "contact.ended", C1, None, None),  # COMPLETECALLER
    (250, "agent.state", ALICE, "available", BOTH),
    (300, "contact.queued", C2, "sales", None),
    (345, "contact.abandoned", C2, None, None),  # ABANDON
    (400, "contact.queued", C3, "support", None),
    (460, "contact.abandoned", C3, None, None),  # EXITWITHTIMEOUT
    (461, "contact.queued", C3 + "#2", "sales", None),  # the overflow: a new contact
    (470, "contact.answered", C3 + "#2", CAROL, None),
    (470, "agent.state", CAROL, "busy", ["sales"]),  # a static member: its queue from the call
    (600, "contact.ended", C3 + "#2", None, None),  # COMPLETEAGENT
    (600, "agent.state", CAROL, "available", ["sales"]),
    (700, "contact.queued", C4, "support", None),
    (705, "contact.answered", C4, BOB, None),
    (705, "agent.state", BOB, "busy", ["support"]),
    (800, "agent.state", BOB, "available", ["support"]),  # BLINDTRANSFER frees Bob
    (800, "contact.transferred", C4, "sales", None),  # ENTERQUEUE sales 3 s later: at 800
    (820, "contact.answered", C4, ALICE, None),
    (820, "agent.state", ALICE, "busy", BOTH),
    (900, "contact.ended", C4, None, None),
    (900, "agent.state", ALICE, "available", BOTH),
    (1000, "contact.queued", C5, "support", None),
    (1002, "contact.answered", C5, BOB, None),
    (1002, "agent.state", BOB, "busy", ["support"]),
    (1100, "agent.state", BOB, "available", ["support"]),  # ATTENDEDTRANSFER to a phone
    (1100, "contact.ended", C5, None, None),  # no ENTERQUEUE by 1110: told by the line at 1200
    (1200, "agent.state", BOB, "away", ["support"]),  # PAUSE
    (1201, "agent.state", ALICE, "away", BOTH),  # PAUSEALL; its per-queue PAUSEs change nothing
    (1210, "contact.queued", C6, "support", None),
    (1215, "contact.abandoned", C6, None, None),  # EXITEMPTY
    (1300, "contact.queued", C7, "sales", None),  # caller id "anonymous": no customer
    (1312, "contact.abandoned", C7, None, None),  # EXITWITHKEY
    (1400, "agent.state", ALICE, "available", BOTH),  # UNPAUSEALL
    (1401, "agent.state", BOB, "available", ["support"]),
    (1500, "contact.queued", C8, "sales", None),
    (1504, "contact.answered", C8, ALICE, None),
    (1504, "agent.state", ALICE, "busy", BOTH),
    (1600, "agent.state", ALICE, "available", BOTH),  # TRANSFER (the old 4-field form)
    (1600, "contact.ended", C8, None, None),  # its ENTERQUEUE came 15 s later: ended
    (1615, "contact.queued", C8 + "#2", "support", None),
    (1620, "contact.answered", C8 + "#2", BOB, None),
    (1620, "agent.state", BOB, "busy", ["support"]),
    (1700, "contact.ended", C8 + "#2", None, None),
    (1700, "agent.state", BOB, "available", ["support"]),
    (1800, "contact.queued", C9, "support", None),
    (1830, "contact.answered", C9, BOB, None),  # the second CONNECT is out of order
    (1830, "agent.state", BOB, "busy", ["support"]),
    (1900, "contact.ended", C9, None, None),
    (1900, "agent.state", BOB, "available", ["support"]),
    (2000, "agent.state", ALICE, "available", ["support"]),  # REMOVEMEMBER sales
    (2001, "agent.state", CAROL, "offline", ["sales"]),  # AGENTLOGOFF
    (2002, "agent.state", DAN, "offline", []),  # AGENTCALLBACKLOGOFF
    (2003, "agent.state", BOB, "available", []),  # REMOVEMEMBER of its last queue
]
CUSTOMERS = {C1: "5551001", C2: "5551002", C3: "5551003", C3 + "#2": "5551003",
             C4: "5551004", C5: "5551005", C6: "5551006", C8: "5551008",
             C8 + "#2": "5551008", C9: "5551009"}
DAY_SKIPPED = {"queuestart": 1, "configreload": 1, "did": 1, "ringnoanswer": 1,
               "ringcanceled": 1, "unknown_call": 1, "syscompat": 1, "out_of_order": 1,
               "agentdump": 1, "unknown_event": 1}
DAY_MALFORMED = ["not_utf8", "too_few_fields", "bad_epoch", "bad_field", "bad_event"]


def run(lines: list[bytes], mapper: QueueLog | None = None):
    mapper = mapper or QueueLog()
    events, skipped, malformed = [], {}, []
    for line in lines:
        outcome = mapper.feed(line)
        events += outcome.events
        if outcome.skipped:
            skipped[outcome.skipped] = skipped.get(outcome.skipped, 0) + 1
        if outcome.malformed:
            malformed.append(outcome.malformed[0])
    return events, skipped, malformed, mapper


def brief(event: dict) -> tuple:
    what = event.get("queue") or event.get("to_queue") or event.get("state") or event.get(
        "agent_id") if event["type"] != "contact.answered" else event["agent_id"]
    if event["type"] in ("contact.ended", "contact.abandoned"):
        what = None
    name = event.get("contact_id") or event["agent_id"]
    return (event["ts"] - T0, event["type"], name, what, event.get("queues"))


def day_lines() -> list[bytes]:
    return DAY.read_bytes().splitlines(keepends=True)


def test_the_day_maps_to_the_events_worked_out_by_hand():
    events, skipped, malformed, mapper = run(day_lines())
    assert [brief(e) for e in events] == DAY_EVENTS
    assert {e["contact_id"]: e["customer_id"] for e in events
            if e["type"] == "contact.queued" and "customer_id" in e} == CUSTOMERS
    assert skipped == DAY_SKIPPED
    assert malformed == DAY_MALFORMED
    assert mapper.finish() == []
    assert all(e.get("channel", "voice") == "voice" for e in events)
    assert len({e["event_id"] for e in events}) == len(events)


# The day's figures with one 1d window at its last event (T0 + 2003 s). support: offered C1,
# C3, C4, C5, C6, C8#2, C9 = 7; answered C1 (wait 10), C4 (5), C5 (2), C8#2 (5), C9 (30) = 5;
# abandoned C3 (60), C6 (5: not short, under 5 s is) = 2; C4 transferred out. sales: offered
# C2, C3#2, C7, C8 and C4 transferred in = 5; answered C3#2 (9), C4 (20, from the transfer at
# 800), C8 (4) = 3; abandoned C2 (45), C7 (12) = 2. Handle (answer to end or transfer, in the
# answering queue): support 140, 95, 98, 80, 70; sales 130, 80, 96.
HAND = {
    ("ccmon_offered_contacts", "support"): 7, ("ccmon_offered_contacts", "sales"): 5,
    ("ccmon_answered_contacts", "support"): 5, ("ccmon_answered_contacts", "sales"): 3,
    ("ccmon_abandoned_contacts", "support"): 2, ("ccmon_abandoned_contacts", "sales"): 2,
    ("ccmon_short_abandoned_contacts", "support"): 0,
    ("ccmon_transferred_contacts", "support"): 1, ("ccmon_transferred_contacts", "sales"): 0,
    ("ccmon_answered_within_threshold_contacts", "support"): 4,  # all but C9's 30 s
    ("ccmon_answered_within_threshold_contacts", "sales"): 3,  # 20 s is within T = 20
    ("ccmon_answer_wait_seconds_avg", "support"): 52 / 5,
    ("ccmon_answer_wait_seconds_avg", "sales"): 33 / 3,
    ("ccmon_abandon_wait_seconds_avg", "support"): 65 / 2,
    ("ccmon_abandon_wait_seconds_avg", "sales"): 57 / 2,
    ("ccmon_handle_seconds_avg", "support"): 483 / 5,
    ("ccmon_handle_seconds_avg", "sales"): 306 / 3,
    ("ccmon_service_level_ratio", "support"): 4 / 7,
    ("ccmon_service_level_ratio", "sales"): 3 / 5,
    ("ccmon_abandon_ratio", "support"): 2 / 7,
    ("ccmon_queue_waiting_contacts", "support"): 0,
    ("ccmon_contacts_in_conversation", "sales"): 0,
}
# The roster at the end: Alice available in support only, Carol offline in sales; Bob left
# every queue.
HAND_AGENTS = {("support", "available"): 1, ("support", "busy"): 0, ("sales", "offline"): 1,
               ("sales", "available"): 0}


def value(figures: dict, name: str, queue: str, **labels: str) -> float:
    wanted = {"queue": queue, "channel": "voice", "window": "1d", **labels}
    found = [v for (n, ls), v in figures.items()
             if n == name and dict(ls).items() <= wanted.items()]
    assert len(found) == 1, (name, queue, found)
    return found[0]


def hand_figures_hold(figures: dict, days: int = 1) -> bool:
    """The day's hand figures, for `days` copies of it an hour apart (counts times `days`)."""
    def scaled(name: str, wanted: float) -> float:
        return wanted * days if name.endswith("_contacts") and "waiting" not in name \
            and "conversation" not in name else wanted
    try:
        return all(value(figures, name, queue) == pytest.approx(scaled(name, wanted), rel=1e-12)
                   for (name, queue), wanted in HAND.items()) and all(
            value(figures, "ccmon_agents", queue, state=state) == wanted
            for (queue, state), wanted in HAND_AGENTS.items())
    except AssertionError:
        return False


def test_the_days_figures_by_hand():
    figures = engine_figures([orjson.dumps(e) for e in run(day_lines())[0]],
                             load(environ={"CCMON_WINDOWS": "1d"}))
    for (name, queue), wanted in HAND.items():
        assert value(figures, name, queue) == pytest.approx(wanted, rel=1e-12), (name, queue)
    for (queue, state), wanted in HAND_AGENTS.items():
        assert value(figures, "ccmon_agents", queue, state=state) == wanted
    assert hand_figures_hold(figures)


def test_the_engine_takes_every_event_of_the_day():
    events = run(day_lines())[0]
    pipeline = Pipeline(EngineConfig.from_settings(load(environ={})))
    records = [Record("agents:0" if e["type"] == "agent.state" else "voice:0", i,
                      None if e["type"] == "agent.state" else "voice", orjson.dumps(e))
               for i, e in enumerate(events)]
    dead = pipeline.feed(records)
    assert not dead, dead[:3]


def line(t: int, callid: str, queue: str, agent: str, event: str, *data: str) -> bytes:
    return "|".join([str(T0 + t), callid, queue, agent, event, *data]).encode() + b"\n"


def call_until_transfer(transfer: str = "BLINDTRANSFER") -> list[bytes]:
    return [line(0, "c", "q1", "NONE", "ENTERQUEUE", "", "555", "1"),
            line(5, "c", "q1", "a1", "CONNECT", "5", "x", "1"),
            line(50, "c", "q1", "a1", transfer, "100", "ctx", "5", "45", "1")]


def test_an_enterqueue_10_s_after_the_transfer_continues_the_contact():
    events = run([*call_until_transfer(), line(60, "c", "q2", "NONE", "ENTERQUEUE", "", "555")])[0]
    moved = [e for e in events if e["type"] == "contact.transferred"]
    assert [(m["ts"] - T0, m["contact_id"], m["to_queue"]) for m in moved] == [(50, "c", "q2")]


def test_an_enterqueue_11_s_after_the_transfer_is_a_new_contact():
    events = run([*call_until_transfer("ATTENDEDTRANSFER"),
                  line(61, "c", "q2", "NONE", "ENTERQUEUE", "", "555")])[0]
    tail = [(e["ts"] - T0, e["type"], e["contact_id"]) for e in events if "contact_id" in e][-2:]
    assert tail == [(50, "contact.ended", "c"), (61, "contact.queued", "c#2")]


def test_a_transfer_still_open_at_the_end_of_the_file_ended_there():
    events, _, _, mapper = run(call_until_transfer("TRANSFER"))
    assert not any(e["type"] == "contact.ended" for e in events)
    assert [(e["ts"] - T0, e["type"]) for e in mapper.finish()] == [(50, "contact.ended")]
    assert mapper.finish() == []


def test_another_line_of_the_transferred_call_ends_it_at_the_transfer():
    events, skipped, _, _ = run([*call_until_transfer(),
                                 line(52, "c", "q1", "a1", "COMPLETECALLER", "5", "45", "1")])
    assert events[-1]["type"] == "contact.ended" and events[-1]["ts"] == T0 + 50
    assert skipped == {"unknown_call": 1}


def test_resuming_from_the_serialised_state_gives_the_same_events():
    lines = day_lines()
    whole = run(lines)[0]
    for cut in range(len(lines) + 1):
        first = run(lines[:cut])
        state = json.loads(json.dumps(first[3].to_json()))  # as the position file holds it
        assert first[0] + run(lines[cut:], QueueLog(state))[0] == whole, cut


def test_the_same_line_gives_the_same_event_ids():
    assert run(day_lines())[0] == run(day_lines())[0]
    events = run([line(0, "c", "q", "NONE", "ENTERQUEUE", "", "1"),
                  line(0, "d", "q", "NONE", "ENTERQUEUE", "", "1")])[0]
    assert events[0]["event_id"] != events[1]["event_id"]


def test_lines_that_do_not_parse_are_malformed():
    cases = {b"1|2|3|4\n": "too_few_fields", b"-5|c|q|NONE|ENTERQUEUE|\n": "bad_epoch",
             b"0|c|q|NONE|ENTERQUEUE|\n": "bad_ts", b"9" * 5000 + b"|c|q|a|PAUSE\n": "bad_ts",
             b"253402300800|c|q|NONE|ENTERQUEUE|\n": "bad_ts", b"1|c|q|a|\n": "bad_event",
             b"1|c||NONE|ENTERQUEUE||1\n": "bad_field", b"1|c|q|NONE|CONNECT|1\n": "unknown",
             b"\xc3(|c|q|a|PAUSE\n": "not_utf8"}
    for raw, reason in cases.items():
        outcome = QueueLog().feed(raw)
        if reason == "unknown":  # parses: a CONNECT of a call never seen is skipped
            assert outcome.skipped == "unknown_call" and outcome.malformed is None
        else:
            assert outcome.malformed and outcome.malformed[0] == reason, raw
    assert QueueLog().feed(b"\n").events == []  # a blank line says nothing
    assert QueueLog().feed(b"\r\n").skipped is None


EVENT_NAMES = ["ENTERQUEUE", "CONNECT", "COMPLETECALLER", "COMPLETEAGENT", "ABANDON",
               "EXITWITHTIMEOUT", "EXITEMPTY", "EXITWITHKEY", "RINGNOANSWER", "TRANSFER",
               "BLINDTRANSFER", "ATTENDEDTRANSFER", "ADDMEMBER", "REMOVEMEMBER", "PAUSE",
               "UNPAUSE", "PAUSEALL", "UNPAUSEALL", "AGENTLOGIN", "AGENTLOGOFF", "X"]
queue_lines = st.lists(st.tuples(
    st.integers(0, 30), st.sampled_from(["1.1", "1.2", "1.3", "NONE"]),
    st.sampled_from(["q1", "q2", "NONE", ""]), st.sampled_from(["a1", "a2", "NONE"]),
    st.sampled_from(EVENT_NAMES), st.lists(st.text(max_size=5), max_size=4)), max_size=60)


@given(st.lists(st.binary(max_size=80), max_size=30))
def test_any_bytes_never_make_the_mapper_raise(lines):
    mapper = QueueLog()
    for raw in lines:
        outcome = mapper.feed(raw)
        assert outcome.malformed is None or not outcome.events
    mapper.finish()
    json.dumps(mapper.to_json())


@given(queue_lines)
def test_any_queue_log_gives_events_the_monitor_applies(rows):
    """In time order (as Asterisk writes it), whatever the events: every v1 event the mapper
    sends is valid and keeps the lifecycle, so the monitor dead-letters none of them."""
    mapper, t, events = QueueLog(), 0, []
    for step, callid, queue, agent, event, data in rows:
        t += step
        raw = "|".join([str(T0 + t), callid, queue, agent, event, *data]).encode()
        events += mapper.feed(raw).events
    events += mapper.finish()
    pipeline = Pipeline(EngineConfig.from_settings(load(environ={})))
    dead = pipeline.feed([Record("x:0", i, None if e["type"] == "agent.state" else "voice",
                                 orjson.dumps(e)) for i, e in enumerate(events)])
    assert not dead, (dead[:1], events)
