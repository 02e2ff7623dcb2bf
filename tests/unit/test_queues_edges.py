"""Stage two's edges (stream/queues.py): the 1.1 "within threshold" count of abandons at
exactly T, the event clock a board keeps (a clock fact read back from JSON included), memory
given back once the longest window has passed (a credit at its edge never kept), the replay
marks of a minute restored from its log and of each source partition's first fact, and the
staffing N on a tie of ts. Expectations by hand from metrics.md and the design's exactly-once
rule (a fact applied twice counts once)."""

from __future__ import annotations

import orjson
import pytest

from ccmon.stream.cases import RESOLVED, Resolution
from ccmon.stream.engine import EngineConfig, Intake, Pipeline, Record
from ccmon.stream.facts import apply as apply_facts
from ccmon.stream.facts import clock_fact, decode, encode
from ccmon.stream.kpis import queue_metrics
from ccmon.stream.lifecycle import REP, Fact
from ccmon.stream.queues import Board, sample_code, sample_of
from ccmon.stream.reps import ENDED as REP_ENDED
from ccmon.stream.reps import rep_code

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
        apply_facts(board, facts)

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
        apply_facts(board, facts)
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


def test_a_clock_fact_read_back_from_the_facts_topic_moves_the_clock_only():
    # Stage one tells stage two how far event time has got with a fact of kind `clock` (queue
    # and channel empty), read back from JSON: a new string, equal to the kind but not it.
    # It moves the event clock and makes no (queue, channel) series.
    latest = (T0 + 30) * 1000
    board = Board(EngineConfig().windows, EngineConfig().thresholds)
    apply_facts(board, decode(encode([clock_fact(latest)])))  # as the facts topic carries it
    assert board.latest_ts == latest
    assert board.queues == {}
    assert metrics(board, 60) == {}


def test_the_first_fact_of_each_source_partition_is_applied():
    # Two input partitions each start at offset 0 (position 0): the second partition's
    # first contact is not taken for a replay of the first's. Two contacts wait.
    pipeline = Pipeline()
    pipeline.feed(records([("c1", "contact.queued", 0, {"queue": "q"})], "cc.voice:0"))
    pipeline.feed(records([("c2", "contact.queued", 1, {"queue": "q"})], "cc.voice:1"))
    m = metrics(pipeline.board, 10)
    assert m[("ccmon_queue_waiting_contacts", ("q", "voice"))] == 2
    assert m[("ccmon_offered_contacts", ("q", "voice", "5m"))] == 2


def test_an_agents_credit_at_the_oldest_window_edge_is_not_kept():
    # Windows are (now - W, now]: with 1h the longest, a credit at exactly now - 1h is out of
    # every window for good and not kept (nor logged); one a millisecond later is.
    config = EngineConfig()
    board = Board(config.windows, config.thresholds)
    now = (T0 + 7200) * 1000
    board.advance(now)
    board.take_dirty()
    credit = rep_code(REP_ENDED, 65_000)
    board.apply(Fact("q", "voice", REP, now - 3_600_000, "a1", credit), "cc.voice:0", 0)
    assert board.reps.samples == {}
    assert Board.rep_unit("a1") not in board.take_dirty()
    board.apply(Fact("q", "voice", REP, now - 3_599_999, "a1", credit), "cc.voice:0", 1)
    assert board.reps.samples.keys() == {"a1"}


def agent_states(states: list[tuple[float, str]]) -> list[Record]:
    """a1's agent.state events (seconds after T0, state), all listing queue q."""
    return [Record("cc.agents:0", n, None, orjson.dumps(
        {"event_id": f"a{n}", "type": "agent.state", "ts": T0 + t, "agent_id": "a1",
         "state": state, "queues": ["q"]})) for n, (t, state) in enumerate(states)]


@pytest.mark.parametrize(("first", "second", "staffed"),
                         [("offline", "available", 1), ("available", "offline", 0)])
def test_of_two_agent_states_with_the_same_ts_the_later_arrival_staffs(first, second, staffed):
    # metrics.md 1.1: N counts agents in available, busy or acw; an agent's timeline is
    # ordered by ts, arrival order breaking ties: the second event is the latest state.
    pipeline = Pipeline()
    pipeline.feed(agent_states([(20, first), (20, second)]))
    assert pipeline.board.staffed("q") == staffed
    assert metrics(pipeline.board, 60)[("ccmon_agents", ("q", second))] == 1
