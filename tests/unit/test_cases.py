"""Cases (stream/cases.py), golden: each expected value is worked out by hand from metrics.md
1.1 ("Cases" and its precise points), the arithmetic in the comments, never from the code.

Times are seconds (`at`), facts compare in ms. R = 100 s unless a test says otherwise, so a
drop or reopening is a small subtraction. Then a Hypothesis property: batches, restores and
repeats change nothing; counts never go negative; the gauge deltas add up to the open cases.
"""

from __future__ import annotations

from collections import Counter

import orjson
from hypothesis import given
from hypothesis import strategies as st

from ccmon.stream.cases import (
    ABANDON,
    DROPPED,
    END,
    ENTRY,
    OPEN_CASES,
    OPENED,
    REPEAT,
    RESOLVED,
    Cases,
    JourneyFact,
    Resolution,
    journey_of,
)
from ccmon.stream.events import Event
from ccmon.stream.lifecycle import Ledger, contact_key

R = 100_000  # the case timeout in these tests: 100 s
DROPS = "drops:0"


def ms(seconds: float) -> int:
    return round(seconds * 1000)


class Feed:
    """Journey facts into a `Cases`, each with its own input origin (a source per channel,
    positions in feeding order) and journey-message origin; every located output kept."""

    def __init__(self, cases: Cases | None = None) -> None:
        self.cases = cases or Cases(R, DROPS)
        self.sent: list[JourneyFact] = []
        self.out: list[tuple] = []
        self.offset = 0  # of the next journey message

    def journey(self, kind: str, customer: str, contact: str, t: float, queue: str,
                channel: str = "voice", resolved: bool = False) -> JourneyFact:
        journey = JourneyFact(customer, contact, kind, ms(t), queue, channel, resolved,
                              f"cc.{channel}:0", len(self.sent) * 1024)
        self.sent.append(journey)
        return journey

    def send(self, journey: JourneyFact) -> list[tuple]:
        caused = self.cases.apply(journey, "journeys:0", self.offset * 1024)
        self.offset += 1
        self.out += caused
        return caused

    def entry(self, *args, **kwargs) -> list[tuple]:
        return self.send(self.journey(ENTRY, *args, **kwargs))

    def end(self, *args, **kwargs) -> list[tuple]:
        return self.send(self.journey(END, *args, **kwargs))

    def abandon(self, *args, **kwargs) -> list[tuple]:
        return self.send(self.journey(ABANDON, *args, **kwargs))

    def advance(self, t: float) -> list[tuple]:
        caused = self.cases.advance(ms(t))
        self.out += caused
        return caused


def plain(located: list[tuple]) -> list[tuple]:
    """(kind, queue, channel, ts, value): what stage two aggregates, origin left out."""
    return [(kind, queue, channel, ts, value)
            for queue, channel, kind, ts, _contact, value, _source, _position in located]


# -- opening, repeats, resolution ---------------------------------------------------------------
def test_first_contact_resolution() -> None:
    feed = Feed()
    # c1 opens u1's case at 0 in billing/voice (the gauge counts it there) and resolves it at
    # 30: 30 - 0 = 30 s, 1 contact, FCR (the opener resolved it), one channel.
    assert plain(feed.entry("u1", "c1", 0, "billing")) == [
        (OPENED, "billing", "voice", 0, False), (OPEN_CASES, "billing", "voice", 0, 1)]
    assert plain(feed.end("u1", "c1", 30, "billing", resolved=True)) == [
        (RESOLVED, "billing", "voice", 30_000, Resolution(30_000, 1, True, False)),
        (OPEN_CASES, "billing", "voice", 30_000, -1)]
    assert feed.cases.customers["u1"].case is None
    # c1's entry sent again (same input origin) after its case closed: nothing, no new case.
    assert feed.send(feed.sent[0]) == []
    assert feed.cases.customers["u1"].case is None


def test_repeat_on_another_channel_is_multichannel_and_not_fcr() -> None:
    feed = Feed()
    feed.entry("u1", "c1", 0, "billing")
    # c1 ends at 50 unresolved: it left, but 50 - 50 = 0 <= R, the case stays open.
    assert feed.end("u1", "c1", 50, "billing") == []
    # c2 on chat at 60 joins: a repeat, counted where it entered (support/chat); it is the
    # case's latest contact now, so the gauge moves from billing/voice to support/chat.
    assert plain(feed.entry("u1", "c2", 60, "support", "chat")) == [
        (REPEAT, "support", "chat", 60_000, None),
        (OPEN_CASES, "billing", "voice", 60_000, -1), (OPEN_CASES, "support", "chat", 60_000, 1)]
    # c2 resolves at 90: 90 - 0 (the earliest entry) = 90 s, 2 contacts, not FCR (c1 opened
    # it), voice + chat = multi-channel; the gauge leaves support/chat.
    assert plain(feed.end("u1", "c2", 90, "support", "chat", resolved=True)) == [
        (RESOLVED, "support", "chat", 90_000, Resolution(90_000, 2, False, True)),
        (OPEN_CASES, "support", "chat", 90_000, -1)]


def test_out_of_order_contacts_are_taken_as_they_come() -> None:
    feed = Feed()
    # c2 (entry 20) reaches us before c1 (entry 10): c2 opens the case, c1 joins it.
    feed.entry("u1", "c2", 20, "billing")
    # c1 entered before c2, so c2 stays the latest contact: no gauge move.
    assert plain(feed.entry("u1", "c1", 10, "billing")) == [
        (REPEAT, "billing", "voice", 10_000, None)]
    # c2 resolves at 40: from the earliest entry, 40 - 10 = 30 s; 2 contacts; FCR, because
    # the resolving contact (c2) is the one that opened the case.
    assert plain(feed.end("u1", "c2", 40, "billing", resolved=True))[0] == (
        RESOLVED, "billing", "voice", 40_000, Resolution(30_000, 2, True, False))


def test_contacts_counted_up_to_the_resolution_and_resolved_on_a_closed_case() -> None:
    feed = Feed()
    feed.entry("u1", "c1", 0, "billing")
    # c2 joins at 10, still waiting at the resolution; it is the latest contact now, but in
    # the same place as c1, so the gauge does not move.
    assert plain(feed.entry("u1", "c2", 10, "billing")) == [
        (REPEAT, "billing", "voice", 10_000, None)]
    # c1 resolves at 20: 20 - 0 = 20 s with the 2 contacts taken so far; not multi-channel.
    assert plain(feed.end("u1", "c1", 20, "billing", resolved=True)) == [
        (RESOLVED, "billing", "voice", 20_000, Resolution(20_000, 2, True, False)),
        (OPEN_CASES, "billing", "voice", 20_000, -1)]
    # c2 belonged to the closed case: its own `resolved: true` at 25 changes nothing.
    assert feed.end("u1", "c2", 25, "billing", resolved=True) == []
    # c3 at 30 opens a new case, a reopening: 30 - 20 = 10 s < R; counted as opened once.
    assert plain(feed.entry("u1", "c3", 30, "sales", "chat")) == [
        (OPENED, "sales", "chat", 30_000, True), (OPEN_CASES, "sales", "chat", 30_000, 1)]
    # c3's case has 1 contact: c1 and c2 were the previous case's.
    assert plain(feed.end("u1", "c3", 45, "sales", "chat", resolved=True))[0] == (
        RESOLVED, "sales", "chat", 45_000, Resolution(15_000, 1, True, False))


def test_resolved_true_of_a_contact_no_open_case_holds_changes_nothing() -> None:
    feed = Feed()
    # Without a customer no journey fact exists; one for an unknown customer or contact is
    # ignored, and the open case of u1 is untouched.
    assert feed.end("nobody", "c9", 5, "billing", resolved=True) == []
    feed.entry("u1", "c1", 0, "billing")
    assert feed.end("u1", "c9", 6, "billing", resolved=True) == []
    assert feed.cases.customers["u1"].case is not None
    assert "nobody" not in feed.cases.customers


# -- reopening ----------------------------------------------------------------------------------
def test_reopened_strictly_within_r() -> None:
    feed = Feed()
    for customer in ("u1", "u2"):
        feed.entry(customer, "c1" + customer, 0, "billing")
        feed.entry(customer, "x" + customer, 5, "billing")
        feed.end(customer, "c1" + customer, 10, "billing", resolved=True)
        # x, of the closed case, ends at 15: it changes no case, but keeps the customer in
        # memory until 15 + 100 = 115, so the entry at 110 below is judged, not forgotten.
        feed.end(customer, "x" + customer, 15, "billing")
    # u1: entry 109.999 - resolution 10 = 99.999 s < R = 100 s: reopened.
    assert plain(feed.entry("u1", "c2u1", 109.999, "billing"))[0] == (
        OPENED, "billing", "voice", 109_999, True)
    # u2: entry 110 - 10 = exactly R, not < R: opened, not reopened.
    assert plain(feed.entry("u2", "c2u2", 110, "billing"))[0] == (
        OPENED, "billing", "voice", 110_000, False)


def test_no_reopening_after_a_dropped_case() -> None:
    feed = Feed()
    feed.entry("u1", "c1", 0, "billing")
    feed.end("u1", "c1", 10, "billing", resolved=True)  # resolved at 10
    feed.entry("u1", "c2", 20, "billing")  # reopened (20 - 10 = 10 < R)
    feed.abandon("u1", "c2", 25, "billing")
    # dropped at 25 + 100 = 125; c3 at 130 is 120 s after the resolution (no reopening
    # anyway), and its previous case is the dropped one: opened, not reopened.
    out = plain(feed.entry("u1", "c3", 130, "billing"))
    assert out[0] == (DROPPED, "billing", "voice", 125_000, None)
    assert out[2] == (OPENED, "billing", "voice", 130_000, False)

def test_no_reopening_after_a_dropped_case_even_within_r_of_the_resolution_before() -> None:
    feed = Feed()
    feed.entry("u2", "c1", 0, "billing")
    feed.entry("u2", "x", 1, "billing")  # joins c1's case; still talking at its resolution
    feed.end("u2", "c1", 10, "billing", resolved=True)  # resolved at 10
    # c2 entered at 5 but reaches us now: it opens a new case, reopened (5 - 10 < R).
    assert plain(feed.entry("u2", "c2", 5, "billing"))[0] == (
        OPENED, "billing", "voice", 5_000, True)
    feed.abandon("u2", "c2", 6, "billing")
    feed.end("u2", "x", 50, "billing")  # x's case is closed: nothing, u2 kept until 150
    # 107 - 6 = 101 > R: c2's case is dropped at 6 + 100 = 106.
    assert plain(feed.advance(107))[0] == (DROPPED, "billing", "voice", 106_000, None)
    # c3 at 108: 108 - 10 = 98 < R after the resolution at 10, but the previous case is the
    # dropped one, so it is not a reopening.
    assert plain(feed.entry("u2", "c3", 108, "billing"))[0] == (
        OPENED, "billing", "voice", 108_000, False)


# -- drops --------------------------------------------------------------------------------------
def _left_at_30(feed: Feed) -> None:
    # c1 enters billing/voice at 0 and abandons at 30: no contact waits or talks any more.
    feed.entry("u1", "c1", 0, "billing")
    feed.abandon("u1", "c1", 30, "billing")


def test_drop_after_r_at_latest_leave_plus_r() -> None:
    feed = Feed()
    _left_at_30(feed)
    # now 130: 130 - 30 = 100 s, not more than R: still open.
    assert feed.advance(130) == []
    # now 130.001: 100.001 s > R: dropped, at the drop moment 30 + 100 = 130 s, not 130.001.
    assert plain(feed.advance(130.001)) == [
        (DROPPED, "billing", "voice", 130_000, None), (OPEN_CASES, "billing", "voice", 130_000,
                                                       -1)]
    # noticed much later, the moment is the same: 30 + 100 = 130.
    late = Feed()
    _left_at_30(late)
    assert plain(late.advance(5000))[0] == (DROPPED, "billing", "voice", 130_000, None)
    assert late.out[-2][6:] == feed.out[-2][6:] == (DROPS, 130_000 * 1024)  # same identity


def test_entry_exactly_r_after_the_leave_joins() -> None:
    feed = Feed()
    _left_at_30(feed)
    # 130 - 30 = 100 s = R, not more: the case is not dropped, c2 joins it.
    assert plain(feed.entry("u1", "c2", 130, "billing"))[0] == (
        REPEAT, "billing", "voice", 130_000, None)


def test_drop_judged_at_entry_equals_drop_found_by_advance() -> None:
    by_entry, by_clock = Feed(), Feed()
    for feed in (by_entry, by_clock):
        _left_at_30(feed)
    by_clock.advance(200)
    # At c2's entry 200: 200 - 30 = 170 > R, so the case was dropped at 130; c2 opens a new
    # one, not a reopening (nothing was resolved).
    for feed in (by_entry, by_clock):
        feed.entry("u1", "c2", 200, "sales", "chat")
    assert plain(by_entry.out) == plain(by_clock.out) == [
        (OPENED, "billing", "voice", 0, False), (OPEN_CASES, "billing", "voice", 0, 1),
        (DROPPED, "billing", "voice", 130_000, None),
        (OPEN_CASES, "billing", "voice", 130_000, -1),
        (OPENED, "sales", "chat", 200_000, False), (OPEN_CASES, "sales", "chat", 200_000, 1)]
    # The drop is the same located fact (origin included), whichever found it.
    drop = [fact for fact in by_entry.out if fact[2] == DROPPED]
    assert drop == [fact for fact in by_clock.out if fact[2] == DROPPED]


def test_a_drop_counts_where_the_latest_contact_last_was() -> None:
    feed = Feed()
    feed.entry("u1", "c1", 0, "billing")
    feed.entry("u1", "c2", 5, "billing", "chat")  # the latest contact (entry 5 > 0)
    # c1 was transferred to retention (no journey fact) and ends there unresolved at 40;
    # c2's abandon at 8 reaches us after that.
    feed.end("u1", "c1", 40, "retention")
    feed.abandon("u1", "c2", 8, "billing", "chat")
    # latest leave 40 (not c2's 8): dropped at 40 + 100 = 140, in the queue and channel where
    # the latest contact c2 last was (billing/chat); the gauge leaves c2's contact.queued
    # place, billing/chat, where it was since c2 joined.
    assert plain(feed.advance(141)) == [
        (DROPPED, "billing", "chat", 140_000, None), (OPEN_CASES, "billing", "chat", 140_000, -1)]


def test_a_tie_of_entries_moves_the_gauge_to_the_later_taken() -> None:
    feed = Feed()
    feed.entry("u1", "c1", 10, "billing")
    # c2 entered at the same ts: the later taken is the latest contact.
    assert plain(feed.entry("u1", "c2", 10, "sales", "chat"))[1:] == [
        (OPEN_CASES, "billing", "voice", 10_000, -1), (OPEN_CASES, "sales", "chat", 10_000, 1)]


def test_drop_positions_increase_also_for_equal_moments_and_late_leaves() -> None:
    feed = Feed()
    for customer in ("u1", "u2"):
        feed.entry(customer, "c" + customer, 0, "billing")
        feed.abandon(customer, "c" + customer, 30, "billing")
    feed.entry("u3", "c3", 0, "billing")
    # u1 and u2 both dropped at 30 + 100 = 130: the two drops (and their gauge deltas) take
    # successive positions from 130 000 ms * 1024.
    base = 130_000 * 1024
    assert [fact[6:] for fact in feed.advance(200)] == [
        (DROPS, base), (DROPS, base + 1), (DROPS, base + 2), (DROPS, base + 3)]
    # u3's abandon at 20 reaches us after the clock passed 20 + 100 = 120: dropped at once, at
    # 120, with the next position (never one stage two already passed), also after a restore.
    late = feed.journey(ABANDON, "u3", "c3", 20, "billing")
    for cases in (feed.cases, _round_trip(feed.cases)):
        assert [(fact[2], fact[3], *fact[6:]) for fact in cases.apply(late, "j", 0)] == [
            (DROPPED, 120_000, DROPS, base + 4), (OPEN_CASES, 120_000, DROPS, base + 5)]


def test_a_late_contact_after_the_clock_dropped_the_case_opens_a_new_one() -> None:
    feed = Feed()
    _left_at_30(feed)
    feed.advance(140)  # 140 - 30 > R: dropped at 130
    # c2 entered at 125 (125 - 30 = 95 <= R, it would have joined) but reaches us after the
    # drop: taken as it comes, it opens a new case.
    assert plain(feed.entry("u1", "c2", 125, "billing"))[0] == (
        OPENED, "billing", "voice", 125_000, False)


# -- from events: stage one's side --------------------------------------------------------------
def _events(steps: list[tuple]) -> list[Event]:
    return [Event(f"e{n}", f"contact.{kind}", ms(t), channel, contact_id=contact, **fields)
            for n, (kind, t, channel, contact, fields) in enumerate(steps)]


def _journeys(customer: str, events: list[Event]) -> list[JourneyFact]:
    ledger, out = Ledger(), []
    for offset, event in enumerate(events):
        journey = journey_of(customer, event, ledger.apply(event), "cc.in:0", offset * 1024)
        if journey is not None:
            out.append(journey)
    return out


def test_a_transfer_is_not_a_leave() -> None:
    events = _events([
        ("queued", 0, "chat", "c2", {"queue": "billing"}),
        ("abandoned", 3, "chat", "c2", {}),
        ("queued", 5, "voice", "c1", {"queue": "billing"}),
        ("answered", 10, "voice", "c1", {}),
        ("transferred", 20, "voice", "c1", {"to_queue": "retention"}),
        ("answered", 510, "voice", "c1", {}),
        ("ended", 520, "voice", "c1", {"resolved": False}),
    ])
    journeys = _journeys("u1", events)
    # Only entries and leaves become journey facts; the end carries where c1's segment was.
    assert [(j.kind, j.ts, j.queue, j.contact) for j in journeys] == [
        (ENTRY, 0, "billing", contact_key("chat", "c2")), (ABANDON, 3_000, "billing",
                                                           contact_key("chat", "c2")),
        (ENTRY, 5_000, "billing", contact_key("voice", "c1")),
        (END, 520_000, "retention", contact_key("voice", "c1"))]
    feed = Feed()
    for journey in journeys[:3]:
        feed.send(journey)
    # c1 waits in retention since the transfer at 20: the case is not dropped at 3 + 100 + 1
    # nor at 500, though 500 - 3 > R, because a contact still waits.
    assert feed.advance(104) == []
    assert feed.advance(500) == []
    feed.send(journeys[3])
    # left at 520: dropped at 520 + 100 = 620, where the latest contact c1 (entry 5 > 0) last
    # was: retention/voice; the gauge leaves c1's contact.queued place, billing/voice.
    assert feed.advance(620) == []
    assert plain(feed.advance(621)) == [
        (DROPPED, "retention", "voice", 620_000, None),
        (OPEN_CASES, "billing", "voice", 620_000, -1)]


def test_a_resolution_counts_where_the_contact_was_last_answered() -> None:
    events = _events([
        ("queued", 0, "voice", "c1", {"queue": "billing"}),
        ("answered", 10, "voice", "c1", {}),
        ("transferred", 20, "voice", "c1", {"to_queue": "sales"}),
        ("answered", 30, "voice", "c1", {}),
        ("ended", 40, "voice", "c1", {"resolved": True}),
    ])
    feed = Feed()
    for journey in _journeys("u1", events):
        feed.send(journey)
    # Opened where it entered (billing), resolved where last answered (sales): 40 - 0 = 40 s.
    assert plain(feed.out) == [
        (OPENED, "billing", "voice", 0, False), (OPEN_CASES, "billing", "voice", 0, 1),
        (RESOLVED, "sales", "voice", 40_000, Resolution(40_000, 1, True, False)),
        (OPEN_CASES, "billing", "voice", 40_000, -1)]


# -- persistence, replay, memory ----------------------------------------------------------------
def _story(feed: Feed) -> list[JourneyFact]:
    """Three customers' journeys, in arrival order."""
    j = feed.journey
    return [
        j(ENTRY, "u1", "a1", 0, "billing"), j(ENTRY, "u2", "b1", 1, "sales", "chat"),
        j(END, "u1", "a1", 20, "billing", resolved=True),
        j(ABANDON, "u2", "b1", 30, "sales", "chat"),
        j(ENTRY, "u3", "d1", 40, "billing", "social"),
        j(ENTRY, "u1", "a2", 50, "support"),  # reopened: 50 - 20 < R
        j(END, "u3", "d1", 60, "billing", "social"),
        j(ENTRY, "u2", "b2", 200, "sales"),  # u2's case dropped at 130 first (and u3's at 160)
        j(END, "u2", "b2", 210, "sales", resolved=True),
    ]


def _run(story: list[JourneyFact], cases: Cases, start: int = 0) -> list[tuple]:
    out = []
    for offset, journey in enumerate(story[start:], start):
        out += cases.apply(journey, "journeys:0", offset * 1024)
    return out


def _round_trip(cases: Cases, table: dict[str, object] | None = None) -> Cases:
    """A changelog's compacted view, through JSON, restored into a fresh `Cases`."""
    table = {} if table is None else table
    for key, state in cases.take_dirty().items():
        if state is None:
            table.pop(key, None)
        else:
            table[key] = orjson.loads(orjson.dumps(state))
    fresh = Cases(cases.timeout, cases.drops_source)
    for key, state in table.items():
        fresh.restore(key, state)
    return fresh


def test_story_golden() -> None:
    feed = Feed()
    out = plain(_run(_story(feed), feed.cases))
    assert out == [
        (OPENED, "billing", "voice", 0, False), (OPEN_CASES, "billing", "voice", 0, 1),
        (OPENED, "sales", "chat", 1_000, False), (OPEN_CASES, "sales", "chat", 1_000, 1),
        (RESOLVED, "billing", "voice", 20_000, Resolution(20_000, 1, True, False)),
        (OPEN_CASES, "billing", "voice", 20_000, -1),
        (OPENED, "billing", "social", 40_000, False), (OPEN_CASES, "billing", "social", 40_000, 1),
        (OPENED, "support", "voice", 50_000, True), (OPEN_CASES, "support", "voice", 50_000, 1),
        # at 200: u2 left at 30 -> dropped at 130; u3 left at 60 -> dropped at 160 (in order)
        (DROPPED, "sales", "chat", 130_000, None), (OPEN_CASES, "sales", "chat", 130_000, -1),
        (DROPPED, "billing", "social", 160_000, None),
        (OPEN_CASES, "billing", "social", 160_000, -1),
        (OPENED, "sales", "voice", 200_000, False), (OPEN_CASES, "sales", "voice", 200_000, 1),
        (RESOLVED, "sales", "voice", 210_000, Resolution(10_000, 1, True, False)),
        (OPEN_CASES, "sales", "voice", 210_000, -1)]


def test_persistence_round_trip_gives_the_same_future() -> None:
    whole = Feed()
    story = _story(whole)
    expected = _run(story, whole.cases)
    for cut in range(len(story) + 1):
        first = Cases(R, DROPS)
        out = _run(story[:cut], first)
        out += _run(story, _round_trip(first), cut)
        assert out == expected, cut


def test_replay_is_idempotent() -> None:
    feed = Feed()
    story = _story(feed)
    expected = _run(story, feed.cases)
    # Every journey fact sent twice (a stage-one crash re-sends them: new journey offsets,
    # the same input origins): the repeats cause nothing.
    twice = Cases(R, DROPS)
    out = []
    for offset, journey in enumerate(story):
        out += twice.apply(journey, "journeys:0", offset * 1024)
        assert twice.apply(journey, "journeys:0", 10_000 * 1024) == []
    assert out == expected
    # After a restore from the log, the whole story again changes nothing.
    restored = _round_trip(twice)
    assert _run(story, restored) == []


def test_customers_are_forgotten_once_nothing_can_matter() -> None:
    feed = Feed()
    story = _story(feed)
    _run(story, feed.cases)
    cases = feed.cases
    # At 210: u1's case (reopened at 50) is open; u2 resolved at 210; u3 dropped at 160,
    # its latest ts 60 + 100 = 160 <= 210: forgotten.
    assert set(cases.customers) == {"u1", "u2"}
    dirty = cases.take_dirty()
    assert dirty["c\x1fu3"] is None
    # u2 is kept until 210 + 100 = 310 (a contact at 309.999 would still reopen) ...
    cases.advance(309_999)
    assert set(cases.customers) == {"u1", "u2"}
    cases.advance(310_000)
    assert set(cases.customers) == {"u1"}
    # ... and a repeat of its first entry, older than clock - R, causes nothing.
    assert cases.apply(story[1], "journeys:0", 99 * 1024) == []
    assert set(cases.customers) == {"u1"}
    # u1's open case has a2 waiting: never dropped, never forgotten.
    cases.advance(10**9)
    assert set(cases.customers) == {"u1"}


def test_default_timeout_is_seven_days() -> None:
    cases = Cases()
    day = 86_400_000
    cases.apply(JourneyFact("u", "c", ENTRY, 0, "q", "voice", source="s", position=0), "j", 0)
    cases.apply(JourneyFact("u", "c", ABANDON, 1, "q", "voice", source="s", position=1), "j", 1)
    assert cases.advance(7 * day + 1) == []  # 7 d + 1 - 1 = R: not more
    assert cases.advance(7 * day + 2)[0][2:4] == (DROPPED, 7 * day + 1)


# -- properties ---------------------------------------------------------------------------------
CUSTOMERS = ("u1", "u2", "u3")
PLACES = (("billing", "voice"), ("billing", "chat"), ("sales", "social"))


@st.composite
def journeys(draw: st.DrawFn) -> list[JourneyFact]:
    """Contacts of a few customers; each contact's steps in its own order (its own input
    source), the contacts' steps interleaved at random, ts anywhere (so also late)."""
    contacts = []
    for n in range(draw(st.integers(1, 8))):
        customer = draw(st.sampled_from(CUSTOMERS))
        queue, channel = draw(st.sampled_from(PLACES))
        entered = draw(st.integers(0, 250)) * 1000
        steps = [JourneyFact(customer, f"k{n}", ENTRY, entered, queue, channel,
                             source=f"in{n}", position=0)]
        leave = draw(st.sampled_from(("end", "resolved", "abandon", None)))
        if leave is not None:
            left = entered + draw(st.integers(0, 150)) * 1000
            where = draw(st.sampled_from(("billing", "sales", "retention")))
            steps.append(JourneyFact(customer, f"k{n}", ABANDON if leave == "abandon" else END,
                                     left, queue if leave == "abandon" else where, channel,
                                     leave == "resolved", f"in{n}", 1024))
        contacts.append(steps)
    order = draw(st.permutations([n for n, steps in enumerate(contacts) for _ in steps]))
    taken = Counter[int]()
    out = []
    for n in order:
        out.append(contacts[n][taken[n]])
        taken[n] += 1
    return out


def _reference(story: list[JourneyFact]) -> tuple[list[tuple], Cases]:
    cases = Cases(R, DROPS)
    out = _run(story, cases)
    return out + cases.advance(10**7), cases


@given(journeys(), st.lists(st.integers(0, 20), max_size=6),
       st.lists(st.integers(0, 20), max_size=4), st.integers(0, 20))
def test_batches_restores_and_repeats_change_nothing(
        story: list[JourneyFact], cuts: list[int], repeats: list[int], restore_at: int) -> None:
    expected, _ = _reference(story)
    cases, out, seen = Cases(R, DROPS), [], 0
    table: dict[str, object] = {}
    for offset, journey in enumerate(story):
        if offset in cuts:  # a batch boundary: the clock moves up to anywhere before this fact
            out += cases.advance((seen + journey.ts) // 2 if journey.ts > seen else seen)
        if offset == restore_at:
            cases = _round_trip(cases, table)
        out += cases.apply(journey, "journeys:0", offset * 1024)
        seen = max(seen, journey.ts)
        for again in repeats:  # a repeat of anything already applied causes nothing
            if again <= offset:
                assert cases.apply(story[again], "journeys:0", 10**6) == []
        _round_trip(cases, table)  # logged as it goes (the restore above reads this table)
    out += cases.advance(10**7)
    assert out == expected


@given(journeys())
def test_counts_never_negative_and_the_gauge_adds_up(story: list[JourneyFact]) -> None:
    cases, gauge, counts = Cases(R, DROPS), Counter[tuple[str, str]](), Counter[str]()
    for offset, journey in enumerate(story):
        for queue, channel, kind, _ts, _contact, value, _s, _p in cases.apply(
                journey, "journeys:0", offset * 1024):
            counts[kind] += 1
            if kind == OPEN_CASES:
                gauge[(queue, channel)] += value
                assert gauge[(queue, channel)] >= 0
            if kind == RESOLVED:
                assert value.ms >= 0 and value.contacts >= 1
        # The gauge per place is the open cases whose latest contact entered there.
        expected = Counter[tuple[str, str]]()
        for customer in cases.customers.values():
            if customer.case is not None:
                latest = customer.case.members[customer.case.latest]
                expected[(latest.queue, latest.channel)] += 1
        assert +gauge == expected
        assert counts[OPENED] == counts[RESOLVED] + counts[DROPPED] + sum(expected.values())
    # Every contact taken is in exactly one case: as its opener or as a repeat.
    assert counts[OPENED] + counts[REPEAT] <= sum(1 for j in story if j.kind == ENTRY)
    cases.advance(10**9)  # every case with no one waiting or talking is dropped by now
    assert all(c.case is not None and not c.case.idle() for c in cases.customers.values())


@given(journeys())
def test_in_event_time_order_customers_are_independent(story: list[JourneyFact]) -> None:
    # Arriving in ts order, any interleaving of customers gives each customer the case facts
    # it gets alone: the clock only ever drops what each customer's own next entry would.
    story = sorted(story, key=lambda journey: journey.ts)  # stable: a contact keeps its order
    merged = Counter(plain(_reference(story)[0]))
    alone = Counter[tuple]()
    for customer in CUSTOMERS:
        alone.update(plain(_reference([j for j in story if j.customer == customer])[0]))
    assert merged == alone
