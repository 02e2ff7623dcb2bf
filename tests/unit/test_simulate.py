"""The simulation is deterministic and its events follow events.md, checked independently here."""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime
from typing import Any

import pytest

from ccmon.stream.simulate import Simulation, format_ts

START = 1_795_856_400.0  # 2026-11-28T09:00:00Z
DAY_S = 86400
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SURVEY_RANGES = {"csat": (1, 5), "nps": (0, 10), "ces": (1, 7)}
AGENT_STATES = {"available", "busy", "acw", "away", "offline"}
REQUIRED: dict[str, dict[str, type | tuple[type, ...]]] = {
    "contact.queued": {"contact_id": str, "queue": str},
    "contact.answered": {"contact_id": str},
    "contact.hold_started": {"contact_id": str},
    "contact.hold_ended": {"contact_id": str},
    "contact.transferred": {"contact_id": str, "to_queue": str},
    "contact.abandoned": {"contact_id": str},
    "contact.ended": {"contact_id": str},
    "survey.submitted": {"contact_id": str, "kind": str, "score": int},
    "agent.state": {"agent_id": str, "state": str, "queues": list},
}


def seconds(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


@pytest.fixture(scope="module")
def day() -> list[dict[str, Any]]:
    return list(Simulation(seed=42, start=START).run(DAY_S))


def check_envelope(event: dict[str, Any]) -> None:
    assert isinstance(event["event_id"], str) and 1 <= len(event["event_id"]) <= 128
    assert event["type"] in REQUIRED, event
    assert isinstance(event["ts"], str) and TS.match(event["ts"]), event
    for name, kind in REQUIRED[event["type"]].items():
        assert isinstance(event.get(name), kind), (name, event)
    if event["type"] == "agent.state":
        assert "channel" not in event
        assert event["state"] in AGENT_STATES
        assert event["queues"] and all(isinstance(q, str) for q in event["queues"])
    else:
        assert event["channel"] in ("voice", "chat", "social")
    if event["type"] == "survey.submitted":
        low, high = SURVEY_RANGES[event["kind"]]
        assert low <= event["score"] <= high and not isinstance(event["score"], bool)
    if event["type"] == "contact.ended":
        assert isinstance(event["resolved"], bool)
        assert isinstance(event["wrap_seconds"], int | float) and event["wrap_seconds"] >= 0


class Lifecycle:
    """A contact's states per events.md; raises AssertionError on a step it does not allow."""

    def __init__(self) -> None:
        self.state: dict[str, str] = {}  # contact -> waiting | talking | holding | ended | gone
        self.queue: dict[str, str] = {}
        self.channel: dict[str, str] = {}
        self.transfers: Counter[str] = Counter()  # "waiting" / "talking": where transfers happen
        self.short_abandons = 0
        self.waiting_since: dict[str, float] = {}

    def step(self, event: dict[str, Any]) -> None:
        kind, cid = event["type"], event.get("contact_id")
        if kind == "agent.state":
            return
        state = self.state.get(cid)
        t = seconds(event["ts"])
        if kind == "contact.queued":
            assert state is None, event
            self.state[cid], self.queue[cid] = "waiting", event["queue"]
            self.channel[cid] = event["channel"]
            self.waiting_since[cid] = t
            return
        assert self.channel.get(cid) == event["channel"], event
        if kind == "contact.answered":
            assert state == "waiting", event
            self.state[cid] = "talking"
        elif kind == "contact.abandoned":
            assert state == "waiting", event
            self.state[cid] = "gone"
            self.short_abandons += t - self.waiting_since[cid] < 5
        elif kind == "contact.hold_started":
            assert state == "talking", event
            self.state[cid] = "holding"
        elif kind == "contact.hold_ended":
            assert state == "holding", event
            self.state[cid] = "talking"
        elif kind == "contact.transferred":
            assert state in ("waiting", "talking", "holding"), event
            assert event["to_queue"] != self.queue[cid]
            self.transfers["waiting" if state == "waiting" else "talking"] += 1
            self.state[cid], self.queue[cid] = "waiting", event["to_queue"]
            self.waiting_since[cid] = t
        elif kind == "contact.ended":
            assert state in ("talking", "holding"), event
            self.state[cid] = "ended"
        elif kind == "survey.submitted":
            assert state == "ended", event
            assert event.get("queue", self.queue[cid]) == self.queue[cid]


def test_same_seed_same_events_however_time_is_sliced() -> None:
    whole = list(Simulation(seed=7, start=START).run(4 * 3600))
    sliced_sim = Simulation(seed=7, start=START)
    sliced: list[dict[str, Any]] = []
    t = START
    while t < START + 4 * 3600:
        t = min(START + 4 * 3600, t + 37.5)
        sliced.extend(sliced_sim.events_until(t))
    assert whole == sliced
    assert whole != list(Simulation(seed=8, start=START).run(4 * 3600))
    assert whole[0]["event_id"] == "sim-7-1"


def test_events_until_returns_only_past_events_in_ts_order() -> None:
    sim = Simulation(seed=3, start=START)
    previous = START
    for step in range(1, 50):
        until = START + step * 60
        events = sim.events_until(until)
        times = [seconds(e["ts"]) for e in events]
        assert times == sorted(times)
        assert all(previous <= t <= until for t in times)
        previous = until


def test_format_ts() -> None:
    assert format_ts(1795856400.25) == "2026-11-28T09:00:00.250Z"
    assert format_ts(1795856400.9996) == "2026-11-28T09:00:01.000Z"


def test_every_event_is_well_formed_and_unique(day: list[dict[str, Any]]) -> None:
    for event in day:
        check_envelope(event)
    assert len({e["event_id"] for e in day}) == len(day)
    times = [seconds(e["ts"]) for e in day]
    assert times == sorted(times)
    assert times[0] >= START and times[-1] <= START + DAY_S


def test_every_contact_follows_the_lifecycle(day: list[dict[str, Any]]) -> None:
    lifecycle = Lifecycle()
    for event in day:
        lifecycle.step(event)
    open_contacts = [c for c, s in lifecycle.state.items() if s not in ("ended", "gone")]
    assert len(open_contacts) < 0.02 * len(lifecycle.state)  # only those still going at the end


def test_agents_are_busy_only_with_one_contact_at_a_time(day: list[dict[str, Any]]) -> None:
    state: dict[str, str] = {}
    for event in day:
        if event["type"] == "agent.state":
            state[event["agent_id"]] = event["state"]
        elif event["type"] == "contact.answered":
            # the busy state follows the answer at the same ts; the agent was not busy before
            assert state.get(event["agent_id"]) != "busy", event


def test_a_simulated_day_has_plausible_figures(day: list[dict[str, Any]]) -> None:
    types = Counter(e["type"] for e in day)
    lifecycle = Lifecycle()
    for event in day:
        lifecycle.step(event)
    offered = types["contact.queued"]
    assert 3000 < offered < 6000
    assert 0.03 < types["contact.abandoned"] / offered < 0.25
    assert lifecycle.short_abandons > 0
    assert types["contact.hold_started"] > 0.1 * types["contact.answered"]
    assert lifecycle.transfers["waiting"] > 0 and lifecycle.transfers["talking"] > 0
    kinds = Counter(e["kind"] for e in day if e["type"] == "survey.submitted")
    assert set(kinds) == {"csat", "nps", "ces"}
    states = Counter(e["state"] for e in day if e["type"] == "agent.state")
    assert set(states) == AGENT_STATES
    channels = Counter(e["channel"] for e in day if e["type"] == "contact.queued")
    assert set(channels) == {"voice", "chat", "social"}
    customers = Counter(e["customer_id"] for e in day if e["type"] == "contact.queued")
    assert all(isinstance(c, str) for c in customers)


def test_scale_grows_the_centre() -> None:
    from ccmon.stream.simulate import SimConfig

    small = list(Simulation(seed=1, start=START).run(3600))
    big = list(Simulation(seed=1, start=START, config=SimConfig().scaled(3)).run(3600))
    queued = [sum(e["type"] == "contact.queued" for e in run) for run in (small, big)]
    assert queued[1] > 2 * queued[0]
