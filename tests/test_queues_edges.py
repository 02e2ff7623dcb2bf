"""Stage two's edges (stream/queues.py): the 1.1 "within threshold" count of abandons at
exactly T, the event clock a board keeps, memory given back once the longest window has
passed, and the replay marks of a minute restored from its log. Expectations by hand from
metrics.md and the design's exactly-once rule (a fact applied twice counts once)."""

from __future__ import annotations

import orjson

from ccmon.stream.cases import RESOLVED, Resolution
from ccmon.stream.engine import EngineConfig, Intake, Pipeline, Record
from ccmon.stream.kpis import queue_metrics
from ccmon.stream.lifecycle import Fact
from ccmon.stream.queues import Board, sample_code, sample_of

T0 = 1_795_338_000  # 2026-11-22T09:00:00Z, epoch seconds


def records(lines: list[tuple], source: str = "cc.voice:0") -> list[Record]:
    """(contact, type, seconds after T0, extra fields) -> voice records, offsets from 0."""
    return [Record(source, n, "voice", orjson.dumps(
        {"event_id": f"{source}-{n}", "type": kind, "ts": T0 + t, "contact_id": contact,
         **extra})) for n, (contact, kind, t, extra) in enumerate(lines)]


def metrics(board: Board, seconds: float) -> dict:
    return {(name, labels): value
            for name, labels, value in queue_metrics(board, round((T0 + seconds) * 1000))}


def test_an_abandon_after_exactly_t_is_within_the_threshold():
    # metrics.md 1.1: abandons with wait <= T (20 s), short ones included.
    pipeline = Pipeline()
    pipeline.feed(records([
        ("c1", "contact.queued", 0, {"queue": "q"}), ("c1", "contact.abandoned", 20, {}),
        ("c2", "contact.queued", 0, {"queue": "q"}), ("c2", "contact.abandoned", 20.001, {}),
        ("c3", "contact.queued", 0, {"queue": "q"}), ("c3", "contact.abandoned", 1, {}),
    ]))
    m = metrics(pipeline.board, 60)
    assert m[("ccmon_abandoned_within_threshold_contacts", ("q", "voice", "5m"))] == 2
    assert m[("ccmon_abandoned_contacts", ("q", "voice", "5m"))] == 3


def test_the_board_keeps_the_largest_ts_as_its_event_clock():
    # metrics.md: with clock = event, `now` is the largest ts of any valid event seen; a late
    # event does not move it back.
    pipeline = Pipeline()
    pipeline.feed(records([("c1", "contact.queued", 50, {"queue": "q"}),
                           ("c2", "contact.queued", 10, {"queue": "q"})]))
    assert pipeline.board.latest_ts == (T0 + 50) * 1000


def test_agents_and_credits_are_forgotten_once_the_longest_window_passed():
    """Memory is bounded by the longest window (1h here): an agent that left the queue, its
    timeline and what it was credited with are gone once they are older than every window,
    whichever later advance of the clock gets there."""
    pipeline = Pipeline()
    pipeline.feed(records([
        ("c1", "contact.queued", 0, {"queue": "q"}),
        ("c1", "contact.answered", 5, {"agent_id": "a1"}),
        ("c1", "contact.ended", 70, {}),
    ]))
    pipeline.feed([Record("cc.agents:0", n, None, orjson.dumps(
        {"event_id": f"a{n}", "type": "agent.state", "ts": T0 + t, "agent_id": "a1",
         "state": "available", "queues": queues})) for n, (t, queues) in
        enumerate([(0, ["q"]), (10, [])])])
    board = pipeline.board
    board.advance((T0 + 100) * 1000)  # within the hour: everything kept
    assert board.reps.samples.keys() == {"a1"}
    assert board.timelines["q"].changes.keys() == {"a1"}
    assert board.staff["q"].keys() == {"a1"}
    board.advance((T0 + 2 * 3600) * 1000)  # an hour after the last of them
    assert board.reps.samples == {}
    assert board.timelines["q"].changes == {}
    assert board.staff["q"] == {}


def test_a_minute_restored_from_its_log_still_refuses_its_first_fact():
    # A worker restarted from the log re-reads facts it had applied: the minute's marks,
    # logged and restored, refuse them, the very first position (0) included.
    config = EngineConfig()
    facts, _ = Intake(config).take(0, records([("c1", "contact.queued", 0, {"queue": "q"})]))
    assert [located[7] for located in facts] == [0]

    def apply(board: Board) -> None:
        for located in facts:
            board.apply(Fact(*located[:6]), located[6], located[7])

    board = Board(config.windows, config.thresholds)
    apply(board)
    restored = Board(config.windows, config.thresholds)
    for unit, state in board.take_dirty().items():
        if state is not None:
            restored.restore(unit, orjson.loads(orjson.dumps(state)))
    apply(restored)
    assert metrics(restored, 60) == metrics(board, 60)
    assert metrics(board, 60)[("ccmon_offered_contacts", ("q", "voice", "5m"))] == 1


def test_a_resolution_code_keeps_fcr_and_multichannel_apart():
    # Each of the two flags read back from its own bit (the changelog's samples).
    for fcr, multichannel in ((True, False), (False, True)):
        value = Resolution(90_000, 3, fcr, multichannel)
        assert sample_of(sample_code(RESOLVED, value)) == (RESOLVED, value)


def test_an_agents_credit_replayed_counts_once():
    # Facts sent again after a crash change nothing (design: exactly once), the agent's
    # credits included: a7's one segment, 5 -> 70 s, counts once.
    config = EngineConfig()
    facts, _ = Intake(config).take(0, records([
        ("c1", "contact.queued", 0, {"queue": "q"}),
        ("c1", "contact.answered", 5, {"agent_id": "a7"}),
        ("c1", "contact.ended", 70, {})]))
    board = Board(config.windows, config.thresholds)
    for _ in range(2):
        for located in facts:
            board.apply(Fact(*located[:6]), located[6], located[7])
    now = (T0 + 100) * 1000
    assert board.reps.sums("a7", [now - 900_000], now) == [[1, 0, 65_000, 0, 0, 0, 0]]


def test_the_staffing_of_a_queue_is_each_agents_latest_state_by_ts():
    # metrics.md 1.1: N counts the agents whose latest agent.state (by ts) is available,
    # busy or acw; an event arriving late (ts 10 after ts 20) does not replace the latest.
    pipeline = Pipeline()
    pipeline.feed([Record("cc.agents:0", n, None, orjson.dumps(
        {"event_id": f"a{n}", "type": "agent.state", "ts": T0 + t, "agent_id": "a1",
         "state": state, "queues": ["q"]})) for n, (t, state) in
        enumerate([(20, "available"), (10, "offline")])])
    assert pipeline.board.staff["q"] == {"a1": [(T0 + 20) * 1000, "available"]}
