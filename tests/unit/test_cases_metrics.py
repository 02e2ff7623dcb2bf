"""Cases wired into the engine (metrics.md 1.1, "Cases"): stage one keeps the customer and
hands journey steps over. Golden: every expected value is worked out by hand from the
contract, the arithmetic in the comments, never from the code."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from ccmon.stream.cases import ABANDON, END, ENTRY, JourneyFact
from ccmon.stream.engine import FACTS_PER_EVENT, EngineConfig, Intake, Pipeline, Record
from ccmon.stream.events import decode
from ccmon.stream.facts import apply as apply_facts
from ccmon.stream.kpis import queue_metrics
from ccmon.stream.lifecycle import Contact, Ledger, contact_key
from ccmon.stream.queues import Board

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC).timestamp()
SOURCE = "cc.voice:0"


def at(seconds: float) -> str:
    moment = datetime.fromtimestamp(T0 + seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ms(seconds: float) -> int:
    return round((T0 + seconds) * 1000)


def ev(event_id: str, event_type: str, t: float, contact: str, **fields) -> bytes:
    return orjson.dumps({"event_id": event_id, "type": event_type, "ts": at(t),
                         "contact_id": contact, **fields})


def test_stage_one_keeps_the_customer_and_an_old_state_loads_without_one():
    event = decode(ev("e1", "contact.queued", 0, "c1", queue="q", customer_id="k"), "voice")
    assert event.customer_id == "k"
    ledger = Ledger()
    ledger.apply(event)
    key = contact_key("voice", "c1")
    state = ledger.take_dirty()[key]
    assert state[9] == "k"  # then the agent of its latest answer (agents view)
    old = state[:9]  # logged before cases
    restored = Ledger()
    restored.restore(key, old)
    assert restored.contacts[key].customer is None
    assert Contact.from_json(state).customer == "k"


def test_intake_hands_over_the_journey_steps_of_contacts_with_a_customer():
    lines = [ev("e0", "contact.queued", 0, "c1", queue="q", customer_id="k"),
             ev("e1", "contact.queued", 1, "c2", queue="q"),  # no customer: no step
             ev("e2", "contact.answered", 2, "c1"),  # an answer: no step
             ev("e3", "contact.abandoned", 3, "c2"),
             ev("e4", "contact.ended", 4, "c1", resolved=True),
             ev("e4", "contact.ended", 4, "c1", resolved=True)]  # a duplicate: no step
    intake = Intake(EngineConfig())
    journeys: list[JourneyFact] = []
    intake.take(0, [Record(SOURCE, offset, "voice", line) for offset, line in enumerate(lines)],
                journeys)
    key = contact_key("voice", "c1")
    assert journeys == [
        JourneyFact("k", key, ENTRY, ms(0), "q", "voice", False, SOURCE, 0),
        JourneyFact("k", key, END, ms(4), "q", "voice", True, SOURCE, 4 * FACTS_PER_EVENT)]
    assert ABANDON not in {journey.kind for journey in journeys}


# -- the golden story through `Pipeline` ----------------------------------------------------
# R = 600 s; read at 09:50 (t = 3000 s): "5m" is (2700, 3000], "1h" (-600, 3000] holds all.
R_MS = 600_000
NOW = 3000
CASES = ("ccmon_opened_cases", "ccmon_repeat_contacts", "ccmon_reopened_cases",
         "ccmon_resolved_cases", "ccmon_dropped_cases", "ccmon_first_contact_resolution_ratio",
         "ccmon_case_resolution_seconds_avg", "ccmon_case_contacts_avg",
         "ccmon_multichannel_case_ratio", "ccmon_open_cases")


def story() -> list[tuple[str, bytes]]:
    """(channel, line) in ts order."""
    v, c = "voice", "chat"
    return [
        # A: a1 (voice, sales) opens at 0 and ends unresolved at 100.
        (v, ev("a1q", "contact.queued", 0, "a1", queue="sales", customer_id="A")),
        (v, ev("a1a", "contact.answered", 10, "a1")),
        # E: e1 (chat, sales) opens at 50, abandons at 60: dropped at 60 + 600 = 660.
        (c, ev("e1q", "contact.queued", 50, "e1", queue="sales", customer_id="E")),
        (c, ev("e1x", "contact.abandoned", 60, "e1")),
        (v, ev("a1e", "contact.ended", 100, "a1", resolved=False)),
        # A: a2 on chat at 200; 200 - 100 = 100 <= R: joins, a repeat on another channel.
        (c, ev("a2q", "contact.queued", 200, "a2", queue="sales", customer_id="A")),
        (c, ev("a2a", "contact.answered", 210, "a2")),
        # Resolved at 300 in (sales, chat) by a2, not its opener a1: FCR false;
        # 300 - 0 = 300 s; 2 contacts; voice + chat: multi-channel.
        (c, ev("a2e", "contact.ended", 300, "a2", resolved=True)),
        # A: a3 at 700; 700 - 300 = 400 < R: a reopened case, in (support, voice).
        (v, ev("a3q", "contact.queued", 700, "a3", queue="support", customer_id="A")),
        (v, ev("a3a", "contact.answered", 710, "a3")),
        # B: b1 (voice, sales) at 1000, abandons at 1050: dropped at 1650 (outside 5m).
        (v, ev("b1q", "contact.queued", 1000, "b1", queue="sales", customer_id="B")),
        (v, ev("b1x", "contact.abandoned", 1050, "b1")),
        # C: c1 (chat, support) at 2000, ends unresolved at 2150: dropped at 2750 (in 5m).
        (c, ev("c1q", "contact.queued", 2000, "c1", queue="support", customer_id="C")),
        (c, ev("c1a", "contact.answered", 2010, "c1")),
        (c, ev("c1e", "contact.ended", 2150, "c1", resolved=False)),
        # No customer: `resolved: true` changes nothing for cases.
        (v, ev("n1q", "contact.queued", 2720, "n1", queue="sales")),
        (v, ev("n1a", "contact.answered", 2730, "n1")),
        (v, ev("n1e", "contact.ended", 2790, "n1", resolved=True)),
        # A: a3 resolves at 2800 (in 5m), by its opener: FCR; 2800 - 700 = 2100 s; 1 contact.
        (v, ev("a3e", "contact.ended", 2800, "a3", resolved=True)),
        # D: d1 (voice, support) at 2900, still waiting: an open case.
        (v, ev("d1q", "contact.queued", 2900, "d1", queue="support", customer_id="D")),
        # E: e2 at 2950: its previous case was dropped (at 660), so not a reopening.
        (c, ev("e2q", "contact.queued", 2950, "e2", queue="sales", customer_id="E")),
    ]


def story_records() -> list[Record]:
    """The story as input records: one topic partition per channel."""
    offsets = {"voice": 0, "chat": 0}
    records = []
    for channel, line in story():
        records.append(Record(f"cc.{channel}:0", offsets[channel], channel, line))
        offsets[channel] += 1
    return records


def story_config() -> EngineConfig:
    return EngineConfig(windows=(("5m", 300_000), ("1h", 3_600_000)), case_timeout_ms=R_MS)


def story_pipeline() -> Pipeline:
    pipeline = Pipeline(story_config())
    pipeline.feed(story_records())
    pipeline.advance(ms(NOW))
    return pipeline


def case_series(board: Board) -> dict:
    return {(name, labels): value for name, labels, value in queue_metrics(board, ms(NOW))
            if name in CASES}


def counts(queue: str, channel: str, window: str, opened=0, repeat=0, reopened=0, resolved=0,
           dropped=0) -> dict:
    labels = (queue, channel, window)
    return {("ccmon_opened_cases", labels): opened, ("ccmon_repeat_contacts", labels): repeat,
            ("ccmon_reopened_cases", labels): reopened,
            ("ccmon_resolved_cases", labels): resolved,
            ("ccmon_dropped_cases", labels): dropped}


def resolutions(queue: str, channel: str, window: str, fcr: float, seconds: float,
                contacts: float, multichannel: float) -> dict:
    labels = (queue, channel, window)
    return {("ccmon_first_contact_resolution_ratio", labels): fcr,
            ("ccmon_case_resolution_seconds_avg", labels): seconds,
            ("ccmon_case_contacts_avg", labels): contacts,
            ("ccmon_multichannel_case_ratio", labels): multichannel}


EXPECTED = {
    # 1h. (sales, voice): a1 and b1 opened; b1's case dropped at 1650; nothing resolved.
    **counts("sales", "voice", "1h", opened=2, dropped=1),
    # (sales, chat): e1 and e2 opened, a2 joined; A resolved at 300; e1's case dropped at 660.
    **counts("sales", "chat", "1h", opened=2, repeat=1, resolved=1, dropped=1),
    # one resolution: FCR 0/1, 300 s, 2 contacts, multi-channel 1/1
    **resolutions("sales", "chat", "1h", 0.0, 300.0, 2.0, 1.0),
    # (support, voice): a3 (reopened) and d1 opened; a3 resolved at 2800.
    **counts("support", "voice", "1h", opened=2, reopened=1, resolved=1),
    **resolutions("support", "voice", "1h", 1.0, 2100.0, 1.0, 0.0),
    # (support, chat): c1 opened, dropped at 2750.
    **counts("support", "chat", "1h", opened=1, dropped=1),
    # 5m, (2700, 3000]: e2 at 2950, d1 at 2900, a3's resolution at 2800, c1's drop at 2750;
    # n1 (no customer) counts nothing.
    **counts("sales", "voice", "5m"),
    **counts("sales", "chat", "5m", opened=1),
    **counts("support", "voice", "5m", opened=1, resolved=1),
    **resolutions("support", "voice", "5m", 1.0, 2100.0, 1.0, 0.0),
    **counts("support", "chat", "5m", dropped=1),
    # Open now: e2's case in (sales, chat), d1's in (support, voice). A's moved from
    # (sales, voice) to (sales, chat) at a2 and closed at 300; b1's and c1's were dropped.
    ("ccmon_open_cases", ("sales", "voice")): 0, ("ccmon_open_cases", ("sales", "chat")): 1,
    ("ccmon_open_cases", ("support", "voice")): 1, ("ccmon_open_cases", ("support", "chat")): 0,
}


def test_every_cases_series_of_a_story_worked_out_by_hand():
    assert case_series(story_pipeline().board) == EXPECTED


def test_the_cases_series_survive_the_boards_log():
    board = story_pipeline().board
    restored = Board(story_config().windows, board.thresholds)
    for unit, state in orjson.loads(orjson.dumps(board.take_dirty())).items():
        if state is not None:
            restored.restore(unit, state)
    assert case_series(restored) == EXPECTED


def test_a_drop_is_at_latest_leave_plus_r_strictly():
    pipeline = Pipeline(EngineConfig(case_timeout_ms=R_MS))
    pipeline.feed([Record(SOURCE, 0, "voice", ev("q", "contact.queued", 0, "x", queue="q",
                                                 customer_id="X")),
                   Record(SOURCE, 1, "voice", ev("x", "contact.abandoned", 10, "x"))])
    dropped = ("ccmon_dropped_cases", ("q", "voice", "5m"))
    pipeline.advance(ms(610))  # 610 - 10 = 600: not more than R yet
    assert metrics(pipeline, 610)[dropped] == 0
    assert metrics(pipeline, 610)[("ccmon_open_cases", ("q", "voice"))] == 1
    pipeline.advance(ms(610) + 1)
    assert metrics(pipeline, 610.001)[dropped] == 1
    assert metrics(pipeline, 610.001)[("ccmon_open_cases", ("q", "voice"))] == 0


def metrics(pipeline: Pipeline, t: float) -> dict:
    return {(name, labels): value for name, labels, value in queue_metrics(pipeline.board, ms(t))}


def test_case_facts_through_json_as_the_worker_sends_them():
    """The worker sends case facts as JSON (a resolution becomes an array, a reopening a
    boolean) and its boards apply them as read back: the same series as in one process."""
    pipeline = Pipeline(story_config())
    journeys: list[JourneyFact] = []
    facts, _ = pipeline.intake.take(0, story_records(), journeys)
    for index, journey in enumerate(orjson.loads(orjson.dumps(journeys, default=tuple))):
        facts += pipeline.cases.apply(JourneyFact(*journey), "journeys:0", index * 8)
    facts += pipeline.cases.advance(ms(NOW))
    apply_facts(pipeline.board, orjson.loads(orjson.dumps(facts, default=tuple)))
    assert case_series(pipeline.board) == EXPECTED
