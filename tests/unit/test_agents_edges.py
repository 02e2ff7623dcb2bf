"""An agent's timeline in one queue (stream/agents.py) read as alerts.md 1.1's agents view
and metrics.md 1.1's agent seconds, by hand: the current state and since when (a repeated
state does not restart it), agents gone from the queue, and seconds at the window's edges."""

from __future__ import annotations

from ccmon.stream.agents import Timelines


def test_the_current_state_runs_from_the_first_of_its_repeats():
    timelines = Timelines()
    for agent, ts, state in [("a1", 0, "available"), ("a1", 100, "busy"), ("a1", 150, "busy"),
                             ("a2", 10, "busy"), ("a2", 20, None),  # left the queue
                             ("a3", 50, "away"), ("a3", 40, "acw")]:  # a late, older event
        timelines.record(agent, ts, state)
    # a1: busy since 100 (150 repeats it), changed last at 150; a3: its latest by ts.
    assert timelines.current() == {"a1": ("busy", 100, 150), "a3": ("away", 50, 50)}
    assert timelines.latest() == {"a1": "busy", "a3": "away"}


def test_agent_seconds_at_the_window_edges():
    """a1: available 0-100, busy 100-250, away from 250. Window (100, 300]: available's end
    at 100 is out, busy 100-250 counts 150, away 250-300 counts 50; (0, 100]: available 100.
    In ms, read in seconds."""
    timelines = Timelines()
    for ts, state in [(0, "available"), (100_000, "busy"), (250_000, "away")]:
        timelines.record("a1", ts, state)
    assert timelines.seconds(100_000, 300_000) == {
        "available": 0, "busy": 150.0, "acw": 0, "away": 50.0, "offline": 0}
    assert timelines.seconds(0, 100_000) == {
        "available": 100.0, "busy": 0, "acw": 0, "away": 0, "offline": 0}
    # Nothing before the first change: (-50, 50] holds 50 s of available only.
    assert timelines.seconds(-50_000, 50_000)["available"] == 50.0


def test_pruning_keeps_the_state_at_the_horizon():
    timelines = Timelines()
    for ts, state in [(0, "available"), (10, "busy"), (20, "acw"), (30, None)]:
        timelines.record("a1", ts, state)
    timelines.record("a2", 5, "away")
    # At horizon 20: a1's changes at or before it but the last (acw at 20) go; a2's one
    # change is its state there. At 30, a1 is out of the queue since then: forgotten.
    assert timelines.prune(20) == ["a1"]  # the agents whose changes went
    assert timelines.changes == {"a1": [(20, "acw"), (30, None)], "a2": [(5, "away")]}
    assert timelines.prune(20) == []
    assert timelines.prune(30) == ["a1"]
    assert timelines.changes == {"a2": [(5, "away")]}


def test_pruning_names_every_agent_it_changed_once():
    # The board rewrites (or forgets) the logged unit of each agent named: b loses old
    # changes, d loses old ones and is gone, a and c (only a leave left, e.g. restored so)
    # are gone: out of the queue since before the horizon.
    timelines = Timelines()
    for agent, ts, state in [("b", 0, "busy"), ("b", 10, "away"), ("b", 20, "acw"),
                             ("a", 5, None), ("c", 5, None), ("d", 0, "busy"), ("d", 5, None)]:
        timelines.record(agent, ts, state)
    assert timelines.prune(15) == ["b", "a", "c", "d"]
    assert timelines.changes == {"b": [(10, "away"), (20, "acw")]}


def test_a_leave_known_before_the_state_it_ends():
    # The leave (30 s) arrives first, the busy it ends (25 s) late: busy counts 25-30 only,
    # also when pruning ran in between (the leave is after the horizon: kept).
    timelines = Timelines()
    timelines.record("a1", 30_000, None)
    timelines.prune(20_000)
    timelines.record("a1", 25_000, "busy")
    assert timelines.seconds(0, 60_000)["busy"] == 5.0


def test_a_state_held_for_one_millisecond_counts_it():
    # Agent seconds are sums of milliseconds: available 1000 -> 1001 ms is 0.001 s, and a
    # window ending 1 ms into busy holds 0.001 s of it.
    timelines = Timelines()
    for ts, state in [(1000, "available"), (1001, "busy")]:
        timelines.record("a1", ts, state)
    assert timelines.seconds(0, 2000) == {
        "available": 0.001, "busy": 0.999, "acw": 0, "away": 0, "offline": 0}
    assert timelines.seconds(1000, 1002)["busy"] == 0.001
