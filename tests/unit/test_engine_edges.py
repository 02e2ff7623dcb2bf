"""The engine's entry points (stream/engine.py), worked out by hand: the intake's health
counters (metrics.md "Monitor health") on a small mixed batch, the deployment's settings in
milliseconds, and the positions of case facts (two cases in one minute both count)."""

from __future__ import annotations

import itertools

import orjson
import pytest

from ccmon.settings import Settings, parse_duration, parse_windows
from ccmon.stream.engine import EngineConfig, Intake, Pipeline, Record, journey_position
from ccmon.stream.kpis import queue_metrics
from ccmon.stream.queues import Thresholds

T0 = 1_795_338_000  # 2026-11-22T09:00:00Z


def record(source: str, offset: int, channel: str | None, **event: object) -> Record:
    return Record(source, offset, channel, orjson.dumps(event))


def test_health_counters_of_a_mixed_batch():
    intake = Intake(EngineConfig())
    voice = [
        record("cc.voice:0", 0, "voice", event_id="v1", type="contact.queued", ts=T0 + 100,
               contact_id="c1", queue="q"),
        # later contact, earlier ts: applied; the channel's largest ts stays 100
        record("cc.voice:0", 1, "voice", event_id="v2", type="contact.queued", ts=T0 + 50,
               contact_id="c2", queue="q"),
        record("cc.voice:0", 2, "voice", event_id="v1", type="contact.queued", ts=T0 + 100,
               contact_id="c1", queue="q"),  # a repeat
        Record("cc.voice:0", 3, "voice", b"{"),  # not JSON
        record("cc.voice:0", 4, "voice", event_id="v3", type="contact.answered", ts=T0 + 400,
               contact_id="zz"),  # never queued: lifecycle
    ]
    chat = [record("cc.chat:1", 0, "chat", event_id="h1", type="contact.queued", ts=T0 + 300,
                   contact_id="c1", queue="q")]
    agents = [record("cc.agents:0", 7, None, event_id="a1", type="agent.state", ts=T0 + 500,
                     agent_id="a1", state="busy", queues=["q"])]
    facts, dead = intake.take(0, [*voice, *chat, *agents])
    assert dict(intake.events) == {("voice", "contact.queued"): 2, ("chat", "contact.queued"): 1,
                                   ("", "agent.state"): 1}
    assert intake.duplicates == 1
    assert dict(intake.invalid) == {"invalid_json": 1, "lifecycle": 1}
    assert [(d.source, d.record.offset, d.reason) for d in dead] == [
        ("cc.voice:0", 3, "invalid_json"), ("cc.voice:0", 4, "lifecycle")]
    # Agents have no channel: no `ccmon_last_event_timestamp_seconds` series of their own,
    # but their ts moves the event clock.
    assert intake.last_event_ts == {"voice": (T0 + 100) * 1000, "chat": (T0 + 300) * 1000}
    assert intake.latest_ts == (T0 + 500) * 1000
    # Each fact located by its record: offset * 1024 + its index among its event's facts.
    positions = [(located[6], located[7]) for located in facts]
    assert positions[:3] == [("cc.voice:0", 0), ("cc.voice:0", 1024), ("cc.chat:1", 0)]
    assert all(source == "cc.agents:0" and 7 * 1024 <= position < 8 * 1024
               for source, position in positions[3:])


def test_the_engine_takes_the_deployments_settings_in_milliseconds():
    # README's settings (seconds, as parsed) -> the engine's milliseconds, each by hand.
    settings = Settings(windows=parse_windows("5m,today"), timezone="Europe/Berlin",
                        service_level_seconds=20.5, service_level_by_queue={"vip": 10.0},
                        short_abandon_seconds=2.5, service_level_target=0.9,
                        contact_retention=parse_duration("2d"), case_timeout=parse_duration("3h"))
    assert EngineConfig.from_settings(settings) == EngineConfig(
        windows=(("5m", 300_000), ("today", 0)), timezone="Europe/Berlin",
        thresholds=Thresholds(service_level_ms=20_500, service_level_by_queue={"vip": 10_000},
                              short_abandon_ms=2_500, service_level_target=0.9),
        retention_ms=172_800_000, case_timeout_ms=10_800_000)


def test_two_cases_opened_in_one_queue_and_minute_both_count():
    # metrics.md 1.1: each contact with a customer and no open case opens one; two customers'
    # contacts entering q within the same minute open two, both open at now.
    pipeline = Pipeline()
    pipeline.feed([record("cc.voice:0", n, "voice", event_id=f"v{n}", type="contact.queued",
                          ts=T0 + n, contact_id=f"c{n}", queue="q", customer_id=f"u{n}")
                   for n in range(2)])
    pipeline.advance((T0 + 10) * 1000)
    m = {(name, labels): value
         for name, labels, value in queue_metrics(pipeline.board, (T0 + 10) * 1000)}
    assert m[("ccmon_opened_cases", ("q", "voice", "5m"))] == 2
    assert m[("ccmon_open_cases", ("q", "voice"))] == 2


def test_journey_positions_leave_room_for_each_steps_case_facts():
    # A journey step's case facts (at most 3) take the positions after its own: positions
    # increase with (offset, index), 1024 steps a message, never overlapping.
    steps = [(offset, index) for offset in range(3) for index in (0, 1, 2, 1022, 1023)]
    positions = [journey_position(offset, index) for offset, index in steps]
    assert all(later - earlier >= 3 for earlier, later in itertools.pairwise(positions))
    assert journey_position(0, 0) == 0


def test_a_valid_event_causing_no_fact_is_applied_not_a_duplicate():
    # An agent listing no queue, never listed in any: no fact, yet a valid event applied.
    intake = Intake(EngineConfig())
    intake.take(0, [record("cc.agents:0", 0, None, event_id="a1", type="agent.state", ts=T0,
                           agent_id="a1", state="away", queues=[])])
    assert (dict(intake.events), intake.duplicates) == ({("", "agent.state"): 1}, 0)


def test_a_partition_read_from_offset_0_is_not_read_twice_after_a_restart():
    # events.md 1.1: every input accounted for once, also across restarts; the read mark of
    # a partition whose only record handled is offset 0 is logged like any other.
    batch = [record("cc.voice:0", 0, "voice", event_id="v1", type="contact.queued", ts=T0,
                    contact_id="c1", queue="q")]
    first = Intake(EngineConfig())
    first.take(0, batch)
    restarted = Intake(EngineConfig())
    for key, state in orjson.loads(orjson.dumps(first.take_changes(0))).items():
        restarted.restore(0, key, state)
    facts, dead = restarted.take(0, batch)
    assert (facts, dead, restarted.duplicates) == ([], [], 0)


def test_the_engines_defaults_are_the_deployments():
    # README: CCMON_CONTACT_RETENTION defaults to 1d = 86 400 000 ms; a Pipeline without a
    # config (tests, benchmarks) runs with what a deployment without settings runs.
    assert EngineConfig().retention_ms == 86_400_000
    assert EngineConfig() == EngineConfig.from_settings(Settings())


def test_an_empty_batch_logs_no_read_mark():
    # Nothing handled, nothing changed: no state unit to log for the source.
    intake = Intake(EngineConfig())
    assert intake.take_run(0, "cc.voice:0", "voice", []) == ([], [])
    assert intake.take_changes(0) == {}


@pytest.mark.parametrize("ts, ms", [("1970-01-01T00:00:00.001Z", 1),
                                     ("1970-01-01T00:00:00Z", 0)])
def test_a_channels_last_event_from_the_epochs_first_millisecond(ts, ms):
    # events.md: a ts from 1970 is valid; metrics.md: the largest ts seen per channel, which
    # is 0 for an event at the epoch itself (a series, not none).
    intake = Intake(EngineConfig())
    intake.take(0, [record("cc.voice:0", 0, "voice", event_id="v1", type="contact.queued",
                           ts=ts, contact_id="c1", queue="q")])
    assert intake.last_event_ts == {"voice": ms}
