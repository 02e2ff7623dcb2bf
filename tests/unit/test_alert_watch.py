"""Rules on a board as the event clock passes the multiples of the evaluation interval E
(alerts/watch.py; whole seconds unless a test says otherwise), pure: golden event sequences
in, transitions at exact moments out."""

from __future__ import annotations

import orjson
import pytest

from ccmon.alerts.state import FIRING, RESOLVED
from ccmon.alerts.watch import BoardWatch, Outgoing, tiles
from ccmon.stream.facts import apply as apply_facts
from ccmon.stream.kpis import queue_metrics
from tests.support.alerting import (
    LONG_QUEUE,
    LOW_SL,
    T0,
    Scenario,
    long_queue_day,
    ticks,
    watch_for,
)


def transitions(watch: BoardWatch, facts: list[tuple]) -> list[tuple]:
    return [(a.status, a.id, a.starts_at, a.ends_at, a.value)
            for a in apply_facts(watch.board, facts, watch)]


def test_fires_after_for_on_the_event_clock_and_resolves_past_clear():
    watch = watch_for(LONG_QUEUE)
    (fired, first_id, starts, _, value), (resolved, second_id, _, ends, last) = transitions(
        watch, long_queue_day().facts())
    assert (fired, starts, value) == (FIRING, (T0 + 13) * 1000, 3)  # pending 3 s + for 10 s
    assert (resolved, second_id, ends, last) == (RESOLVED, first_id, (T0 + 26) * 1000, 1)
    assert [m["status"] for m in (e.message for e in watch.outbox)] == [FIRING, RESOLVED]


@pytest.mark.parametrize(("interval_ms", "fires_s", "resolves_s"), [
    # c, the third waiting, comes at 2.0 s: the tick at 2.0 s is evaluated just before it, so
    # the condition holds from the next tick; it fires `for` (10 s) later. b's answer at
    # 25.7 s leaves 1 waiting (clear): resolved at the first tick after it.
    (250, 12.25, 25.75), (100, 12.1, 25.8), (1000, 13, 26), (300, 12.3, 25.8)])
def test_rules_are_evaluated_at_every_multiple_of_the_interval(
        interval_ms: int, fires_s: float, resolves_s: float):
    watch = watch_for(LONG_QUEUE, interval_ms=interval_ms)
    (fired, _, starts, _, _), (resolved, _, _, ends, _) = transitions(
        watch, long_queue_day().facts())
    assert (fired, starts) == (FIRING, round((T0 + fires_s) * 1000))
    assert (resolved, ends) == (RESOLVED, round((T0 + resolves_s) * 1000))


def test_the_default_interval_is_a_quarter_second():
    watch = BoardWatch([], watch_for().board)
    assert watch.interval_ms == 250


def test_a_condition_shorter_than_for_never_fires():
    s = Scenario()
    for i in range(3):
        s.queued(i * 0.1, f"c{i}")
    s.event(9.5, "contact.abandoned", "c0")  # true from the 1 s to the 9 s evaluation only
    ticks(s, 30)
    s.lines.sort(key=lambda line: line["ts"])
    assert transitions(watch_for(LONG_QUEUE), s.facts()) == []


def test_without_a_watch_nothing_is_evaluated():
    watch = watch_for(LONG_QUEUE)
    assert apply_facts(watch.board, long_queue_day().facts()) == []
    assert watch.evaluator.now is None


@pytest.mark.parametrize("interval_ms", [1000, 250, 100])
def test_a_restored_watch_goes_on_exactly_as_one_that_never_stopped(interval_ms: int):
    facts = long_queue_day().facts()
    whole = transitions(watch_for(LONG_QUEUE, interval_ms=interval_ms), facts)
    for cut in (5, len(facts) // 2, len(facts) - 3):
        first = watch_for(LONG_QUEUE, interval_ms=interval_ms)
        before = transitions(first, facts[:cut])
        # from what the worker logs, through JSON
        second = watch_for(LONG_QUEUE, interval_ms=interval_ms)
        for unit, unit_state in first.board.take_dirty().items():
            if unit_state is not None:
                second.board.restore(unit, orjson.loads(orjson.dumps(unit_state)))
        second.restore(orjson.loads(orjson.dumps({**first.evaluator.state(), "outbox": []})))
        assert before + transitions(second, facts[cut:]) == whole, cut


def test_a_ratio_whose_samples_leave_the_window_resolves():
    s = Scenario()
    s.queued(0, "x")
    s.event(30, "contact.abandoned", "x")  # waited 30 s: a counted abandon, SL 0
    ticks(s, 400)
    s.lines.sort(key=lambda line: line["ts"])
    [(fired, _, starts, _, value), (resolved, _, _, ends, _)] = transitions(
        watch_for(LOW_SL), s.facts())
    assert (fired, starts, value) == (FIRING, (T0 + 31) * 1000, 0)
    # A window is (now - 5m, now]: at 330 s the abandon at 30 s has left, the series is gone.
    assert (resolved, ends) == (RESOLVED, (T0 + 330) * 1000)


def test_tiles_show_the_queue_and_no_data_as_none():
    watch = watch_for()
    s = Scenario()
    s.queued(0, "a")
    s.queued(1, "b")
    apply_facts(watch.board, s.facts())
    [tile] = tiles(watch.board, "5m", (T0 + 11) * 1000, at=123).values()
    assert tile == {"queue": "billing", "channel": "voice", "window": "5m", "at": 123,
                    "waiting": 2, "oldest_wait_seconds": 11.0, "in_conversation": 0,
                    "on_hold": 0, "service_level_ratio": None, "abandon_ratio": None,
                    "answer_wait_seconds_avg": None}


def statuses(entries: list[Outgoing]) -> list[str]:
    return [entry.message["status"] for entry in entries]


def test_a_message_waits_until_its_state_is_logged_and_goes_until_published():
    facts = long_queue_day().facts()
    before = [fact for fact in facts if fact[3] < (T0 + 20) * 1000]  # fires at 13 s
    watch = watch_for(LONG_QUEUE)
    assert [t[0] for t in transitions(watch, before)] == [FIRING]
    assert watch.unpublished() == []  # its state is not in the changelog yet
    state, covered = watch.take_state()
    assert statuses(covered) == [FIRING]
    assert state["outbox"] == [covered[0].message]
    assert watch.take_state() == (None, [])  # nothing changed since
    for entry in covered:  # what the worker does once the changelog has the state
        entry.logged = True

    assert [t[0] for t in transitions(watch, facts[len(before):])] == [RESOLVED]
    assert statuses(watch.unpublished()) == [FIRING]  # the resolution is not logged yet
    state, covered = watch.take_state()
    assert statuses(covered) == [RESOLVED]
    assert [message["status"] for message in state["outbox"]] == [FIRING, RESOLVED]
    watch.published(watch.unpublished())
    assert statuses(watch.outbox) == [RESOLVED]

    # After a restart every message of the logged outbox goes (again) to the store.
    restarted = watch_for(LONG_QUEUE)
    restarted.restore(orjson.loads(orjson.dumps(state)))
    assert statuses(restarted.unpublished()) == [FIRING, RESOLVED]


def test_after_a_jump_of_the_clock_over_a_day_only_its_last_day_is_evaluated():
    s = Scenario()
    for contact, seconds in (("a", 0), ("b", 1.5), ("c", 2.0)):
        s.queued(seconds, contact)  # 3 waiting from 2.0 s on, for ever
    two_days = 2 * 86_400
    s.queued(two_days + 0.5, "tick", queue="sales")
    # The 3 s to 2-day evaluations are skipped but for the last day's: pending from the
    # evaluation at 1 day (2 days - 1 day), firing 10 s later.
    facts = s.facts()
    [(status, _, starts, _, value)] = transitions(watch_for(LONG_QUEUE), facts)
    assert (status, starts, value) == (FIRING, (T0 + 86_400 + 10) * 1000, 3)
    # E = 250 ms: the last tick is at 2 days + 0.5 s, the last day's first 1 day + 0.5 s.
    [(status, _, starts, _, _)] = transitions(watch_for(LONG_QUEUE, interval_ms=250), facts)
    assert (status, starts) == (FIRING, (T0 + 86_400 + 10.5) * 1000)


def run_time(text: str) -> str:
    """`text` made at run time, as settings and YAML make strings: not the literal's object."""
    return "".join(list(text))


def test_a_tile_shows_the_ratios_of_its_own_window():
    s = Scenario()
    s.queued(-1000, "z")
    s.event(-990, "contact.answered", "z")  # 20 min before: waited 10 s, within the level
    s.event(-900, "contact.ended", "z")
    s.queued(0, "a")
    s.event(30, "contact.answered", "a")  # waited 30 s: answered outside the 20 s level
    s.queued(100, "b")
    s.event(110, "contact.abandoned", "b")  # waited 10 s: not a short abandon (< 5 s)
    watch = watch_for()
    apply_facts(watch.board, s.facts())
    now = (T0 + 600) * 1000
    gauges = {"queue": "billing", "channel": "voice", "at": 7, "waiting": 0,
              "oldest_wait_seconds": 0, "in_conversation": 1, "on_hold": 0}
    # (T0 + 300 s, T0 + 600 s] holds no contact: no data.
    assert list(tiles(watch.board, run_time("5m"), now, at=7).values()) == [{
        **gauges, "window": "5m", "service_level_ratio": None, "abandon_ratio": None,
        "answer_wait_seconds_avg": None}]
    # 15 minutes hold a and b: 0 of 2 within the level, 1 of 2 abandoned, ASA 30 s.
    assert list(tiles(watch.board, run_time("15m"), now, at=7).values()) == [{
        **gauges, "window": "15m", "service_level_ratio": 0.0, "abandon_ratio": 0.5,
        "answer_wait_seconds_avg": 30.0}]
    # The hour holds z too: 1 of 3 within the level, 1 of 3 abandoned, ASA (10 + 30) / 2.
    assert list(tiles(watch.board, run_time("1h"), now, at=7).values()) == [{
        **gauges, "window": "1h", "service_level_ratio": 1 / 3, "abandon_ratio": 1 / 3,
        "answer_wait_seconds_avg": 20.0}]


def test_surveys_read_back_from_the_facts_topic_count_as_the_ones_taken_in():
    """The worker applies located facts as stage one made them or as read back from the facts
    topic, through JSON, where a survey's (kind, score) is a list."""
    s = Scenario()
    for contact, score in (("a", 5), ("b", 3)):
        s.queued(0, contact)
        s.event(10, "contact.answered", contact)
        s.event(70, "contact.ended", contact)
        s.event(100, "survey.submitted", contact, kind="csat", score=score)
    facts = s.facts()
    now = (T0 + 200) * 1000
    for located in (facts, orjson.loads(orjson.dumps(facts))):
        watch = watch_for()
        apply_facts(watch.board, located, watch)
        # csat: the share of scores >= 4, 5 and 3: 1 of 2, in every window.
        assert {labels[2]: value for name, labels, value in queue_metrics(watch.board, now)
                if name == "ccmon_csat_ratio"} == {"5m": 0.5, "15m": 0.5, "1h": 0.5}
