"""`ccmon demo` opens with an incident (`OPENING_INCIDENT`): within its first minute a queue
builds up, the example rule `queue-building` fires and resolves, and agents change state.
Checked on the pure engine and alert evaluator, on the event clock, for many seeds (the demo
picks one at random)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
import pytest

from ccmon.alerts.rules import load_rules
from ccmon.alerts.watch import BoardWatch
from ccmon.demo import EXAMPLE_RULES
from ccmon.stream.engine import EngineConfig, Intake, Record
from ccmon.stream.facts import apply as apply_facts
from ccmon.stream.queues import Board
from ccmon.stream.simulate import OPENING_INCIDENT, SimConfig, Simulation
from tests.unit.test_simulate import Lifecycle, check_envelope, seconds

START = 1_795_856_400.0  # 2026-11-28T09:00:00Z
MINUTE_S = 60


def opening(seed: int, seconds: int = MINUTE_S) -> list[dict[str, Any]]:
    config = replace(SimConfig(), incident=OPENING_INCIDENT)
    return list(Simulation(seed, START, config).run(seconds))


def alerts_of(events: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    """(rule, status, queue, channel) of every transition, evaluating each second."""
    config = EngineConfig()
    intake = Intake(config)
    board = Board(config.windows, config.thresholds, config.timezone)
    windows = tuple(label for label, _ in config.windows)
    watch = BoardWatch(load_rules(str(EXAMPLE_RULES), windows), board)
    records = [Record("cc.agents:0" if e["type"] == "agent.state" else f"cc.{e['channel']}:0",
                      offset, e.get("channel"), orjson.dumps(e))
               for offset, e in enumerate(events)]
    facts, dead = intake.take(0, records)
    assert dead == []
    transitions = apply_facts(board, facts, watch)
    transitions += watch.pass_to(int((START + MINUTE_S) * 1000))
    return [(a.rule.name, a.status, a.labels.get("queue", ""), a.labels.get("channel", ""))
            for a in transitions]


@pytest.mark.parametrize("seed", range(20))
def test_billing_builds_up_and_its_alert_fires_and_resolves_in_the_first_minute(seed: int):
    transitions = alerts_of(opening(seed))
    building = [t for t in transitions if t[0] == "queue-building"]
    assert building[:2] == [("queue-building", "firing", "billing", "voice"),
                            ("queue-building", "resolved", "billing", "voice")]


def test_the_huddle_shows_billing_agents_going_away_and_coming_back():
    events = [e for e in opening(seed=3) if e["type"] == "agent.state"]
    huddle_end = START + OPENING_INCIDENT.start_s + OPENING_INCIDENT.huddle_s
    away = {e["agent_id"] for e in events if e["state"] == "away" and "billing" in e["queues"]
            and seconds(e["ts"]) < huddle_end}
    back = {e["agent_id"] for e in events if e["state"] in ("available", "busy")
            and seconds(e["ts"]) >= huddle_end}
    assert len(away) >= 2 and away <= back


def test_an_hour_with_the_incident_follows_the_lifecycle():
    events = opening(seed=11, seconds=3600)
    lifecycle = Lifecycle()
    busy: dict[str, str] = {}
    for event in events:
        check_envelope(event)
        lifecycle.step(event)
        if event["type"] == "agent.state":
            busy[event["agent_id"]] = event["state"]
        elif event["type"] == "contact.answered":
            assert busy.get(event["agent_id"]) != "busy", event
    assert len({e["event_id"] for e in events}) == len(events)
