"""stream/taskrouter.py by hand: an hour of one TaskRouter workspace's event callbacks
(tests/data/taskrouter.jsonl, parameters as Twilio's "TaskRouter Events reference" lists
them) mapped to the v1 events worked out from adapters.md, then its figures through the pure
engine; the X-Twilio-Signature on the vectors of Twilio's own request-validator tests."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccmon.figures import engine_figures
from ccmon.settings import load
from ccmon.stream.engine import EngineConfig, Pipeline, Record
from ccmon.stream.taskrouter import TaskRouter, signature, signed
from tests.support import DATA

HOUR = DATA / "taskrouter.jsonl"
T0 = 1_772_445_600  # 2026-03-02T10:00:00Z; every callback's TimestampMs is T0 + t s + 250 ms
ANA, BEN = "WK" + "a" * 32, "WK" + "b" * 32
T1, T2, T4, T5 = ("WT" + str(n) * 32 for n in (1, 2, 4, 5))

# (seconds after T0, type, contact or agent, queue | to_queue | agent | state, channel or queues)
HOUR_EVENTS = [
    (0, "agent.state", ANA, "available", []),  # worker.activity.update Available
    (1, "agent.state", BEN, "available", []),
    (10, "contact.queued", T1, "support", "voice"),  # task.created says nothing yet
    (25, "contact.answered", T1, ANA, "voice"),  # reservation.accepted
    (25, "agent.state", ANA, "busy", ["support"]),  # its queue: where it took the task
    (200, "contact.ended", T1, None, "voice"),  # task.wrapup
    (200, "agent.state", ANA, "acw", ["support"]),
    (230, "agent.state", ANA, "available", ["support"]),  # task.completed
    (300, "contact.queued", T2, "sales", "chat"),
    (320, "contact.answered", T2, BEN, "chat"),
    (320, "agent.state", BEN, "busy", ["sales"]),
    # transfer-initiated at 400, T3 created at 401 for T2's conversation: one contact
    (402, "contact.transferred", T2, "billing", "chat"),  # T3's queue entry
    (402, "agent.state", BEN, "available", ["sales"]),  # T2's wrap-up then says nothing
    (430, "contact.answered", T2, ANA, "chat"),
    (430, "agent.state", ANA, "busy", ["billing", "support"]),
    (600, "contact.ended", T2, None, "chat"),  # T3's wrap-up
    (600, "agent.state", ANA, "acw", ["billing", "support"]),
    (610, "agent.state", ANA, "available", ["billing", "support"]),
    (700, "contact.queued", T4, "support", "voice"),  # then the same callback again
    (745, "contact.abandoned", T4, None, "voice"),  # task.canceled while waiting
    (800, "contact.queued", T5, "sales", "chat"),  # sms is chat
    (803, "contact.abandoned", T5, None, "chat"),
    (950, "agent.state", BEN, "away", ["sales"]),  # activity Break
    (990, "agent.state", ANA, "offline", ["billing", "support"]),
]
HOUR_SKIPPED = {"reservation.created": 1, "workflow.target-matched": 1, "task.updated": 1,
                "repeat": 2, "channel": 3, "unknown_event": 1}
HOUR_MALFORMED = ["bad_field", "bad_field"]

# One 1d window at the last event. support voice: offered T1, T4; T1 answered after 15 s,
# handled 25 -> 200 = 175 s; T4 abandoned after 45 s. sales chat: offered T2, T5; T2
# answered after 20 s, handled 320 -> 402 (its transfer) = 82 s, transferred out; T5
# abandoned after 3 s (short). billing chat: T2 transferred in at 402, answered after 28 s,
# handled 430 -> 600 = 170 s.
HAND = {
    ("ccmon_offered_contacts", "support", "voice"): 2,
    ("ccmon_answered_contacts", "support", "voice"): 1,
    ("ccmon_abandoned_contacts", "support", "voice"): 1,
    ("ccmon_handle_seconds_avg", "support", "voice"): 175,
    ("ccmon_service_level_ratio", "support", "voice"): 1 / 2,
    ("ccmon_offered_contacts", "sales", "chat"): 2,
    ("ccmon_short_abandoned_contacts", "sales", "chat"): 1,
    ("ccmon_transferred_contacts", "sales", "chat"): 1,
    ("ccmon_answer_wait_seconds_avg", "sales", "chat"): 20,
    ("ccmon_handle_seconds_avg", "sales", "chat"): 82,
    ("ccmon_service_level_ratio", "sales", "chat"): 1,  # 1 within 20 s / (1 + 1 - 1)
    ("ccmon_abandon_ratio", "sales", "chat"): 0,
    ("ccmon_offered_contacts", "billing", "chat"): 1,
    ("ccmon_answer_wait_seconds_avg", "billing", "chat"): 28,
    ("ccmon_handle_seconds_avg", "billing", "chat"): 170,
}
HAND_AGENTS = {("support", "offline"): 1, ("billing", "offline"): 1, ("sales", "away"): 1,
               ("sales", "available"): 0}


def callbacks() -> list[dict]:
    return [json.loads(line) for line in HOUR.read_text().splitlines()]


def run(items: list[dict], mapper: TaskRouter | None = None):
    mapper = mapper or TaskRouter()
    events, skipped, malformed = [], {}, []
    for item in items:
        params = dict(parse_qsl(item["body"], keep_blank_values=True))
        outcome = mapper.feed(params, item["body"].encode(), item.get("token"))
        events += outcome.events
        if outcome.skipped:
            skipped[outcome.skipped] = skipped.get(outcome.skipped, 0) + 1
        if outcome.malformed:
            malformed.append(outcome.malformed[0])
    return events, skipped, malformed, mapper


def brief(event: dict) -> tuple:
    t = event["ts"] - T0 - 0.25
    assert t == round(t)  # TimestampMs, to the millisecond
    if event["type"] == "agent.state":
        return (round(t), event["type"], event["agent_id"], event["state"], event["queues"])
    what = event.get("queue") or event.get("to_queue") or event.get("agent_id")
    return (round(t), event["type"], event["contact_id"], what, event["channel"])


def test_the_hour_maps_to_the_events_worked_out_by_hand():
    events, skipped, malformed, mapper = run(callbacks())
    assert [brief(e) for e in events] == HOUR_EVENTS
    assert {e["contact_id"]: e.get("customer_id") for e in events
            if e["type"] == "contact.queued"} == {T1: "+15550101", T2: "customer-42",
                                                  T4: "+15550104", T5: "+15550105"}
    assert skipped == HOUR_SKIPPED
    assert malformed == HOUR_MALFORMED
    assert mapper.contacts == {} and mapper.tasks == {}  # every task ended: nothing kept


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


def test_the_hours_figures_by_hand():
    figures = engine_figures([orjson.dumps(e) for e in run(callbacks())[0]],
                             load(environ={"CCMON_WINDOWS": "1d"}))
    for (name, queue, channel), wanted in HAND.items():
        assert value(figures, name, queue, channel) == pytest.approx(wanted, rel=1e-12), name
    assert hand_figures_hold(figures)


def test_resuming_from_the_serialised_state_gives_the_same_events():
    items = callbacks()
    whole = run(items)[0]
    for cut in range(len(items) + 1):
        first = run(items[:cut])
        state = json.loads(json.dumps(first[3].to_json()))
        assert first[0] + run(items[cut:], TaskRouter(state))[0] == whole, cut


def test_repeats_are_remembered_for_an_hour_of_event_time():
    items = callbacks()
    mapper = run(items)[3]
    first = dict(parse_qsl(items[0]["body"])), items[0]["body"].encode(), None
    assert mapper.feed(*first).skipped == "repeat"
    later = {"EventType": "task.updated", "TaskSid": "WT9", "Timestamp": str(T0 + 990 + 3601)}
    mapper.feed(later, b"an hour after the last", None)
    assert len(mapper.seen) == 1  # the hour's keys are forgotten: the state stays bounded
    assert mapper.feed(*first).skipped is None


URI = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = [("CallSid", "CA1234567890ABCDE"), ("Digits", "1234"), ("From", "+14158675309"),
          ("To", "+18005551212"), ("Caller", "+14158675309")]


def test_the_signature_of_twilios_own_vectors():
    # twilio-python tests/unit/test_request_validator.py: token 12345, this URL and form.
    assert signature(URI, PARAMS, "12345") == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    repeated = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
    assert signature(URI, repeated, "12345") == "IK+Dwps556ElfBT0I3Rgjkr1wJU="
    assert signed(URI, PARAMS, "12345", "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    assert not signed(URI, PARAMS, "12346", "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    assert not signed(URI + "&x=1", PARAMS, "12345", "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    assert not signed(URI, PARAMS[:-1], "12345", "RSOYDt4T1cUTdK1PDd93/VVr8B8=")


@given(st.lists(st.tuples(st.dictionaries(st.text(max_size=12), st.text(max_size=12),
                                          max_size=6), st.binary(max_size=20)), max_size=20))
def test_any_parameters_never_make_the_mapper_raise(items):
    mapper = TaskRouter()
    for params, body in items:
        mapper.feed(params, body, None)
    json.dumps(mapper.to_json())


EVENTS = ["task.created", "task-queue.entered", "task-queue.moved", "reservation.accepted",
          "task.canceled", "task.wrapup", "task.completed", "task.transfer-initiated",
          "task.transfer-failed", "worker.activity.update", "task.updated"]


@given(st.lists(st.tuples(
    st.integers(0, 30), st.sampled_from(EVENTS), st.sampled_from(["WT1", "WT2", "WT3"]),
    st.sampled_from(["q1", "q2"]), st.sampled_from(["WK1", "WK2"]),
    st.sampled_from(["voice", "chat", "sms", "email"]),
    st.sampled_from(["", '{"conversations": {"conversation_id": "WT1"}}', "[1]"]),
    st.sampled_from(["Available", "Offline", "Break"])), max_size=50))
def test_any_callbacks_in_time_order_give_events_the_monitor_applies(rows):
    mapper, t, events = TaskRouter(), 0, []
    for n, (step, kind, task, queue, worker, channel, attributes, activity) in enumerate(rows):
        t += step
        params = {"EventType": kind, "Timestamp": str(T0 + t), "TaskSid": task,
                  "TaskQueueName": queue, "WorkerSid": worker,
                  "TaskChannelUniqueName": channel, "TaskAttributes": attributes,
                  "WorkerActivityName": activity}
        events += mapper.feed(params, str(n).encode(), None).events
    pipeline = Pipeline(EngineConfig.from_settings(load(environ={})))
    dead = pipeline.feed([Record("x:0", i, e.get("channel"), orjson.dumps(e))
                          for i, e in enumerate(events)])
    assert not dead, (dead[:1], events)
