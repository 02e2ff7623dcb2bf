"""Memory bounded by the contract (issue 8): finished contacts are forgotten after the contact
retention, on the ledger's own event clock, with tombstones for the changelog; golden
sequences through the pure engine."""

from __future__ import annotations

import orjson
from test_engine import Q, W, contact, ev, metrics, ms, records

from ccmon.stream.engine import EngineConfig, Pipeline
from ccmon.stream.events import BadEvent, decode
from ccmon.stream.lifecycle import Ledger, contact_key

RETENTION_S = 60
CONFIG = EngineConfig(retention_ms=RETENTION_S * 1000)
C1 = contact_key("voice", "c1")


def feed(pipeline: Pipeline, events: list[dict], first_offset: int = 0) -> None:
    pipeline.feed(records(events, first_offset=first_offset))


def ledger_of(pipeline: Pipeline) -> Ledger:
    return pipeline.intake.ledger(0)


def test_a_finished_contact_is_forgotten_exactly_after_the_retention():
    pipeline = Pipeline(CONFIG)
    feed(pipeline, contact("c1", "billing", 0, answered=5, ended=10))
    ledger = ledger_of(pipeline)
    assert ledger.take_dirty().keys() == {C1}
    feed(pipeline, contact("c2", "billing", 10 + RETENTION_S - 0.001), first_offset=3)
    assert C1 in ledger.contacts  # its last event is 59.999 s old: still inside
    assert ledger.take_dirty() == {contact_key("voice", "c2"): ledger.contacts[
        contact_key("voice", "c2")].to_json()}
    feed(pipeline, contact("c3", "billing", 10 + RETENTION_S), first_offset=4)
    assert C1 not in ledger.contacts  # exactly 60 s old: out, like a sample at now - W
    assert ledger.take_dirty()[C1] is None  # the tombstone of its changelog key
    assert set(ledger.contacts) == {contact_key("voice", "c2"), contact_key("voice", "c3")}


def test_contacts_still_waiting_or_talking_are_never_forgotten():
    pipeline = Pipeline(CONFIG)
    feed(pipeline, [*contact("w", "billing", 0), *contact("t", "billing", 0, answered=1),
                    *contact("c3", "billing", 10 * RETENTION_S)])
    assert set(ledger_of(pipeline).contacts) == {contact_key("voice", cid)
                                                 for cid in ("w", "t", "c3")}


def test_late_survey_and_duplicate_within_the_retention_behave_as_before():
    first = contact("c1", "billing", 0, answered=5, ended=10)
    late = [*contact("c2", "billing", 60),
            first[2],  # the `ended` again, 59 s after it: still a duplicate
            ev("survey.submitted", 69, contact_id="c1", kind="csat", score=5)]
    pipeline = Pipeline(CONFIG)
    feed(pipeline, [*first, *late])
    assert not pipeline.dead
    assert pipeline.intake.duplicates == 1
    m = metrics(pipeline.board, 70)
    assert m[("ccmon_csat_ratio", W)] == 1  # counted where c1 was answered
    assert m[("ccmon_answered_contacts", W)] == 1
    # The survey moved c1's last event: it is kept 60 s after the survey, not after the end.
    feed(pipeline, contact("c3", "billing", 128.999), first_offset=len(first) + len(late))
    assert C1 in ledger_of(pipeline).contacts
    feed(pipeline, contact("c4", "billing", 129), first_offset=100)
    assert C1 not in ledger_of(pipeline).contacts


def test_a_repeat_after_the_retention_is_dead_lettered_and_changes_nothing():
    """Forgotten, a repeat cannot be told from a new event; every event of a forgotten contact
    is at least the retention older than the ledger's clock, so such events are refused:
    a repeated `contact.queued` must not make a contact wait forever, a survey must not count
    twice."""
    first = [*contact("c1", "billing", 0, answered=5, ended=10),
             ev("survey.submitted", 12, contact_id="zz", kind="nps", score=10, queue="billing")]
    later = contact("c2", "billing", 100, answered=110)
    pipeline = Pipeline(CONFIG)
    feed(pipeline, [*first, *later])
    reference = metrics(pipeline.board, 120)
    assert contact_key("voice", "zz") not in ledger_of(pipeline).contacts
    feed(pipeline, first, first_offset=10)  # all four again, after the retention
    assert [d.reason for d in pipeline.dead] == ["lifecycle"] * len(first)
    assert pipeline.intake.duplicates == 0
    assert metrics(pipeline.board, 120) == reference
    assert reference[("ccmon_queue_waiting_contacts", Q)] == 0
    assert C1 not in ledger_of(pipeline).contacts


def test_a_new_contact_older_than_the_retention_is_refused_a_recent_one_applied():
    pipeline = Pipeline(CONFIG)
    feed(pipeline, [*contact("c1", "billing", 100),
                    *contact("old", "billing", 100 - RETENTION_S),  # at the horizon: out
                    *contact("late", "billing", 100 - RETENTION_S + 0.001)])  # inside
    assert [orjson.loads(d.record.value)["contact_id"] for d in pipeline.dead] == ["old"]
    assert metrics(pipeline.board, 100)[("ccmon_queue_waiting_contacts", Q)] == 2


def test_bad_events_and_duplicates_do_not_move_the_ledger_clock():
    pipeline = Pipeline(CONFIG)
    first = contact("c1", "billing", 0, answered=5, ended=10)
    feed(pipeline, [*first,
                    ev("contact.answered", 1000, contact_id="nobody"),  # bad: unknown contact
                    ev("contact.queued", 2000, contact_id="c1", queue="billing")])  # bad: known
    assert [d.reason for d in pipeline.dead] == ["lifecycle", "lifecycle"]
    assert ledger_of(pipeline).clock == ms(10)
    assert C1 in ledger_of(pipeline).contacts


def _events(values: list[dict]):
    return [decode(orjson.dumps(value), "voice") for value in values]


def test_a_restored_ledger_has_the_same_clock_and_forgets_the_same():
    before = [*contact("a", "billing", 0, answered=5, ended=10),
              *contact("b", "billing", 20, abandoned=30),
              ev("survey.submitted", 40, contact_id="s", kind="ces", score=3, queue="sales"),
              *contact("c", "billing", 50, answered=55),
              ev("agent.state", 58, agent_id="a1", state="busy", queues=["billing"])]
    after = [*contact("d", "billing", 69.5),  # a ended 59.5 s ago: kept
             *contact("e", "billing", 70),  # forgets a
             ev("contact.ended", 95, contact_id="c"),  # forgets b
             *contact("b", "billing", 30),  # b's id again, at its old ts: refused
             ev("survey.submitted", 101, contact_id="b", kind="csat", score=4, queue="x"),
             *contact("f", "billing", 130)]  # the survey forgot s; c (ended at 95) stays
    original = Ledger(RETENTION_S * 1000)
    for event in _events(before):
        original.apply(event)
    logged = {key: orjson.loads(orjson.dumps(state))
              for key, state in original.take_dirty().items() if state is not None}
    restored = Ledger(RETENTION_S * 1000)
    for key, state in logged.items():
        restored.restore(key, state)
    assert restored.clock == original.clock
    outcomes = []
    for ledger in (original, restored):
        results = []
        for event in _events(after):
            try:
                results.append(ledger.apply(event))
            except BadEvent as bad:
                results.append(repr(bad))
            results.append(sorted(ledger.contacts))
        outcomes.append((results, ledger.take_dirty()))
    assert outcomes[0] == outcomes[1]
    assert sorted(original.contacts) == [contact_key("voice", cid)
                                         for cid in ("b", "c", "d", "e", "f")]
