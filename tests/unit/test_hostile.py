"""Hostile input through the pure intake (events.md "Bad input" and its 1.1 precise points):
no record can make it raise, every record is accounted for exactly once, and a dead-lettered
record changes no metric. Property-based (Hypothesis) over arbitrary bytes and JSON values,
plus the poison messages that once stopped the worker."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccmon.stream.deadletter import DEAD_LETTER_BYTES, dead_letter_message
from ccmon.stream.engine import DeadLetter, EngineConfig, Intake, Pipeline, Record
from ccmon.stream.events import REASONS
from ccmon.stream.facts import apply as apply_facts
from ccmon.stream.kpis import queue_metrics
from ccmon.stream.simulate import Simulation

START = datetime(2026, 11, 22, 9, 0, tzinfo=UTC).timestamp()
SOURCE = "cc.voice:0"
AGENTS = "cc.agents:0"
# A quarter of an hour of a simulated centre's voice and agent events: valid material to mix
# hostile records into and to mutate.
VALID = [e for e in Simulation(3, START).run(900) if e.get("channel", "voice") == "voice"][:400]
FIELDS = ("event_id", "type", "ts", "channel", "contact_id", "queue", "customer_id", "agent_id",
          "to_queue", "resolved", "wrap_seconds", "kind", "score", "state", "queues")


def channel_of(event: object) -> str | None:
    return None if isinstance(event, dict) and event.get("type") == "agent.state" else "voice"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=300),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=4),
    max_leaves=12)


@st.composite
def mutated(draw: st.DrawFn) -> tuple[bytes, str | None]:
    """A valid event with one field removed or set to an arbitrary JSON value."""
    event = dict(draw(st.sampled_from(VALID)))
    name = draw(st.sampled_from(FIELDS))
    if draw(st.booleans()):
        event.pop(name, None)
    else:
        event[name] = draw(json_values)
    # The standard library writes what orjson cannot: integers beyond 64 bits, NaN, Infinity.
    return json.dumps(event).encode(), channel_of(event)


hostile = st.one_of(
    st.binary(max_size=300).map(lambda raw: (raw, "voice")),
    json_values.map(lambda value: (json.dumps(value).encode(), "voice")),
    mutated(),
    mutated().map(lambda pair: (b"\xef\xbb\xbf" + pair[0], pair[1])),
)


def as_records(values: list[tuple[bytes, str | None]]) -> list[Record]:
    return [Record(SOURCE if channel else AGENTS, offset, channel, raw)
            for offset, (raw, channel) in enumerate(values)]


def take(intake: Intake, records: list[Record]) -> tuple[list, list[DeadLetter]]:
    """Stage one the way the worker runs it: a run of records of one topic partition at a time
    (the agents' records have no channel, so they form runs of their own)."""
    facts, dead = [], []
    run: list[Record] = []
    for record in [*records, None]:
        if run and (record is None or record.channel != run[0].channel):
            f, d = intake.take_run(0, run[0].source, run[0].channel, run)
            facts += f
            dead += d
            run = []
        if record is not None:
            run.append(record)
    return facts, dead


def valid_records() -> list[tuple[bytes, str | None]]:
    return [(orjson.dumps(event), channel_of(event)) for event in VALID]


def figures(pipeline: Pipeline) -> list[tuple]:
    now = pipeline.intake.latest_ts
    return sorted((name, labels, "nan" if math.isnan(value) else value)
                  for name, labels, value in queue_metrics(pipeline.board, now))


def feed(values: list[tuple[bytes, str | None]]) -> tuple[Pipeline, list[DeadLetter]]:
    pipeline = Pipeline()
    facts, dead = take(pipeline.intake, as_records(values))
    apply_facts(pipeline.board, facts)
    return pipeline, dead


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(hostile, max_size=40))
def test_no_record_makes_the_intake_raise_and_each_is_accounted_once(values):
    intake = Intake(EngineConfig())
    _, dead = take(intake, as_records(values))
    assert {letter.reason for letter in dead} <= set(REASONS) - {"internal"}
    applied = sum(intake.events.values())
    assert applied + intake.duplicates + len(dead) == len(values)
    assert sum(intake.invalid.values()) == len(dead)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(VALID)), hostile), max_size=30))
def test_dead_lettered_records_change_no_metric(insertions):
    """Hostile records mixed into valid traffic: the metrics equal those of the same traffic
    without the records that were dead-lettered, so those changed nothing on their way."""
    values = valid_records()
    for index, record in sorted(insertions, key=lambda pair: -pair[0]):
        values.insert(index, record)
    mixed, dead = feed(values)
    rejected = {letter.record.offset for letter in dead}
    clean, clean_dead = feed([v for offset, v in enumerate(values) if offset not in rejected])
    assert clean_dead == []
    assert figures(mixed) == figures(clean)


@given(st.binary(max_size=2000))
def test_arbitrary_bytes_are_dead_lettered_or_applied(raw):
    intake = Intake(EngineConfig())
    _, dead = intake.take_run(0, SOURCE, "voice", [Record(SOURCE, 0, "voice", raw)])
    assert len(dead) + sum(intake.events.values()) == 1


def queued(event_id: str = "q1", contact_id: str = "c", **fields: object) -> dict:
    return {"event_id": event_id, "type": "contact.queued", "ts": START, "contact_id": contact_id,
            "queue": "billing", **fields}


POISON = [
    (b'{"event_id":"p1","type":"contact.queued","ts":1e308,"contact_id":"c","queue":"q"}',
     "bad_ts"),
    (b'{"event_id":"p1","type":"contact.queued","ts":1e400,"contact_id":"c","queue":"q"}',
     "bad_ts"),
    (orjson.dumps(queued("p1", ts=-1.0)), "bad_ts"),
    (orjson.dumps(queued("p1", ts=253_402_300_800)), "bad_ts"),  # year 10000
    (orjson.dumps(queued("p1", ts="1969-12-31T23:59:59Z")), "bad_ts"),
    (orjson.dumps(queued("p1", ts="9999-12-31T23:59:59-01:00")), "bad_ts"),
    (orjson.dumps(queued("p1", type={"a": 1})), "wrong_type"),
    (orjson.dumps(queued("p1", type=["contact.queued"])), "wrong_type"),
    (orjson.dumps(queued("p1", queue="q" * 257)), "bad_value"),
    (orjson.dumps(queued("p1", customer_id="u" * 257)), "bad_value"),
    (orjson.dumps(queued("p1", contact_id="c" * 257)), "bad_value"),
    (orjson.dumps(queued("e" * 129)), "bad_value"),
    (orjson.dumps({"event_id": "p1", "type": "survey.submitted", "ts": START, "contact_id": "c",
                   "kind": ["csat"], "score": 3, "queue": "billing"}), "wrong_type"),
    (b"{" * 5000, "invalid_json"),
    (b"[" * 100_000 + b"]" * 100_000, "invalid_json"),
    (b'{"event_id":"p1","type":"contact.queued","ts":' + b"1" * 500 + b',"contact_id":"c",'
     b'"queue":"q"}', "bad_ts"),
    (b"x" * 1_200_000, "invalid_json"),
    # A ts in milliseconds read as seconds would be year ~57,900: refused, not a clock jump.
    (orjson.dumps(queued("p1", ts=START * 1000)), "bad_ts"),
    (orjson.dumps(queued("p1", channel="fax")), "bad_value"),
    (orjson.dumps(queued("p1", channel="chat")), "channel_mismatch"),
    (orjson.dumps(queued("p1", channel=1)), "wrong_type"),
    (orjson.dumps({"event_id": "p1", "type": "contact.ended", "ts": START, "contact_id": "c",
                   "wrap_seconds": -1}), "bad_value"),
    (orjson.dumps({"event_id": "p1", "type": "contact.ended", "ts": START, "contact_id": "c",
                   "resolved": "yes"}), "wrong_type"),
    (orjson.dumps({"event_id": "p1", "type": "contact.ended", "ts": START, "contact_id": "c",
                   "wrap_seconds": "20"}), "wrong_type"),
]


@pytest.mark.parametrize(("raw", "reason"), POISON, ids=range(len(POISON)))
def test_each_poison_message_is_dead_lettered_and_the_next_event_applied(raw, reason):
    intake = Intake(EngineConfig())
    records = [Record(SOURCE, 0, "voice", raw), Record(SOURCE, 1, "voice", orjson.dumps(queued()))]
    facts, dead = intake.take_run(0, SOURCE, "voice", records)
    assert [(letter.record.offset, letter.reason) for letter in dead] == [(0, reason)]
    assert [fact[2] for fact in facts] == ["entered"]


def test_agent_poison_values():
    agent = {"event_id": "a1", "type": "agent.state", "ts": START, "agent_id": "a",
             "state": "available", "queues": ["billing"]}
    poison = [({**agent, "state": ["busy"]}, "wrong_type"),
              ({**agent, "state": "asleep"}, "bad_value"),
              ({**agent, "queues": ["q" * 257]}, "bad_value"),
              ({**agent, "queues": [""]}, "bad_value"),
              ({**agent, "queues": "billing"}, "wrong_type"),
              ({**agent, "queues": [7]}, "wrong_type"),
              ({k: v for k, v in agent.items() if k != "queues"}, "missing_field"),
              ({k: v for k, v in agent.items() if k != "state"}, "missing_field"),
              ({**agent, "agent_id": "a" * 257}, "bad_value"),
              ({**agent, "agent_id": 7}, "wrong_type"),
              ({**agent, "ts": "yesterday"}, "bad_ts")]
    intake = Intake(EngineConfig())
    records = [Record(AGENTS, i, None, orjson.dumps(event)) for i, (event, _) in enumerate(poison)]
    records.append(Record(AGENTS, len(poison), None, orjson.dumps(agent)))
    facts, dead = intake.take_run(0, AGENTS, None, records)
    assert [letter.reason for letter in dead] == [reason for _, reason in poison]
    # The valid one: its fact, and the staffing copies for the queue's channel series.
    assert [(fact[0], fact[1], fact[2], fact[5]) for fact in facts] == [
        ("billing", "", "agent", "available"), ("billing", "chat", "staff", "available"),
        ("billing", "social", "staff", "available"), ("billing", "voice", "staff", "available")]


def test_wrap_seconds_above_a_day_is_bad_value_and_a_day_is_fine():
    lines = [queued(), {"event_id": "a", "type": "contact.answered", "ts": START + 1,
                        "contact_id": "c"}]
    ended = {"event_id": "x", "type": "contact.ended", "ts": START + 2, "contact_id": "c"}
    lines += [{**ended, "wrap_seconds": 1e308}, {**ended, "wrap_seconds": 86_400.001},
              {**ended, "event_id": "y", "wrap_seconds": 86_400}]
    intake = Intake(EngineConfig())
    records = [Record(SOURCE, i, "voice", orjson.dumps(e)) for i, e in enumerate(lines)]
    facts, dead = intake.take_run(0, SOURCE, "voice", records)
    assert [letter.reason for letter in dead] == ["bad_value", "bad_value"]
    assert facts[-1][2:6:3] == ("ended", 1000 + 86_400_000)


def test_a_byte_order_mark_is_read_without_it():
    intake = Intake(EngineConfig())
    facts, dead = intake.take_run(0, SOURCE, "voice", [
        Record(SOURCE, 0, "voice", b"\xef\xbb\xbf" + orjson.dumps(queued()))])
    assert dead == [] and [fact[0] for fact in facts] == ["billing"]


def test_only_a_valid_event_registers_its_id():
    """events.md 1.1: a valid event reusing the id of an earlier invalid one is applied."""
    intake = Intake(EngineConfig())
    records = [Record(SOURCE, 0, "voice", orjson.dumps(queued("same", queue=""))),
               Record(SOURCE, 1, "voice", orjson.dumps(queued("same"))),
               Record(SOURCE, 2, "voice", orjson.dumps(queued("same")))]
    facts, dead = intake.take_run(0, SOURCE, "voice", records)
    assert [letter.reason for letter in dead] == ["bad_value"]
    assert len(facts) == 1 and intake.duplicates == 1


def test_re_read_records_are_accounted_for_once_also_after_a_restore():
    """A worker that re-reads input after a crash skips what its logged state has handled:
    no second dead letter, no duplicate counted, no fact again."""
    lines = [orjson.dumps(queued()), b"not json", orjson.dumps(queued("q2", "d"))]
    records = [Record(SOURCE, i, "voice", raw) for i, raw in enumerate(lines)]
    first = Intake(EngineConfig())
    facts, dead = first.take_run(0, SOURCE, "voice", records)
    assert (len(facts), len(dead)) == (2, 1)
    assert first.take_run(0, SOURCE, "voice", records) == ([], [])
    assert (first.duplicates, sum(first.invalid.values())) == (0, 1)

    restarted = Intake(EngineConfig())  # restored from what the first one logged
    for key, state in first.take_changes(0).items():
        if state is not None:
            restarted.restore(0, key, orjson.loads(orjson.dumps(state)))
    more = [*records, Record(SOURCE, 3, "voice", b"[]"),
            Record(SOURCE, 4, "voice", orjson.dumps(queued("q3", "e")))]
    facts, dead = restarted.take_run(0, SOURCE, "voice", more)
    assert [letter.record.offset for letter in dead] == [3]
    assert [fact[4] for fact in facts] == ["voice\x1fe"]
    assert restarted.duplicates == 0
    # Other topic partitions sharing the partition number keep their own marks.
    facts, _ = restarted.take_run(0, "cc.chat:0", "chat", [
        Record("cc.chat:0", 0, "chat", orjson.dumps(queued("q4", "f")))])
    assert len(facts) == 1


def test_a_message_too_large_to_dead_letter_whole_is_cut_with_its_size():
    big = Record(SOURCE, 7, "voice", b"x" * 1_200_000, b"k" * 10_000)
    key, value, headers = dead_letter_message(DeadLetter(SOURCE, big, "invalid_json", "no"))
    named = dict(headers)
    assert named["ccmon-original-size"] == b"1200000"
    assert named["ccmon-original-key-size"] == b"10000"
    assert named["ccmon-source"] == b"cc.voice:0:7"
    assert big.value.startswith(value) and big.key.startswith(key)
    size = len(key) + len(value) + sum(len(n) + len(v) for n, v in headers)
    assert size <= DEAD_LETTER_BYTES

    small = Record(SOURCE, 8, "voice", b"x" * 1000, b"k")
    assert dead_letter_message(DeadLetter(SOURCE, small, "invalid_json", "no"))[:2] == (
        b"k", b"x" * 1000)


def test_records_a_previous_owner_dead_lettered_are_not_dead_lettered_again():
    intake = Intake(EngineConfig())
    intake.ledger(0)
    intake.dead_before[0] = {(SOURCE, 0)}
    records = [Record(SOURCE, 0, "voice", b"[1]"), Record(SOURCE, 1, "voice", b"[2]")]
    _, dead = intake.take_run(0, SOURCE, "voice", records)
    assert [letter.record.offset for letter in dead] == [1]
    assert sum(intake.invalid.values()) == 1
