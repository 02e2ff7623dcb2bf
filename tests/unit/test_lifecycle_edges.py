"""The lifecycle of events.md (holds, transfers while waiting and while talking, abandons)
counted as metrics.md says, worked out by hand, at any epoch: the same contacts at the very
start of 1970 and in 2026 give the same figures (a span is `end - start`, whatever the two
times are). Also the contact retention's default of one day (README, CCMON_CONTACT_RETENTION)."""

from __future__ import annotations

import orjson
import pytest

from ccmon.stream.engine import Pipeline, Record
from ccmon.stream.events import BadEvent, decode
from ccmon.stream.kpis import queue_metrics
from ccmon.stream.lifecycle import DUPLICATE, Ledger


def steps(base: int) -> list[dict]:
    """Two voice contacts, times in epoch seconds after `base`."""
    lines = [
        # c1: billing, waits 1 -> 3 (2 s), holds 4 -> 9 (5 s) and 10 -> 25, transferred to
        # sales at 25 with the hold open (closes there: 15 s; the segment 3 -> 25: 22 s);
        # waits in sales 25 -> 60 (35 s), ends at 130 with 2 s of wrap (70 + 2 = 72 s).
        ("c1", "contact.queued", 1, {"queue": "billing"}),
        ("c1", "contact.answered", 3, {"agent_id": "a1"}),
        ("c1", "contact.hold_started", 4, {}), ("c1", "contact.hold_ended", 9, {}),
        ("c1", "contact.hold_started", 10, {}),
        ("c1", "contact.transferred", 25, {"to_queue": "sales"}),
        ("c1", "contact.answered", 60, {"agent_id": "a2"}),
        ("c1", "contact.ended", 130, {"wrap_seconds": 2}),
        # c2: billing at 2, moved to sales while waiting at 5, abandons there at 14 (9 s).
        ("c2", "contact.queued", 2, {"queue": "billing"}),
        ("c2", "contact.transferred", 5, {"to_queue": "sales"}),
        ("c2", "contact.abandoned", 14, {}),
    ]
    return [{"event_id": f"{cid}-{n}", "type": kind, "ts": base + t, "contact_id": cid, **extra}
            for n, (cid, kind, t, extra) in enumerate(lines)]


# Read at now = 130 s: the 5m window (now - 300, now] holds every event. Thresholds: T = 20 s,
# short abandon 5 s (defaults).
EXPECTED = {
    # billing: offered c1 and c2; c1 answered after 2 s (within T); both transferred out;
    # holds of 5 s and 15 s (mean 10 s); one segment closed by the transfer, 22 s.
    ("billing", "ccmon_offered_contacts"): 2, ("billing", "ccmon_answered_contacts"): 1,
    ("billing", "ccmon_transferred_contacts"): 2, ("billing", "ccmon_abandoned_contacts"): 0,
    ("billing", "ccmon_answer_wait_seconds_avg"): 2.0,
    ("billing", "ccmon_hold_seconds_avg"): 10.0, ("billing", "ccmon_handle_seconds_avg"): 22.0,
    ("billing", "ccmon_service_level_ratio"): 1.0, ("billing", "ccmon_abandon_ratio"): 0.0,
    ("billing", "ccmon_abandon_wait_seconds_avg"): None,
    # sales: both transferred in; c1 answered after 35 s (beyond T), c2 abandoned after 9 s
    # (not short); SL 0 / (1 + 1), abandon ratio 1 / (1 + 1); no hold there.
    ("sales", "ccmon_offered_contacts"): 2, ("sales", "ccmon_answered_contacts"): 1,
    ("sales", "ccmon_transferred_contacts"): 0, ("sales", "ccmon_abandoned_contacts"): 1,
    ("sales", "ccmon_short_abandoned_contacts"): 0,
    ("sales", "ccmon_answer_wait_seconds_avg"): 35.0,
    ("sales", "ccmon_abandon_wait_seconds_avg"): 9.0, ("sales", "ccmon_hold_seconds_avg"): None,
    ("sales", "ccmon_handle_seconds_avg"): 72.0, ("sales", "ccmon_service_level_ratio"): 0.0,
    ("sales", "ccmon_abandon_ratio"): 0.5,
}


# 1970-01-01T00:00:00Z itself, and 2026-11-22T09:00:00Z.
@pytest.mark.parametrize("base", [0, 1_795_338_000])
def test_holds_transfers_and_abandons_at_any_epoch(base):
    pipeline = Pipeline()
    pipeline.feed([Record("cc.voice:0", n, "voice", orjson.dumps(event))
                   for n, event in enumerate(steps(base))])
    assert not pipeline.dead
    got = {(labels[0], name): value
           for name, labels, value in queue_metrics(pipeline.board, (base + 130) * 1000)
           if labels[1:] == ("voice", "5m") or name.startswith("ccmon_contacts_")}
    assert {key: got.get(key) for key in EXPECTED} == EXPECTED
    for queue in ("billing", "sales"):  # nobody left waiting, talking or on hold
        assert got[(queue, "ccmon_contacts_in_conversation")] == 0
        assert got[(queue, "ccmon_contacts_on_hold")] == 0


def test_a_finished_contact_is_remembered_for_a_day_by_default():
    def event(event_id: str, kind: str, ts_ms: int, contact: str, **extra: object):
        return decode(orjson.dumps({"event_id": event_id, "type": kind, "ts": ts_ms / 1000,
                                    "contact_id": contact, **extra}), "voice")

    day = 86_400_000
    for later, remembered in ((day - 1, True), (day, False)):
        ledger = Ledger()
        abandon = event("e2", "contact.abandoned", 0, "c1")
        ledger.apply(event("e1", "contact.queued", 0, "c1", queue="q"))
        ledger.apply(abandon)
        # Another contact moves the ledger's clock: c1 left at 0 is forgotten once the clock
        # reaches 0 + 1 d, and not a millisecond before.
        ledger.apply(event("e3", "contact.queued", later, "c2", queue="q"))
        if remembered:
            assert ledger.apply(abandon) is DUPLICATE
        else:
            with pytest.raises(BadEvent, match="retention"):
                ledger.apply(abandon)


def agent_event(event_id: str, ts_ms: int, state: str, queues: list[str]):
    return decode(orjson.dumps({"event_id": event_id, "type": "agent.state", "ts": ts_ms / 1000,
                                "agent_id": "a1", "state": state, "queues": queues}), None)


def test_an_agents_last_256_event_ids_spot_repeats():
    # The ledger keeps an agent's 256 latest ids (AGENT_DEDUP_IDS): a repeat within them is a
    # duplicate (events.md: it changes nothing), one from before is applied as new.
    ledger = Ledger()
    for n in range(300):
        ledger.apply(agent_event(f"a{n}", n * 1000, "available", ["q"]))
    assert ledger.apply(agent_event("a44", 44_000, "available", ["q"])) is DUPLICATE
    assert ledger.apply(agent_event("a43", 43_000, "available", ["q"])) is not DUPLICATE


def test_a_restored_ledger_is_the_ledger_logged():
    """What `take_dirty` logs, restored into a fresh ledger, is the same state: contacts,
    agents and clock; and the restored ledger spots the same repeats."""
    original = Ledger()
    events = [*(decode(orjson.dumps(event), "voice") for event in steps(0)),
              agent_event("s1", 1000, "busy", ["billing", "sales"]),
              agent_event("s2", 5000, "acw", ["billing"])]
    for event in events:
        original.apply(event)
    restored = Ledger()
    for key, state in orjson.loads(orjson.dumps(original.take_dirty())).items():
        restored.restore(key, state)
    assert (restored.contacts, restored.agents, restored.clock) == (
        original.contacts, original.agents, original.clock)
    assert all(restored.apply(event) is DUPLICATE for event in events)


def test_an_event_with_no_facts_still_moves_the_ledger_clock():
    # An agent listing no queue, never listed any: no fact, yet a valid event applied, so
    # its ts is the ledger's clock, and c1, gone at 0, is forgotten a day later.
    ledger = Ledger()
    abandon = decode(orjson.dumps({"event_id": "e2", "type": "contact.abandoned", "ts": 0,
                                   "contact_id": "c1"}), "voice")
    ledger.apply(decode(orjson.dumps({"event_id": "e1", "type": "contact.queued", "ts": 0,
                                      "contact_id": "c1", "queue": "q"}), "voice"))
    ledger.apply(abandon)
    assert ledger.apply(agent_event("s1", 86_400_000, "away", [])) == []
    with pytest.raises(BadEvent, match="retention"):
        ledger.apply(abandon)


def test_only_csat_surveys_are_credited_to_the_agent():
    """alerts.md 1.1: an agent's csat figures cover the csat surveys of the contacts it
    answered last; nps and ces are not csat. c1: a7 answers at 10, a 10 s hold, ends at 70
    with 5 s of wrap (a 65 s segment); then csat 2 (not satisfied), nps 10 and ces 7."""
    lines = [("contact.queued", 0, {"queue": "q"}), ("contact.answered", 10, {"agent_id": "a7"}),
             ("contact.hold_started", 20, {}), ("contact.hold_ended", 30, {}),
             ("contact.ended", 70, {"wrap_seconds": 5}),
             ("survey.submitted", 80, {"kind": "csat", "score": 2}),
             ("survey.submitted", 81, {"kind": "nps", "score": 10}),
             ("survey.submitted", 82, {"kind": "ces", "score": 7})]
    pipeline = Pipeline()
    pipeline.feed([Record("cc.voice:0", n, "voice", orjson.dumps(
        {"event_id": f"e{n}", "type": kind, "ts": 1_795_338_000 + t, "contact_id": "c1",
         **extra})) for n, (kind, t, extra) in enumerate(lines)])
    now = (1_795_338_000 + 100) * 1000
    # handled, transferred, handle ms, holds, hold ms, surveys, satisfied
    assert pipeline.board.reps.sums("a7", [now - 900_000], now) == [[1, 0, 65_000, 1, 10_000,
                                                                     1, 0]]


def test_an_agent_leaves_the_queues_its_previous_event_listed():
    # metrics.md: `ccmon_agents` counts an agent in the state of its latest agent.state, for
    # the queues that event lists. Three moves: q1 -> q2 -> q3, each leaving the one before.
    pipeline = Pipeline()
    moves = [(0, "available", ["q1"]), (10, "busy", ["q2"]), (20, "away", ["q3"])]
    pipeline.feed([Record("cc.agents:0", n, None, orjson.dumps(
        {"event_id": f"a{n}", "type": "agent.state", "ts": t, "agent_id": "a1", "state": state,
         "queues": queues})) for n, (t, state, queues) in enumerate(moves)])
    agents = {labels: value for name, labels, value in queue_metrics(pipeline.board, 30_000)
              if name == "ccmon_agents" and value}
    assert agents == {("q3", "away"): 1}
