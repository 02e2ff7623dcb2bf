"""stream/connect.py by hand: a morning of one Amazon Connect instance (tests/data/connect.jsonl,
messages shaped as the AWS documentation's "Amazon Connect contact events" and "Agent event
streams data model" pages show them) mapped to the v1 events worked out from adapters.md,
then its figures through the pure engine."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccmon.figures import engine_figures
from ccmon.settings import load
from ccmon.stream.connect import Connect
from ccmon.stream.engine import EngineConfig, Pipeline, Record
from tests.support import DATA

MORNING = DATA / "connect.jsonl"
T0 = 1_772_442_000  # 2026-03-02T09:00:00Z
ANA, BEN = "0a1b2c3d-aaaa-4bbb-8ccc-000000000001", "0a1b2c3d-aaaa-4bbb-8ccc-000000000002"
BOTH = ["billing", "support"]

# (seconds after T0, type, contact or agent, queue | to_queue | agent | state, channel or queues)
MORNING_EVENTS = [
    (0, "agent.state", ANA, "available", BOTH),  # LOGIN, status Available (ROUTABLE)
    (1, "agent.state", BEN, "offline", ["support"]),  # LOGIN while Offline
    (5, "agent.state", BEN, "available", ["support"]),
    (12, "contact.queued", "c-a", "billing", "voice"),  # INITIATED at 10 says nothing
    (20, "contact.answered", "c-a", ANA, "voice"),
    (20, "agent.state", ANA, "busy", BOTH),
    (60, "contact.hold_started", "c-a", None, "voice"),  # CONNECTED -> CONNECTED_ONHOLD
    (90, "contact.hold_ended", "c-a", None, "voice"),
    (150, "agent.state", ANA, "acw", BOTH),  # its contact ENDED: after-contact work
    (150, "contact.ended", "c-a", None, "voice"),  # no transfer by 160: told at 170
    (170, "agent.state", ANA, "available", BOTH),
    (201, "contact.queued", "c-b", "support", "chat"),
    (215, "contact.answered", "c-b", BEN, "chat"),
    (215, "agent.state", BEN, "busy", ["support"]),
    (400, "agent.state", BEN, "available", ["support"]),
    (400, "contact.ended", "c-b", None, "chat"),  # told by C's INITIATED at 420
    (421, "contact.queued", "c-c", "support", "voice"),
    (481, "contact.abandoned", "c-c", None, "voice"),  # DISCONNECTED while queued
    (502, "contact.queued", "c-d", "billing", "voice"),
    (510, "contact.answered", "c-d", ANA, "voice"),
    (510, "agent.state", ANA, "busy", BOTH),
    (600, "agent.state", ANA, "acw", BOTH),
    (602, "contact.transferred", "c-d", "support", "voice"),  # c-d2's QUEUED: one contact
    (605, "agent.state", ANA, "available", BOTH),
    (612, "contact.answered", "c-d", BEN, "voice"),
    (612, "agent.state", BEN, "busy", ["support"]),
    (700, "agent.state", BEN, "acw", ["support"]),
    (700, "contact.ended", "c-d", None, "voice"),  # told at 720
    (720, "agent.state", BEN, "away", ["support"]),  # status Break (CUSTOM)
    (900, "agent.state", BEN, "offline", ["support"]),  # LOGOUT
    (901, "agent.state", ANA, "offline", BOTH),
]
MORNING_SKIPPED = {"channel": 1, "contact_data_updated": 1, "completed": 1, "detail_type": 1}
MORNING_MALFORMED = ["invalid_json", "not_object", "bad_field"]

# One 1d window at the last event (T0 + 901). billing voice: offered c-a (12), c-d (502);
# answered both after 8 s; c-d transferred out; handle c-a 20 -> 150 = 130, c-d 510 -> 602
# (its transfer) = 92; one hold of 30 s. support voice: offered c-c (421) and c-d transferred
# in (602); answered c-d after 10 s; c-c abandoned after 60 s; handle c-d 612 -> 700 = 88.
# support chat: c-b offered, answered after 14 s, handle 215 -> 400 = 185.
HAND = {
    ("ccmon_offered_contacts", "billing", "voice"): 2,
    ("ccmon_answered_contacts", "billing", "voice"): 2,
    ("ccmon_transferred_contacts", "billing", "voice"): 1,
    ("ccmon_answer_wait_seconds_avg", "billing", "voice"): 8,
    ("ccmon_handle_seconds_avg", "billing", "voice"): 111,
    ("ccmon_hold_seconds_avg", "billing", "voice"): 30,
    ("ccmon_offered_contacts", "support", "voice"): 2,
    ("ccmon_answered_contacts", "support", "voice"): 1,
    ("ccmon_abandoned_contacts", "support", "voice"): 1,
    ("ccmon_abandon_wait_seconds_avg", "support", "voice"): 60,
    ("ccmon_handle_seconds_avg", "support", "voice"): 88,
    ("ccmon_service_level_ratio", "support", "voice"): 1 / 2,
    ("ccmon_offered_contacts", "support", "chat"): 1,
    ("ccmon_answer_wait_seconds_avg", "support", "chat"): 14,
    ("ccmon_handle_seconds_avg", "support", "chat"): 185,
    ("ccmon_contacts_in_conversation", "support", "voice"): 0,
}
HAND_AGENTS = {("billing", "offline"): 1, ("support", "offline"): 2, ("support", "away"): 0}


def run(messages: list[bytes], mapper: Connect | None = None):
    mapper = mapper or Connect()
    events, skipped, malformed = [], {}, []
    for message in messages:
        outcome = mapper.feed(message)
        events += outcome.events
        if outcome.skipped:
            skipped[outcome.skipped] = skipped.get(outcome.skipped, 0) + 1
        if outcome.malformed:
            malformed.append(outcome.malformed[0])
    return events, skipped, malformed, mapper


def morning() -> list[bytes]:
    return MORNING.read_bytes().splitlines()


def brief(event: dict) -> tuple:
    if event["type"] == "agent.state":
        return (round(event["ts"] - T0), event["type"], event["agent_id"], event["state"],
                event["queues"])
    what = event.get("queue") or event.get("to_queue") or event.get("agent_id")
    return (round(event["ts"] - T0), event["type"], event["contact_id"], what, event["channel"])


def test_the_morning_maps_to_the_events_worked_out_by_hand():
    events, skipped, malformed, _ = run(morning())
    assert [brief(e) for e in events] == MORNING_EVENTS
    assert {e["contact_id"]: e.get("customer_id") for e in events
            if e["type"] == "contact.queued"} == {"c-a": "+15550001", "c-b": None,
                                                  "c-c": "+15550003", "c-d": None}
    assert skipped == MORNING_SKIPPED
    assert malformed == MORNING_MALFORMED
    assert len({e["event_id"] for e in events}) == len(events)


def value(figures: dict, name: str, queue: str, channel: str = "voice", **labels: str) -> float:
    wanted = {"queue": queue, "channel": channel, "window": "1d", **labels}
    found = [v for (n, ls), v in figures.items()
             if n == name and dict(ls).items() <= wanted.items()]
    assert len(found) == 1, (name, queue, found)
    return found[0]


def hand_figures_hold(figures: dict) -> bool:
    try:
        return all(value(figures, name, queue, channel) == pytest.approx(wanted, rel=1e-12)
                   for (name, queue, channel), wanted in HAND.items()) and all(
            value(figures, "ccmon_agents", queue, state=state) == wanted
            for (queue, state), wanted in HAND_AGENTS.items())
    except AssertionError:
        return False


def test_the_mornings_figures_by_hand():
    figures = engine_figures([orjson.dumps(e) for e in run(morning())[0]],
                             load(environ={"CCMON_WINDOWS": "1d"}))
    for (name, queue, channel), wanted in HAND.items():
        assert value(figures, name, queue, channel) == pytest.approx(wanted, rel=1e-12), name
    assert hand_figures_hold(figures)


def test_resuming_from_the_serialised_state_gives_the_same_events():
    messages = morning()
    whole = run(messages)[0]
    for cut in range(len(messages) + 1):
        first = run(messages[:cut])
        state = json.loads(json.dumps(first[3].to_json()))
        assert first[0] + run(messages[cut:], Connect(state))[0] == whole, cut


def test_a_transfer_initiated_before_the_original_disconnects_is_one_contact():
    messages = morning()

    def where(kind: str, contact: str) -> int:
        text = f'"eventType":"{kind}","contactId":"{contact}"'.encode()
        return next(i for i, m in enumerate(messages) if text in m)

    first, second = where("DISCONNECTED", "c-d"), where("INITIATED", "c-d2")
    messages[first], messages[second] = messages[second], messages[first]
    events, skipped, _, _ = run(messages)
    assert [brief(e) for e in events] == MORNING_EVENTS
    assert skipped == {**MORNING_SKIPPED, "transferred_away": 1}


def test_a_disconnect_no_transfer_follows_within_10_s_ends_the_contact_there():
    messages = morning()
    text = b'"eventType":"INITIATED","contactId":"c-d2"'
    cut = next(i for i, m in enumerate(messages) if text in m)
    events = run(messages[:cut])[0]
    assert not any(e["type"] == "contact.ended" and e["contact_id"] == "c-d" for e in events)
    later = orjson.loads(messages[-1])
    later["EventTimestamp"] = "2026-03-02T09:10:11.000Z"  # 611 s: past 600 + 10
    ended = run([orjson.dumps(later)], run(messages[:cut])[3])[0][0]
    assert brief(ended) == (600, "contact.ended", "c-d", None, "voice")


def test_the_same_message_twice_changes_nothing():
    messages = morning()
    doubled = [m for message in messages for m in (message, message)]
    events = run(doubled)[0]
    assert [brief(e) for e in events] == MORNING_EVENTS


@given(st.lists(st.binary(max_size=60), max_size=20))
def test_any_bytes_never_make_the_mapper_raise(messages):
    mapper = Connect()
    for message in messages:
        mapper.feed(message)
    json.dumps(mapper.to_json())


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3), max_leaves=8)


@given(st.lists(st.tuples(st.integers(0, len(MORNING_EVENTS) + 10),
                          st.sampled_from(["eventType", "contactId", "channel", "detail",
                                           "queueInfo", "agentInfo", "EventType", "AgentARN",
                                           "CurrentAgentSnapshot", "time", "previousContactId",
                                           "Contacts", "initiationMethod"]), json_values),
                max_size=6))
def test_any_field_replaced_by_any_json_never_raises_and_the_engine_takes_it_all(changes):
    """The morning with fields replaced anywhere by any JSON value: the mapper never raises and
    the monitor dead-letters none of the events it sends."""
    messages = [json.loads(m) if m.startswith(b"{\"") and m.endswith(b"}") else m
                for m in morning()]
    for index, name, replacement in changes:
        message = messages[index % len(messages)]
        if isinstance(message, dict):
            target = message["detail"] if "detail" in message and name not in (
                "detail", "time") and isinstance(message["detail"], dict) else message
            target[name] = replacement
    raw = [m if isinstance(m, bytes) else json.dumps(m).encode() for m in messages]
    events = run(raw)[0]
    pipeline = Pipeline(EngineConfig.from_settings(load(environ={})))
    dead = pipeline.feed([Record("x:0", i, e.get("channel"), orjson.dumps(e))
                          for i, e in enumerate(events)])
    assert not dead, dead[:1]
