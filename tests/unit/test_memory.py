"""Memory bounded by the contract (issue 8): finished contacts are forgotten after the contact
retention, on the ledger's own event clock, with tombstones for the changelog; golden
sequences through the pure engine."""

from __future__ import annotations

import random

import orjson

from ccmon.stream import queues as q
from ccmon.stream.cases import DROPPED, OPENED, REPEAT, RESOLVED, Resolution
from ccmon.stream.engine import FACTS_PER_EVENT, EngineConfig, Pipeline
from ccmon.stream.events import BadEvent, decode
from ccmon.stream.facts import apply as apply_facts
from ccmon.stream.lifecycle import (
    ABANDONED,
    ANSWERED,
    ENDED,
    ENTERED,
    HOLD_ENDED,
    SURVEY,
    TALK_TRANSFERRED,
    WAIT_TRANSFERRED,
    Fact,
    Ledger,
    contact_key,
)
from ccmon.stream.queues import Board, Thresholds, sample_code, sample_of
from ccmon.stream.windows import SlidingWindows, lower_edges
from tests.unit.test_engine import Q, W, at, contact, ev, metrics, ms, records, surveyed_contacts

RETENTION_S = 60
CONFIG = EngineConfig(retention_ms=RETENTION_S * 1000)
C1 = contact_key("voice", "c1")
T0_MS = ms(0)
SERIES = ("billing", "voice")


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
                    ev("contact.queued", 2000, contact_id="c1", queue="billing"),  # bad: known
                    {**first[2], "ts": at(3000)}])  # the `ended` again, told later: a repeat
    assert [d.reason for d in pipeline.dead] == ["lifecycle", "lifecycle"]
    assert pipeline.intake.duplicates == 1
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


# -- window samples: two integers each, exact sums, coherent changelog ----------------------

WINDOWS = (("90s", 90_000), ("7m", 420_000), ("1h", 3_600_000))  # edges inside minutes
SAMPLE_VALUES = {ENTERED: lambda rng: None, ANSWERED: lambda rng: rng.randrange(60_000),
                 ABANDONED: lambda rng: rng.randrange(20_000),
                 WAIT_TRANSFERRED: lambda rng: rng.randrange(50_000),
                 HOLD_ENDED: lambda rng: rng.randrange(90_000),
                 ENDED: lambda rng: rng.randrange(900_000),
                 TALK_TRANSFERRED: lambda rng: rng.randrange(600_000),
                 SURVEY: lambda rng: (rng.choice(("csat", "nps", "ces")), rng.randint(1, 7)),
                 OPENED: lambda rng: rng.random() < 0.3, REPEAT: lambda rng: None,
                 DROPPED: lambda rng: None,
                 RESOLVED: lambda rng: Resolution(rng.randrange(10**9), rng.randint(1, 6),
                                                  rng.random() < 0.5, rng.random() < 0.5)}


def expected_sums(samples: list[tuple[str, int, object]], now: int, width: int) -> dict:
    """The window's figures straight from the definitions (metrics.md), sample by sample."""
    inside = [(kind, value) for kind, ts, value in samples if now - width < ts <= now]
    kinds = [kind for kind, _ in inside]
    waits = {kind: [v for k, v in inside if k == kind] for kind in (ANSWERED, ABANDONED)}
    handles = [v for k, v in inside if k in (ENDED, TALK_TRANSFERRED)]
    holds = [v for k, v in inside if k == HOLD_ENDED]
    surveys = [v for k, v in inside if k == SURVEY]
    resolved = [v for k, v in inside if k == RESOLVED]
    return {
        q.OPENED_CASES: kinds.count(OPENED),
        q.REOPENED_CASES: sum(v for k, v in inside if k == OPENED),
        q.REPEATS: kinds.count(REPEAT), q.DROPPED_CASES: kinds.count(DROPPED),
        q.RESOLVED_CASES: len(resolved), q.FCR_CASES: sum(r.fcr for r in resolved),
        q.RESOLUTION_TIME: sum(r.ms for r in resolved),
        q.CASE_CONTACTS: sum(r.contacts for r in resolved),
        q.MULTICHANNEL_CASES: sum(r.multichannel for r in resolved),
        q.OFFERED: kinds.count(ENTERED), q.ANSWERS: len(waits[ANSWERED]),
        q.ANSWERS_IN_SL: sum(w <= 20_000 for w in waits[ANSWERED]),
        q.ANSWER_WAIT: sum(waits[ANSWERED]), q.ABANDONS: len(waits[ABANDONED]),
        q.SHORT_ABANDONS: sum(w < 5_000 for w in waits[ABANDONED]),
        q.ABANDONS_IN_SL: sum(w <= 20_000 for w in waits[ABANDONED]),
        q.ABANDON_WAIT: sum(waits[ABANDONED]),
        q.TRANSFERS: kinds.count(WAIT_TRANSFERRED) + kinds.count(TALK_TRANSFERRED),
        q.HOLDS: len(holds), q.HOLD_TIME: sum(holds),
        q.HANDLES: len(handles), q.HANDLE_TIME: sum(handles),
        q.CSAT: sum(s == "csat" for s, _ in surveys),
        q.CSAT_GOOD: sum(s == "csat" and score >= 4 for s, score in surveys),
        q.NPS: sum(s == "nps" for s, _ in surveys),
        q.NPS_PROMOTERS: sum(s == "nps" and score >= 9 for s, score in surveys),
        q.NPS_DETRACTORS: sum(s == "nps" and score <= 6 for s, score in surveys),
        q.CES: sum(s == "ces" for s, _ in surveys),
        q.CES_TOTAL: sum(score for s, score in surveys if s == "ces"),
    }


def test_window_sums_equal_the_definitions_with_late_and_future_samples():
    """Samples arrive out of order (late into old minutes, ahead of the clock), the clock moves
    by irregular steps across minute edges: every sum of every window stays exact."""
    rng = random.Random(5)
    board = Board(WINDOWS, Thresholds())
    applied: list[tuple[str, int, object]] = []
    now = T0_MS
    for position in range(2000):
        if rng.random() < 0.05:
            now += rng.choice((1, 999, 1000, 59_999, 60_000, 61_001, 400_000))
            board.advance(now)
            for width, sums in zip(board.window_widths, board.queues[SERIES].windows.sums,
                                   strict=True):
                assert sums == [expected_sums(applied, now, width)[i] for i in range(q.SUMS)]
        kind = rng.choice(list(SAMPLE_VALUES))
        # Whole seconds half of the time, so that samples fall exactly on window edges.
        ts = now + rng.choice((rng.randint(-500, 30) * 1000, rng.randint(-500_000, 30_000)))
        value = SAMPLE_VALUES[kind](rng)
        board.apply(Fact(*SERIES, kind, ts, f"c{position}", value), "s:0", position)
        applied.append((kind, ts, value))  # one out of every window already never counts


def test_a_sample_unit_in_the_changelog_is_two_columns():
    pipeline = Pipeline()
    feed(pipeline, contact("c1", "billing", 0, answered=42))
    minute = ms(0) // 60_000
    units = pipeline.board.take_dirty()
    assert units[Board.samples_unit("billing", "voice", ms(0))] == {
        "marks": {"cc.voice:0": 1 * FACTS_PER_EVENT},
        "times": [ms(0) - minute * 60_000, ms(42) - minute * 60_000],
        "codes": [sample_code(ENTERED, None), 42_000 << 4 | 1]}
    assert sample_code(ANSWERED, 42_000) == 42_000 << 4 | 1


def test_sample_codes_round_trip():
    rng = random.Random(2)
    for kind, value_of in SAMPLE_VALUES.items():
        value = value_of(rng)
        assert sample_of(sample_code(kind, value)) == (kind, value)


def test_a_minute_leaves_memory_and_changelog_once_wholly_out_of_every_window():
    config = EngineConfig(windows=(("1m", 60_000),))
    pipeline = Pipeline(config)
    feed(pipeline, contact("c1", "billing", 0.5, answered=59.5))  # minute 09:00
    board = pipeline.board
    unit = Board.samples_unit("billing", "voice", ms(0))
    board.take_dirty()
    board.advance(ms(119.499))  # 09:00:59.5 still in (09:00:59.499, 09:01:59.499]
    assert board.take_dirty() == {}
    assert len(board.queues[("billing", "voice")].windows.blocks) == 1
    board.advance(ms(119.999))  # the whole minute is out of the window
    assert board.take_dirty() == {unit: None}
    assert board.queues[("billing", "voice")].windows.blocks == {}



def add_code(code: int, sums: list, sign: int) -> None:
    """A window's one sum: the codes of the samples in it (a test's own contribution)."""
    sums[0] += sign * code


def test_a_sample_too_old_for_every_window_is_not_kept():
    windows = SlidingWindows(lower_edges((60_000, 300_000)), 1, add_code)
    windows.advance(T0_MS)
    # The longest window is (now - 5 min, now]: a sample at its left edge is out for good.
    assert not windows.reaches(T0_MS - 300_000)
    assert windows.reaches(T0_MS - 299_999)
    board = Board(WINDOWS, Thresholds())
    board.advance(T0_MS)
    board.take_dirty()
    old = T0_MS - 3_600_000  # the left edge of the longest window, 1h
    board.apply(Fact(*SERIES, ANSWERED, old, "c1", 5), "s:0", 0)
    assert Board.samples_unit(*SERIES, old) not in board.take_dirty()
    assert board.queues[SERIES].windows.blocks == {}


def test_a_window_clock_never_goes_back():
    windows = SlidingWindows(lower_edges((60_000,)), 1, add_code)
    windows.advance(T0_MS)
    windows.add(windows.block(T0_MS - 30_000), T0_MS - 30_000, 1)
    windows.advance(T0_MS - 10_000)  # ignored: the window stays (now - 1 min, now]
    windows.add(windows.block(T0_MS - 5_000), T0_MS - 5_000, 10)  # at or before now: counts
    assert (windows.now, windows.sums) == (T0_MS, [[11]])
    windows.advance(T0_MS + 30_000)  # the sample at now - 30 s reaches the left edge: out
    assert windows.sums == [[10]]

def _legacy(state: dict, unit: str) -> dict:
    """A samples unit as it was logged before the columns: [[ts, kind, value], ...]."""
    if not unit.startswith("S\x1f"):
        return state
    start = int(unit.rsplit("\x1f", 1)[1]) * 60_000
    return {"marks": state["marks"],
            "samples": [[start + ts, *sample_of(code)]
                        for ts, code in zip(state["times"], state["codes"], strict=True)]}


def test_restore_from_columns_and_from_the_previous_format_is_exact():
    events = surveyed_contacts(random.Random(11), 150, kinds=("csat", "nps", "ces"))
    events.sort(key=lambda e: e["ts"])
    pipeline = Pipeline()
    feed(pipeline, events)
    logged = {unit: orjson.loads(orjson.dumps(state))
              for unit, state in pipeline.board.take_dirty().items() if state is not None}
    copies = [Board(pipeline.config.windows, pipeline.config.thresholds,
                    pipeline.config.timezone) for _ in range(2)]
    for unit, state in logged.items():
        copies[0].restore(unit, state)
        copies[1].restore(unit, orjson.loads(orjson.dumps(_legacy(state, unit))))
    for now in (900, 1650, 2000, 4000):
        reference = metrics(pipeline.board, now)
        assert metrics(copies[0], now) == reference
        assert metrics(copies[1], now) == reference
    # The restored marks still refuse the facts they cover.
    facts, _ = Pipeline().intake.take(0, records(events))
    apply_facts(copies[0], facts)
    assert metrics(copies[0], 4000) == metrics(pipeline.board, 4000)


def test_a_minute_is_kept_while_its_last_millisecond_still_counts():
    windows = SlidingWindows(lower_edges((60_000,)), 1, add_code)
    minute = T0_MS // 60_000
    last_ms = (minute + 1) * 60_000 - 1
    windows.add(windows.block(last_ms), last_ms, 1)
    windows.advance(last_ms + 59_999)  # (last_ms - 1, last_ms + 59 999]: still in
    assert (windows.expire(), windows.sums) == ([], [[1]])
    windows.advance(last_ms + 60_000)  # at the window's left edge: out, and so is the minute
    assert (windows.sums, windows.expire(), windows.blocks) == ([[0]], [minute], {})
