"""Golden event sequences through the pure KPI engine (no Kafka): every definition of
metrics.md and the lifecycle and bad-input rules of events.md."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime

import orjson
import pytest

from ccmon.stream.engine import EngineConfig, Pipeline, Record
from ccmon.stream.facts import apply as apply_facts
from ccmon.stream.kpis import queue_metrics
from ccmon.stream.lifecycle import Fact
from ccmon.stream.queues import Board, Thresholds

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC).timestamp()


def at(seconds: float) -> str:
    """RFC 3339 time `seconds` after 09:00:00Z."""
    moment = datetime.fromtimestamp(T0 + seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ms(seconds: float) -> int:
    return round((T0 + seconds) * 1000)


_ids = itertools.count()


def ev(event_type: str, t: float, **fields) -> dict:
    return {"event_id": fields.pop("event_id", f"e{next(_ids)}"), "type": event_type, "ts": at(t),
            **fields}


def records(events, channel="voice", source="cc.voice:0", first_offset=0):
    out = []
    for offset, event in enumerate(events, first_offset):
        value = event if isinstance(event, bytes) else orjson.dumps(event)
        out.append(Record(source, offset, channel, value))
    return out


def run(events, now: float, config: EngineConfig | None = None, channel="voice"):
    pipeline = Pipeline(config)
    pipeline.feed(records(events, channel))
    return pipeline, metrics(pipeline.board, now)


def metrics(board: Board, now: float) -> dict:
    return {(name, labels): value for name, labels, value in queue_metrics(board, ms(now))}


def contact(cid: str, queue: str, queued: float, answered: float | None = None,
            ended: float | None = None, abandoned: float | None = None, wrap: float = 0):
    events = [ev("contact.queued", queued, contact_id=cid, queue=queue)]
    if answered is not None:
        events.append(ev("contact.answered", answered, contact_id=cid, agent_id="a1"))
    if abandoned is not None:
        events.append(ev("contact.abandoned", abandoned, contact_id=cid))
    if ended is not None:
        events.append(ev("contact.ended", ended, contact_id=cid, wrap_seconds=wrap))
    return events


W = ("billing", "voice", "5m")  # labels of a windowed series in the default 5m window
Q = ("billing", "voice")


def test_contract_example_contact():
    events = [
        {"event_id": "e1", "type": "contact.queued", "ts": "2026-11-22T09:00:00Z",
         "contact_id": "c1", "queue": "billing", "customer_id": "u9"},
        {"event_id": "e2", "type": "contact.answered", "ts": "2026-11-22T09:00:42Z",
         "contact_id": "c1", "agent_id": "a7"},
        {"event_id": "e3", "type": "contact.hold_started", "ts": "2026-11-22T09:02:00Z",
         "contact_id": "c1"},
        {"event_id": "e4", "type": "contact.hold_ended", "ts": "2026-11-22T09:02:30Z",
         "contact_id": "c1"},
        {"event_id": "e5", "type": "contact.ended", "ts": "2026-11-22T09:05:00Z",
         "contact_id": "c1", "resolved": True, "wrap_seconds": 20},
    ]
    pipeline, m = run(events, now=5 * 60)
    assert not pipeline.dead
    assert m[("ccmon_offered_contacts", W)] == 0  # queued at now - 5m exactly: out
    assert m[("ccmon_offered_contacts", ("billing", "voice", "15m"))] == 1
    assert m[("ccmon_answered_contacts", W)] == 1
    assert m[("ccmon_answer_wait_seconds_avg", W)] == 42
    assert m[("ccmon_service_level_ratio", W)] == 0  # 42 s > 20 s
    assert m[("ccmon_abandon_ratio", W)] == 0
    assert m[("ccmon_hold_seconds_avg", W)] == 30
    assert m[("ccmon_handle_seconds_avg", W)] == 258 + 20
    assert m[("ccmon_queue_waiting_contacts", Q)] == 0
    assert m[("ccmon_contacts_in_conversation", Q)] == 0
    assert ("ccmon_csat_ratio", W) not in m  # no survey: absent, not 0
    assert ("ccmon_abandon_wait_seconds_avg", W) not in m


def test_state_gauges_at_now():
    events = [
        *contact("c1", "billing", 0),
        *contact("c2", "billing", 10),
        *contact("c3", "billing", 20, answered=30),
        ev("contact.hold_started", 40, contact_id="c3"),
        *contact("c4", "billing", 25, answered=35),
    ]
    _, m = run(events, now=100)
    assert m[("ccmon_queue_waiting_contacts", Q)] == 2
    assert m[("ccmon_queue_oldest_wait_seconds", Q)] == 100
    assert m[("ccmon_contacts_in_conversation", Q)] == 2
    assert m[("ccmon_contacts_on_hold", Q)] == 1


def test_oldest_wait_is_zero_when_nobody_waits():
    _, m = run(contact("c1", "billing", 0, answered=5), now=50)
    assert m[("ccmon_queue_oldest_wait_seconds", Q)] == 0


def test_window_edge_an_event_exactly_at_now_minus_w_is_out():
    events = contact("c1", "billing", 0, answered=10)
    _, inside = run(events, now=10 + 300 - 0.001)
    _, edge = run(events, now=10 + 300)
    assert inside[("ccmon_answered_contacts", W)] == 1
    assert edge[("ccmon_answered_contacts", W)] == 0
    assert edge[("ccmon_answered_contacts", ("billing", "voice", "15m"))] == 1
    assert ("ccmon_answer_wait_seconds_avg", W) not in edge


def test_windows_slide_forward_incrementally():
    """The same board read at successive clocks equals fresh computations at each clock."""
    rng = random.Random(7)
    events = []
    for i in range(300):
        start = rng.uniform(0, 3000)
        wait = rng.uniform(0, 60)
        if rng.random() < 0.3:
            events += contact(f"c{i}", "billing", start, abandoned=start + wait)
        else:
            events += contact(f"c{i}", "billing", start, answered=start + wait,
                              ended=start + wait + rng.uniform(5, 300))
    events.sort(key=lambda e: e["ts"])
    pipeline, _ = run(events, now=0)
    for now in (100, 101.5, 400, 999.999, 1000, 2000, 3700, 5000, 9000):
        assert metrics(pipeline.board, now) == run(events, now=now)[1]


def test_short_abandon_threshold_is_strict():
    events = [
        *contact("c1", "billing", 0, abandoned=5),  # exactly the threshold: not short
        *contact("c2", "billing", 0, abandoned=4.999),  # under it: short
        *contact("c3", "billing", 0, answered=10),
    ]
    _, m = run(events, now=60)
    assert m[("ccmon_abandoned_contacts", W)] == 2
    assert m[("ccmon_short_abandoned_contacts", W)] == 1
    assert m[("ccmon_abandon_ratio", W)] == pytest.approx(1 / 2)
    assert m[("ccmon_service_level_ratio", W)] == pytest.approx(1 / 2)
    assert m[("ccmon_abandon_wait_seconds_avg", W)] == pytest.approx((5 + 4.999) / 2)


def test_short_abandon_threshold_zero_disables():
    config = EngineConfig(thresholds=Thresholds(short_abandon_ms=0))
    _, m = run(contact("c1", "billing", 0, abandoned=1), now=60, config=config)
    assert m[("ccmon_short_abandoned_contacts", W)] == 0
    assert m[("ccmon_abandon_ratio", W)] == 1


def test_service_level_threshold_inclusive_and_per_queue():
    events = [
        *contact("c1", "billing", 0, answered=20),  # wait == T: within
        *contact("c2", "billing", 0, answered=20.001),
        *contact("c3", "vip", 0, answered=15),
    ]
    config = EngineConfig(thresholds=Thresholds(service_level_by_queue={"vip": 10_000}))
    _, m = run(events, now=60, config=config)
    assert m[("ccmon_service_level_ratio", W)] == 0.5
    assert m[("ccmon_service_level_ratio", ("vip", "voice", "5m"))] == 0


def test_transfer_while_waiting():
    events = [
        *contact("c1", "billing", 0),
        ev("contact.transferred", 30, contact_id="c1", to_queue="sales"),
        ev("contact.answered", 40, contact_id="c1"),
    ]
    _, m = run(events, now=60)
    sales = ("sales", "voice", "5m")
    assert m[("ccmon_offered_contacts", W)] == 1
    assert m[("ccmon_transferred_contacts", W)] == 1
    assert m[("ccmon_answered_contacts", W)] == 0
    assert m[("ccmon_offered_contacts", sales)] == 1
    assert m[("ccmon_answered_contacts", sales)] == 1
    assert m[("ccmon_answer_wait_seconds_avg", sales)] == 10  # wait counted from the transfer
    assert ("ccmon_service_level_ratio", W) not in m  # nothing answered or abandoned there
    assert m[("ccmon_queue_waiting_contacts", Q)] == 0


def test_transfer_in_conversation_closes_open_hold_and_segment():
    events = [
        *contact("c1", "billing", 0, answered=10),
        ev("contact.hold_started", 20, contact_id="c1"),
        ev("contact.transferred", 50, contact_id="c1", to_queue="sales"),
        ev("contact.answered", 70, contact_id="c1"),
        ev("contact.ended", 100, contact_id="c1", wrap_seconds=5),
    ]
    _, m = run(events, now=120)
    sales = ("sales", "voice", "5m")
    assert m[("ccmon_hold_seconds_avg", W)] == 30  # the open hold closed at the transfer
    assert m[("ccmon_handle_seconds_avg", W)] == 40  # segment 10..50, no wrap on transfer
    assert m[("ccmon_transferred_contacts", W)] == 1
    assert m[("ccmon_handle_seconds_avg", sales)] == 30 + 5
    assert m[("ccmon_answer_wait_seconds_avg", sales)] == 20
    assert ("ccmon_hold_seconds_avg", sales) not in m
    assert m[("ccmon_contacts_on_hold", Q)] == 0
    assert m[("ccmon_contacts_in_conversation", Q)] == 0


def test_hold_open_at_end_closes_there():
    events = [
        *contact("c1", "billing", 0, answered=10),
        ev("contact.hold_started", 20, contact_id="c1"),
        ev("contact.ended", 65, contact_id="c1"),
    ]
    _, m = run(events, now=70)
    assert m[("ccmon_hold_seconds_avg", W)] == 45
    assert m[("ccmon_handle_seconds_avg", W)] == 55


def test_windowed_figures_count_when_the_closing_event_falls_inside():
    # Queued 10 minutes ago (outside 5m), answered 2 minutes ago (inside).
    events = contact("c1", "billing", 0, answered=480)
    _, m = run(events, now=600)
    assert m[("ccmon_offered_contacts", W)] == 0
    assert m[("ccmon_answered_contacts", W)] == 1
    assert m[("ccmon_answer_wait_seconds_avg", W)] == 480


def test_surveys_attribution_and_scores():
    events = [
        *contact("c1", "billing", 0, answered=10),
        ev("contact.transferred", 20, contact_id="c1", to_queue="sales"),
        ev("contact.abandoned", 30, contact_id="c1"),
        # after the contact ended: the queue where it was last answered
        ev("survey.submitted", 100, contact_id="c1", kind="csat", score=5),
        ev("survey.submitted", 101, contact_id="c1", kind="csat", score=3),
        ev("survey.submitted", 102, contact_id="c1", kind="nps", score=10),
        ev("survey.submitted", 103, contact_id="c1", kind="nps", score=6),
        ev("survey.submitted", 104, contact_id="c1", kind="nps", score=8),
        ev("survey.submitted", 105, contact_id="c1", kind="ces", score=2),
        # the survey's own queue wins
        ev("survey.submitted", 106, contact_id="c1", kind="ces", score=6, queue="sales"),
        # unknown contact naming a queue: counted there
        ev("survey.submitted", 107, contact_id="zz", kind="csat", score=4, queue="sales"),
        *contact("c2", "support", 0),
        ev("contact.abandoned", 3, contact_id="c2"),
        # never answered: where it last waited
        ev("survey.submitted", 108, contact_id="c2", kind="ces", score=7),
    ]
    pipeline, m = run(events, now=120)
    assert not pipeline.dead
    sales = ("sales", "voice", "5m")
    assert m[("ccmon_csat_ratio", W)] == 0.5
    assert m[("ccmon_nps_score", W)] == pytest.approx(100 * (1 / 3 - 1 / 3))
    assert m[("ccmon_ces_avg", W)] == 2
    assert m[("ccmon_ces_avg", sales)] == 6
    assert m[("ccmon_csat_ratio", sales)] == 1
    assert m[("ccmon_ces_avg", ("support", "voice", "5m"))] == 7


def test_survey_for_unknown_contact_without_queue_is_dead_lettered():
    pipeline, m = run([ev("survey.submitted", 1, contact_id="x", kind="csat", score=5)], now=10)
    assert [d.reason for d in pipeline.dead] == ["lifecycle"]
    assert m == {}


def test_duplicates_change_nothing():
    events = contact("c1", "billing", 0, answered=10, ended=50)
    doubled = [e for event in events for e in (event, event)]
    pipeline, m = run(doubled, now=60)
    assert pipeline.intake.duplicates == 3
    assert m == run(events, now=60)[1]
    assert sum(pipeline.intake.events.values()) == 3


def test_interleaving_of_contacts_does_not_matter():
    rng = random.Random(3)
    per_contact = [
        contact(f"c{i}", rng.choice(["billing", "sales"]), rng.uniform(0, 100),
                answered=None, abandoned=None) for i in range(30)]
    for i, events in enumerate(per_contact):
        start = orjson.loads(orjson.dumps(events[0]))["ts"]
        base = (datetime.fromisoformat(start).timestamp() - T0)
        if i % 3 == 0:
            events.append(ev("contact.abandoned", base + rng.uniform(1, 30), contact_id=f"c{i}"))
        elif i % 3 == 1:
            events.append(ev("contact.answered", base + rng.uniform(1, 30), contact_id=f"c{i}"))
            events.append(ev("contact.ended", base + 200, contact_id=f"c{i}"))
    reference = run([e for events in per_contact for e in events], now=400)[1]
    for _ in range(5):  # random merges that keep each contact's own order
        queues = [list(events) for events in per_contact]
        merged = []
        while any(queues):
            chosen = rng.choice([q for q in queues if q])
            merged.append(chosen.pop(0))
        assert run(merged, now=400)[1] == reference


def test_agents_all_states_exported_and_queue_changes():
    events = [
        ev("agent.state", 0, agent_id="a1", state="available", queues=["billing", "sales"]),
        ev("agent.state", 1, agent_id="a2", state="busy", queues=["billing"]),
        ev("agent.state", 2, agent_id="a1", state="away", queues=["sales"]),
    ]
    pipeline = Pipeline()
    pipeline.feed(records(events, channel=None, source="cc.agents:0"))
    m = metrics(pipeline.board, 10)
    assert not pipeline.dead
    assert {s: m[("ccmon_agents", ("billing", s))]
            for s in ("available", "busy", "acw", "away", "offline")} == \
        {"available": 0, "busy": 1, "acw": 0, "away": 0, "offline": 0}
    assert m[("ccmon_agents", ("sales", "away"))] == 1
    assert m[("ccmon_agents", ("sales", "available"))] == 0


def test_agent_state_older_than_the_latest_is_ignored():
    events = [
        ev("agent.state", 10, agent_id="a1", state="busy", queues=["billing"]),
        ev("agent.state", 5, agent_id="a1", state="available", queues=["billing"]),
    ]
    pipeline = Pipeline()
    pipeline.feed(records(events, channel=None, source="cc.agents:0"))
    m = metrics(pipeline.board, 20)
    assert m[("ccmon_agents", ("billing", "busy"))] == 1
    assert m[("ccmon_agents", ("billing", "available"))] == 0


def test_counts_are_zero_and_ratios_absent_without_samples():
    _, m = run(contact("c1", "billing", 0), now=400)  # queued 400 s ago, still waiting
    assert m[("ccmon_offered_contacts", W)] == 0
    assert m[("ccmon_answered_contacts", W)] == 0
    assert m[("ccmon_queue_waiting_contacts", Q)] == 1
    for name in ("ccmon_abandon_ratio", "ccmon_service_level_ratio",
                 "ccmon_answer_wait_seconds_avg", "ccmon_handle_seconds_avg",
                 "ccmon_nps_score", "ccmon_ces_avg", "ccmon_csat_ratio",
                 "ccmon_hold_seconds_avg", "ccmon_abandon_wait_seconds_avg"):
        assert (name, W) not in m


BAD_INPUTS = {
    "not_utf8": b'{"event_id":"\xff\xfe","type":"contact.queued"}',
    "invalid_json": b'{"event_id": "x", ',
    "not_object": b'["contact.queued"]',
    "missing_field": {"type": "contact.queued", "ts": 0, "contact_id": "c", "queue": "q"},
    "wrong_type": {"event_id": "b1", "type": "contact.queued", "ts": at(1), "contact_id": 7,
                   "queue": "billing"},
    "bad_value": {"event_id": "b2", "type": "survey.submitted", "ts": at(1), "contact_id": "c1",
                  "kind": "csat", "score": 9},
    "unknown_type": {"event_id": "b3", "type": "contact.teleported", "ts": at(1)},
    "bad_ts": {"event_id": "b4", "type": "contact.queued", "ts": "yesterday", "contact_id": "c9",
               "queue": "billing"},
    "channel_mismatch": {"event_id": "b5", "type": "contact.queued", "ts": at(1),
                         "channel": "chat", "contact_id": "c9", "queue": "billing"},
}
BAD_LIFECYCLE = [
    {"event_id": "l1", "type": "contact.answered", "ts": at(2), "contact_id": "never"},
    {"event_id": "l2", "type": "contact.answered", "ts": at(60), "contact_id": "c1"},  # 2nd
    {"event_id": "l3", "type": "contact.hold_ended", "ts": at(61), "contact_id": "c1"},
    {"event_id": "l4", "type": "contact.queued", "ts": at(62), "contact_id": "c1",
     "queue": "billing"},
    {"event_id": "l5", "type": "contact.ended", "ts": at(5), "contact_id": "c2"},  # waiting
    {"event_id": "l6", "type": "contact.answered", "ts": at(1), "contact_id": "c2"},  # past
]


@pytest.mark.parametrize("reason", sorted(BAD_INPUTS))
def test_bad_input_is_dead_lettered_and_changes_nothing(reason):
    good = [*contact("c1", "billing", 0, answered=30), *contact("c2", "billing", 3)]
    bad = BAD_INPUTS[reason]
    pipeline, m = run([*good, bad], now=100)
    assert [(d.reason, d.record.value) for d in pipeline.dead] == \
        [(reason, bad if isinstance(bad, bytes) else orjson.dumps(bad))]
    assert m == run(good, now=100)[1]
    assert pipeline.intake.invalid == {reason: 1}


def test_lifecycle_violations_are_dead_lettered_and_change_nothing():
    good = [*contact("c1", "billing", 0, answered=30), *contact("c2", "billing", 3)]
    pipeline, m = run([*good, *BAD_LIFECYCLE], now=100)
    assert [d.reason for d in pipeline.dead] == ["lifecycle"] * len(BAD_LIFECYCLE)
    assert m == run(good, now=100)[1]


@pytest.mark.parametrize(("ts", "unix_ms"), [
    (0, 0), (1763802000, 1_763_802_000_000), (1763802000.25, 1_763_802_000_250),
    ("2026-11-22T09:00:00.250+01:00", 1_795_334_400_250),  # 08:00:00.250Z
    ("2026-11-22T09:00:00Z", 1_795_338_000_000), ("2026-11-22t09:00:00z", 1_795_338_000_000),
    ("2026-11-22T09:00:00.0004-00:30", 1_795_339_800_000),  # finer than ms: rounded
])
def test_timestamp_forms(ts, unix_ms):
    event = {"event_id": "t", "type": "contact.queued", "ts": ts, "contact_id": "c",
             "queue": "billing"}
    pipeline, _ = run([event], now=0)
    assert not pipeline.dead
    assert pipeline.intake.latest_ts == unix_ms


@pytest.mark.parametrize("ts", [True, None, "2026-11-22", "2026-11-22T09:00:00", "NaN", [1],
                                "2026-11-22 09:00", "2026-13-01T00:00:00Z"])
def test_timestamp_rejects(ts):
    event = {"event_id": "t", "type": "contact.queued", "ts": ts, "contact_id": "c",
             "queue": "billing"}
    pipeline, _ = run([event], now=0)
    assert [d.reason for d in pipeline.dead] == ["bad_ts"]


def test_a_missing_timestamp_is_a_missing_field():
    event = {"event_id": "t", "type": "contact.queued", "contact_id": "c", "queue": "billing"}
    pipeline, _ = run([event], now=0)
    assert [d.reason for d in pipeline.dead] == ["missing_field"]


def test_contact_ids_are_per_channel():
    voice = records(contact("c1", "billing", 0, answered=5))
    chat = records(contact("c1", "billing", 1, answered=9), channel="chat",
                   source="cc.chat:0")
    pipeline = Pipeline()
    pipeline.feed(voice)
    pipeline.feed(chat)
    m = metrics(pipeline.board, 30)
    assert not pipeline.dead
    assert m[("ccmon_answered_contacts", W)] == 1
    assert m[("ccmon_answered_contacts", ("billing", "chat", "5m"))] == 1


def _persisted_copy(pipeline: Pipeline) -> Board:
    config = pipeline.config
    board = Board(config.windows, config.thresholds, config.timezone)
    state = {unit: orjson.loads(orjson.dumps(value))
             for unit, value in pipeline.board.take_dirty().items() if value is not None}
    for unit, value in state.items():
        board.restore(unit, value)
    return board


def surveyed_contacts(rng: random.Random, count: int, kinds: tuple[str, ...] = ("nps",)
                      ) -> list[dict]:
    """`count` contacts answered and ended within 20 minutes, each rated after it ended."""
    events = []
    for i in range(count):
        start = rng.uniform(0, 1200)
        events += contact(f"c{i}", rng.choice(["billing", "sales"]), start,
                          answered=start + rng.uniform(0, 40), ended=start + 300, wrap=3)
        kind = rng.choice(kinds)
        events.append(ev("survey.submitted", start + 400, contact_id=f"c{i}", kind=kind,
                         score=rng.randint(0, 10) if kind == "nps" else rng.randint(1, 5)))
    return events


def test_board_state_round_trips_through_persistence():
    events = surveyed_contacts(random.Random(11), 200)
    events += contact("w1", "billing", 1500)
    events.sort(key=lambda e: e["ts"])
    pipeline, _ = run(events, now=0)
    restored = _persisted_copy(pipeline)
    for now in (1600, 1700, 2500):
        assert metrics(restored, now) == metrics(pipeline.board, now)


def test_replayed_facts_are_applied_once():
    """After a crash the worker re-sends facts it had sent: the board ignores the repeats."""
    events = records([*contact("c1", "billing", 0, answered=10, ended=30),
                      *contact("c2", "billing", 5)])
    pipeline = Pipeline()
    facts, _ = pipeline.intake.take(0, events)
    apply_facts(pipeline.board, facts + facts[:4])
    assert metrics(pipeline.board, 60) == run(
        [*contact("c1", "billing", 0, answered=10, ended=30), *contact("c2", "billing", 5)],
        now=60)[1]


def test_replayed_fact_of_a_partly_expired_minute_is_applied_once():
    """The oldest seconds of a minute leave the longest window before its later ones: a fact
    of a later second, re-sent after a crash, must still be recognised as applied."""
    config = EngineConfig(windows=(("1m", 60_000),))
    pipeline = Pipeline(config)
    # Minute 0 of 09:00 holds answers at 09:00:10 and 09:00:50.
    events = records([ev("contact.queued", 5, contact_id="a", queue="billing"),
                      ev("contact.answered", 10, contact_id="a"),
                      ev("contact.queued", 45, contact_id="b", queue="billing"),
                      ev("contact.answered", 50, contact_id="b")])
    facts, _ = pipeline.intake.take(0, events)
    board = pipeline.board
    apply_facts(board, facts)
    board.advance(ms(80))  # 09:00:10 is out of the 1m window, 09:00:50 still in
    for located in facts:  # the crash: every fact again, same origin and position
        board.apply(Fact(*located[:6]), located[6], located[7])
    answered = {labels: value for name, labels, value in queue_metrics(board, ms(80))
                if name == "ccmon_answered_contacts"}
    assert answered == {("billing", "voice", "1m"): 1}
