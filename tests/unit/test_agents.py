"""Agents' time in state and occupancy (metrics.md 1.1): timelines ordered by ts, the current
state up to now, window edges, late events, persistence. Expected values by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from ccmon.stream.agents import Timelines
from ccmon.stream.engine import EngineConfig, Intake, Pipeline, Record
from ccmon.stream.facts import apply as apply_facts
from ccmon.stream.kpis import queue_metrics
from ccmon.stream.queues import Board

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
MS0 = round(T0.timestamp() * 1000)
STATES = ("available", "busy", "acw", "away", "offline")
WINDOWS = (("5m", 300_000), ("1h", 3_600_000))


def state(agent: str, t: float, to: str, queues: list[str], n: int) -> dict:
    return {"event_id": f"{agent}-{n}", "type": "agent.state",
            "ts": (T0 + timedelta(seconds=t)).isoformat().replace("+00:00", "Z"),
            "agent_id": agent, "state": to, "queues": queues}


def run(events: list[dict]) -> Pipeline:
    pipeline = Pipeline(EngineConfig(windows=WINDOWS))
    pipeline.feed(Record("cc.agents:0", n, None, orjson.dumps(event))
                  for n, event in enumerate(events))
    return pipeline


def agent_time(board: Board, now_s: float) -> dict:
    return {(name, labels): value for name, labels, value
            in queue_metrics(board, MS0 + round(now_s * 1000))
            if name in ("ccmon_agent_state_seconds", "ccmon_occupancy_ratio", "ccmon_agents")}


def seconds(queue: str, window: str, **values: float) -> dict:
    return {("ccmon_agent_state_seconds", (queue, window, s)): values.get(s, 0) for s in STATES}


def test_an_agent_crossing_the_window_edge_counts_its_part_inside():
    """a1: available at 0, busy at 200, acw at 400, available at 430. At now = 500 the 5m
    window (200, 500] holds busy 200-400 (200 s), acw 400-430 (30), available 430-500 (70)."""
    pipeline = run([state("a1", 0, "available", ["billing"], 0),
                    state("a1", 200, "busy", ["billing"], 1),
                    state("a1", 400, "acw", ["billing"], 2),
                    state("a1", 430, "available", ["billing"], 3)])
    figures = agent_time(pipeline.board, 500)
    assert {k: v for k, v in figures.items() if k[0] == "ccmon_agent_state_seconds"} == {
        **seconds("billing", "5m", busy=200, acw=30, available=70),
        # 1h: everything since the first event (nothing counts before it): 200 + 70 available
        **seconds("billing", "1h", busy=200, acw=30, available=270)}
    assert figures[("ccmon_occupancy_ratio", ("billing", "5m"))] == 230 / 300
    assert figures[("ccmon_occupancy_ratio", ("billing", "1h"))] == 230 / 500
    # 100 s later the window is (300, 600]: busy 300-400, acw 30, available 430-600.
    later = agent_time(pipeline.board, 600)
    assert later[("ccmon_agent_state_seconds", ("billing", "5m", "busy"))] == 100
    assert later[("ccmon_agent_state_seconds", ("billing", "5m", "available"))] == 170


def test_a_late_event_takes_its_place_in_time_and_not_the_current_state():
    """busy at 300 arrives first, then the older available at 100: available 100-300, busy
    after; the gauge keeps busy (the latest by ts)."""
    pipeline = run([state("a1", 300, "busy", ["billing"], 0),
                    state("a1", 100, "available", ["billing"], 1)])
    figures = agent_time(pipeline.board, 400)
    assert figures[("ccmon_agent_state_seconds", ("billing", "1h", "available"))] == 200
    assert figures[("ccmon_agent_state_seconds", ("billing", "1h", "busy"))] == 100
    assert figures[("ccmon_agents", ("billing", "busy"))] == 1
    assert figures[("ccmon_agents", ("billing", "available"))] == 0


def test_leaving_a_queue_ends_the_time_there_and_ties_go_by_arrival():
    """a1 in billing and sales from 0 (available); at 60 busy in billing only: sales stops
    counting. At 120 two events with the same ts: away then offline; offline (later) holds."""
    pipeline = run([state("a1", 0, "available", ["billing", "sales"], 0),
                    state("a1", 60, "busy", ["billing"], 1),
                    state("a1", 120, "away", ["billing"], 2),
                    state("a1", 120, "offline", ["billing"], 3)])
    figures = agent_time(pipeline.board, 180)
    assert {k: v for k, v in figures.items() if k[0] == "ccmon_agent_state_seconds"
            and k[1][1] == "1h"} == {**seconds("billing", "1h", available=60, busy=60,
                                               offline=60),
                                     **seconds("sales", "1h", available=60)}
    assert ("ccmon_occupancy_ratio", ("sales", "5m")) in figures  # 60 s available: 0
    assert figures[("ccmon_occupancy_ratio", ("sales", "5m"))] == 0.0


def test_a_queue_listed_twice_counts_once():
    pipeline = run([state("a1", 0, "busy", ["billing", "billing"], 0)])
    assert agent_time(pipeline.board, 30)[
        ("ccmon_agent_state_seconds", ("billing", "5m", "busy"))] == 30


def test_no_occupancy_without_staffed_time():
    pipeline = run([state("a1", 0, "away", ["billing"], 0)])
    figures = agent_time(pipeline.board, 30)
    assert ("ccmon_occupancy_ratio", ("billing", "5m")) not in figures
    assert figures[("ccmon_agent_state_seconds", ("billing", "5m", "away"))] == 30


def test_pruned_timelines_give_the_same_figures_and_survive_a_restore():
    """An agent changing state every 10 min for a day: the board keeps only what the 1h
    window can reach, and a board restored from its logged units reads the same."""
    events = [state("a1", 600 * n, ("available", "busy", "acw")[n % 3], ["billing"], n)
              for n in range(144)]
    pipeline = run(events)
    board = pipeline.board
    now = 144 * 600 + 123
    figures = agent_time(board, now)
    # The agent is in one state or another throughout: the last hour sums to 3600 s.
    assert sum(v for k, v in figures.items() if k[0] == "ccmon_agent_state_seconds"
               and k[1][1] == "1h") == pytest.approx(3600)
    assert len(board.timelines["billing"].changes["a1"]) <= 8  # not 144
    copy = Board(WINDOWS, board.thresholds)
    for unit, unit_state in board.take_dirty().items():
        if unit_state is not None:
            copy.restore(unit, orjson.loads(orjson.dumps(unit_state)))
    assert agent_time(copy, now) == figures


def test_timelines_sum_exactly_on_edges():
    timelines = Timelines()
    timelines.record("a", 1_000, "busy")
    timelines.record("a", 2_000, None)  # left the queue
    timelines.record("a", 3_000, "acw")
    assert timelines.seconds(low=1_500, now=3_500) == {
        "available": 0, "busy": 0.5, "acw": 0.5, "away": 0, "offline": 0}
    assert timelines.seconds(low=2_000, now=3_000)["busy"] == 0  # (2000, 3000]: none
    assert timelines.prune(horizon=2_500) == ["a"]  # keeps the None at 2000: the state there
    assert timelines.changes == {"a": [(2_000, None), (3_000, "acw")]}
    assert timelines.prune(horizon=2_999) == []
    timelines.record("b", 500, None)
    assert timelines.prune(horizon=600) == ["b"] and "b" not in timelines.changes


def test_staffing_reaches_the_series_on_another_partition():
    """The worker splits facts by (queue, channel): the queue's agents (channel "") and its
    voice series may sit on different boards. The Erlang C N of billing/voice must count the
    agents there too, and the agent series be exported once, where the agents are."""
    lines = [state("a1", 0, "available", ["billing"], 0), state("a2", 0, "busy", ["billing"], 1)]
    contact = [{"event_id": f"c-{n}", "type": f"contact.{kind}", "ts": ts, "contact_id": "c",
                **fields} for n, (kind, ts, fields) in enumerate([
                    ("queued", "2026-11-22T09:01:00Z", {"queue": "billing"}),
                    ("answered", "2026-11-22T09:01:10Z", {}),
                    ("ended", "2026-11-22T09:03:10Z", {})])]
    whole = run(lines)
    whole.feed(Record("cc.voice:0", n, "voice", orjson.dumps(event))
               for n, event in enumerate(contact))
    agents_board, voice_board = (Board(WINDOWS, whole.board.thresholds) for _ in range(2))
    facts, _ = Intake(whole.config).take(0, [
        *(Record("cc.agents:0", n, None, orjson.dumps(e)) for n, e in enumerate(lines)),
        *(Record("cc.voice:0", n, "voice", orjson.dumps(e)) for n, e in enumerate(contact))])
    apply_facts(agents_board, [located for located in facts if located[1] == ""])
    apply_facts(voice_board, [located for located in facts if located[1] != ""])
    now = MS0 + 300_000
    def figures(board: Board) -> dict:
        return {(name, labels): value for name, labels, value in queue_metrics(board, now)}

    split = {**figures(agents_board), **figures(voice_board)}
    assert split == figures(whole.board)
    assert split[("ccmon_agents_required", ("billing", "voice", "5m"))] >= 1
    # N = 2 (available and busy): with one contact of 120 s in 5 min, A = 0.4 < N.
    assert ("ccmon_estimated_wait_seconds", ("billing", "voice", "5m")) in split


def test_a_queue_of_many_agents_logs_small_units():
    """Each agent's timeline is a unit of its own: 3,000 agents of one queue, each changing
    state 20 times, never make one changelog message grow with the number of agents."""
    events = [state(f"agent-{a:04d}", 10 * n + a / 1000, ("available", "busy")[n % 2],
                    ["billing"], n) for n in range(20) for a in range(3000)]
    board = run(events).board
    sizes = {unit: len(orjson.dumps(unit_state))
             for unit, unit_state in board.take_dirty().items() if unit.startswith("A")}
    assert len(sizes) == 3000 and max(sizes.values()) < 1_000


def test_an_agents_unit_of_a_whole_queue_restores_as_units_per_agent():
    """Logged before units per agent: one unit per queue with every agent's timeline. It
    restores as units per agent, is deleted, and its marks keep covering the facts it
    applied, also for an agent it does not hold (pruned away before the restart)."""
    board = Board(WINDOWS, EngineConfig().thresholds)
    board.restore("A\x1fbilling", {"marks": {"cc.agents:0": 4},
                                   "timelines": {"a1": [[MS0, "busy"]], "a2": [[MS0, "away"]]}})
    assert board.take_dirty() == {
        "A\x1fbilling": None,
        Board.agents_unit("billing", "a1"): {"marks": {"cc.agents:0": 4},
                                             "changes": [[MS0, "busy"]]},
        Board.agents_unit("billing", "a2"): {"marks": {"cc.agents:0": 4},
                                             "changes": [[MS0, "away"]]}}
    replayed = ("billing", "", "agent", MS0 + 1_000, "a3", "available")
    board.apply(replayed, "cc.agents:0", 4)  # covered by the queue's marks: applied before
    board.apply(("billing", "", "agent", MS0 + 1_000, "a1", "acw"), "cc.agents:0", 3)
    board.apply(("billing", "", "agent", MS0 + 2_000, "a2", "available"), "cc.agents:0", 5)
    assert board.timelines["billing"].latest() == {"a1": "busy", "a2": "available"}


def test_an_agents_unit_logged_before_timelines_restores_the_latest_states():
    board = Board(WINDOWS, EngineConfig().thresholds)
    board.restore("A\x1fbilling",
                  {"marks": {"cc.agents:0": 4096}, "agents": {"a1": "busy", "a2": "away"}})
    figures = agent_time(board, 60)
    assert figures[("ccmon_agents", ("billing", "busy"))] == 1
    assert figures[("ccmon_agents", ("billing", "away"))] == 1
    # Held "since ever": the whole 5m window, as the old state cannot say when it began.
    assert figures[("ccmon_agent_state_seconds", ("billing", "5m", "busy"))] == 300


def test_staffing_copies_only_when_the_staffing_changes():
    """STAFF copies go to the channel series when an agent joins or leaves a queue or moves
    in or out of available/busy/acw; busy -> acw -> available changes no N and sends none. A
    late event changes no staffing (the latest event by ts says it). By hand: a1 ends busy
    (staffed), a2 away, a3 left billing for sales: N(billing) = 1, N(sales) = 1."""
    lines = [state("a1", 0, "available", ["billing"], 0),   # joins: copies
             state("a1", 10, "busy", ["billing"], 1),       # none
             state("a1", 20, "acw", ["billing"], 2),        # none
             state("a2", 0, "busy", ["billing"], 3),        # joins: copies
             state("a2", 30, "away", ["billing"], 4),       # out of STAFFED: copies
             state("a1", 15, "offline", ["billing"], 5),    # late: none
             state("a3", 0, "available", ["billing"], 6),   # joins: copies
             state("a3", 40, "available", ["sales"], 7),    # leaves billing, joins sales
             state("a1", 50, "busy", ["billing"], 8)]       # none
    facts, _ = Intake(EngineConfig(windows=WINDOWS)).take(0, [
        Record("cc.agents:0", n, None, orjson.dumps(e)) for n, e in enumerate(lines)])
    copies = [(f[4], f[0], f[5]) for f in facts if f[2] == "staff" and f[1] == "voice"]
    assert copies == [("a1", "billing", "available"), ("a2", "billing", "busy"),
                      ("a2", "billing", "away"), ("a3", "billing", "available"),
                      ("a3", "billing", None), ("a3", "sales", "available")]
    voice = Board(WINDOWS, EngineConfig().thresholds)
    apply_facts(voice, [located for located in facts if located[1] == "voice"])
    assert (voice.staffed("billing"), voice.staffed("sales")) == (1, 1)
