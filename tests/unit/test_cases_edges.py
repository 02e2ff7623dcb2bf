"""stream/cases.py at its edges: what mutation testing found unchecked (docs/testing.md).

Values worked out by hand from metrics.md 1.1 ("Cases"), events.md (a repeat changes nothing,
also across crashes) and the module's own persistence and position rules (its docstring);
R = 100 s as in test_cases.py. Strings that travel (journey steps, changelog keys) are read
back from bytes here, as the worker reads them, never the module's own constants.
"""

from __future__ import annotations

import orjson

from ccmon.stream.cases import (
    DROPPED,
    ENTRY,
    OPEN_CASES,
    OPENED,
    REPEAT,
    RESOLVED,
    Cases,
    JourneyFact,
    Resolution,
)
from tests.unit.test_cases import DROPS, Feed, R, ms, plain


def test_three_channels_are_multichannel_too() -> None:
    # "more than one channel": voice, chat and social in one case, resolved at 30 s.
    feed = Feed()
    feed.entry("u1", "c1", 0, "billing", "voice")
    feed.entry("u1", "c2", 10, "support", "chat")
    feed.entry("u1", "c3", 20, "care", "social")
    resolved = plain(feed.end("u1", "c3", 30, "care", "social", resolved=True))
    assert resolved[0] == (RESOLVED, "care", "social", 30_000, Resolution(30_000, 3, False, True))


def test_the_facts_of_one_step_take_consecutive_positions() -> None:
    # The journey message at offset 1 (position 1024): its facts at 1024, 1025, 1026 — each
    # greater than every earlier step's, as stage two's read marks need.
    feed = Feed()
    feed.entry("u1", "c1", 0, "billing")
    located = feed.entry("u1", "c2", 10, "support", "chat")
    assert [(kind, position) for _, _, kind, _, _, _, _, position in located] == [
        (REPEAT, 1024), (OPEN_CASES, 1025), (OPEN_CASES, 1026)]


def test_every_due_drop_comes_whatever_order_the_customers_left_in() -> None:
    # u1's case idles from 10 s (drop at 110), u2's from 50 s (drop at 150), u3's from 5 s
    # (drop at 105). At 120 s u3's and u1's are dropped, in the order of their moments.
    feed = Feed()
    for customer, left in (("u1", 10), ("u2", 50), ("u3", 5)):
        feed.entry(customer, f"{customer}-c", 0, "billing")
        feed.abandon(customer, f"{customer}-c", left, "billing")
    dropped = [(ts, contact) for _, _, kind, ts, contact, *_ in feed.advance(120)
               if kind == DROPPED]
    assert dropped == [(105_000, "u3-c"), (110_000, "u1-c")]


def test_a_steps_facts_take_the_positions_from_its_origin_on() -> None:
    # The three facts of a join that moves the gauge, from an origin of 5: 5, 6, 7.
    feed = Feed()
    feed.entry("u1", "c1", 0, "billing")
    join = feed.journey(ENTRY, "u1", "c2", 10, "support", "chat")
    assert [position for *_, position in feed.cases.apply(join, "journeys:0", 5)] == [5, 6, 7]


def test_a_late_contact_that_entered_earlier_leaves_the_gauge_with_the_latest() -> None:
    # c1 entered support/chat at 10 but reaches us after c2 (billing/voice at 20): it joins,
    # counted where it entered; c2 stays the latest contact, so the gauge does not move.
    feed = Feed()
    feed.entry("u1", "c2", 20, "billing")
    assert plain(feed.entry("u1", "c1", 10, "support", "chat")) == [
        (REPEAT, "support", "chat", 10_000, None)]


def test_an_entry_r_or_more_after_the_resolution_is_no_reopening() -> None:
    # Resolved at 10; x (of the closed case) abandons at 50, so u1 is remembered until
    # 50 + 100 = 150. c2 at 120: 120 - 10 = 110 s, not < R: opened, not reopened.
    feed = Feed()
    feed.entry("u1", "c1", 0, "billing")
    feed.entry("u1", "x", 5, "billing")
    feed.end("u1", "c1", 10, "billing", resolved=True)
    feed.abandon("u1", "x", 50, "billing")
    assert plain(feed.entry("u1", "c2", 120, "billing")) == [
        (OPENED, "billing", "voice", 120_000, False), (OPEN_CASES, "billing", "voice", 120_000, 1)]


def test_an_entry_sent_again_once_its_customer_is_forgotten_changes_nothing() -> None:
    # c2 joins at 20 and c1 resolves the case in that same ms: u1's latest ts is 20, so it is
    # forgotten at 20 + 100 = 120. c2's entry sent again then (a stage-one crash), read from
    # the journey stream's JSON: a repeat, nothing happens (no second case).
    feed = Feed()
    feed.entry("u1", "c1", 0, "billing")
    feed.entry("u1", "c2", 20, "billing")
    feed.end("u1", "c1", 20, "billing", resolved=True)
    assert feed.advance(120) == []
    again = JourneyFact(*orjson.loads(orjson.dumps(list(feed.sent[1]))))
    assert feed.cases.apply(again, "journeys:0", 99 * 1024) == []
    assert feed.cases.customers == {}


def test_the_clock_comes_back_from_its_logged_unit() -> None:
    # The clock's unit logged at 500 s, its key read back from bytes as the worker reads the
    # changelog: an entry at 400 s (400 + 100 <= 500) is then judged too old and ignored.
    cases = Cases(R, DROPS)
    cases.advance(ms(500))
    fresh = Cases(R, DROPS)
    for key, state in cases.take_dirty().items():
        fresh.restore(key.encode().decode(), orjson.loads(orjson.dumps(state)))
    late = Feed().journey(ENTRY, "u1", "c1", 400, "billing")
    assert fresh.apply(late, "journeys:0", 0) == []


def test_a_clock_that_does_not_move_is_not_logged_again() -> None:
    feed = Feed()
    feed.entry("u1", "c2", 20, "billing")
    feed.cases.take_dirty()
    assert feed.advance(20) == []
    assert feed.cases.take_dirty() == {}
    feed.entry("u1", "c1", 10, "billing")  # behind the clock: only the customer changed
    assert list(feed.cases.take_dirty()) == ["c\x1fu1"]
