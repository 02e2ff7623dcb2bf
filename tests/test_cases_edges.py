"""stream/cases.py at its edges: what mutation testing found unchecked (docs/testing.md).

Values worked out by hand from metrics.md 1.1 ("Cases"); R = 100 s as in test_cases.py.
"""

from __future__ import annotations

from test_cases import Feed, plain

from ccmon.stream.cases import DROPPED, OPEN_CASES, REPEAT, RESOLVED, Resolution


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
