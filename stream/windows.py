"""Exact sliding-window sums over event time.

For each width W the sums cover exactly the samples with `now - W < ts <= now` (metrics.md:
an event at `now - W` is out). Timestamps are integer milliseconds, so edges are exact. The
width `TODAY` (0) is the calendar window of metrics.md 1.1: `midnight < ts <= now`, from the
first instant of the local date of `now` in a time zone; it starts empty at midnight. Every
window is its lower edge as a function of `now`, never decreasing as `now` grows.

The monitor clock only moves forward, so the sums are kept incrementally: a sample is added
to a window's sums when it enters (at insertion, or when `now` reaches a future sample) and
subtracted when `now - W` passes it.

A sample is two machine integers, its ts and a code (what it adds to the sums, encoded by the
owner), kept in one `Block` per minute: two int64 columns sorted by ts, so a sample costs
16 bytes and no Python object. Moving the clock touches only the blocks it crosses and
bisects the two at its edges: O(log n) per window edge, O(1) amortised per sample and
window, whatever W is. A block is dropped once its whole minute is out of every window.
"""

from __future__ import annotations

import heapq
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

# contribute(code, sums, sign): add (sign=1) or remove (sign=-1) a sample's share of the sums.
Contribute = Callable[[int, list, int], None]

BLOCK_MS = 60_000
TODAY = 0  # the width that stands for the `today` window
DAY_MS = 86_400_000


class DayStart:
    """The first instant (Unix ms) of the local date of `now` in a time zone: the lower edge
    of `today`. Where daylight saving skips midnight, the first instant that exists on that
    date; where midnight occurs twice, the first of them. The current day is cached."""

    __slots__ = ("_day", "zone")

    def __init__(self, timezone: str) -> None:
        self.zone = ZoneInfo(timezone)
        self._day = (0, -1)  # [start, end) of the cached day

    def __call__(self, now: int) -> int:
        start, end = self._day
        if start <= now < end:
            return start
        date = datetime.fromtimestamp(now / 1000, self.zone).date()
        start = self._first_instant(date)
        self._day = (start, self._first_instant(date + timedelta(days=1)))
        return start

    def _first_instant(self, date) -> int:
        # fold=0: an ambiguous midnight is its first occurrence, and a skipped one is read
        # with the offset before the change, i.e. the instant of the change itself.
        guess = int(datetime.combine(date, time(0), self.zone).timestamp() * 1000)
        if self._date(guess) == date and self._date(guess - 1) != date:
            return guess
        # A change that skips over midnight from earlier in the day: search the first instant.
        low, high = guess - DAY_MS, guess + DAY_MS
        while high - low > 1:
            middle = (low + high) // 2
            if self._date(middle) >= date:
                high = middle
            else:
                low = middle
        return high

    def _date(self, ms: int):
        return datetime.fromtimestamp(ms / 1000, UTC).astimezone(self.zone).date()


def lower_edges(widths_ms: Sequence[int], timezone: str = "UTC"
                ) -> tuple[Callable[[int], int], ...]:
    """Each window's exclusive lower edge as a function of `now`."""
    day_start = DayStart(timezone) if TODAY in widths_ms else None
    return tuple(day_start if width == TODAY else (lambda now, width=width: now - width)
                 for width in widths_ms)


class Block:
    """One minute's samples, sorted by ts; `marks` belongs to the owner (queues.py keeps the
    positions of the facts the minute applied there, for idempotence)."""

    __slots__ = ("codes", "marks", "times")

    def __init__(self) -> None:
        self.times = array("q")
        self.codes = array("q")
        self.marks = array("q")

    def insert(self, ts: int, code: int) -> None:
        """Put a sample in its place: after those of the same ts, which came before it."""
        times = self.times
        if not times or ts >= times[-1]:
            times.append(ts)
            self.codes.append(code)
        else:
            at = bisect_right(times, ts)
            times.insert(at, ts)
            self.codes.insert(at, code)


class SlidingWindows:
    def __init__(self, edges: Sequence[Callable[[int], int]], size: int,
                 contribute: Contribute) -> None:
        self.edges = tuple(edges)  # each window's lower edge at a `now` (`lower_edges`)
        self.lows: list[int] = []  # ... at the current `now`
        self.size = size
        self.contribute = contribute
        self.blocks: dict[int, Block] = {}  # minute -> its samples
        self._minutes: list[int] = []  # heap of the blocks' minutes: the oldest leaves first
        self.sums = [[0] * size for _ in self.edges]
        self.now: int | None = None  # None until the first `advance`: nothing summed yet

    def reaches(self, ts: int) -> bool:
        """Whether a sample at `ts` can still count in some window (now or later): edges never
        go back, so a sample below every edge now stays out for good."""
        return self.now is None or ts > min(self.lows)

    def block(self, ts: int) -> Block:
        """The block of the minute of `ts`, made if needed (only for a ts that `reaches`)."""
        minute = ts // BLOCK_MS
        block = self.blocks.get(minute)
        if block is None:
            block = self.blocks[minute] = Block()
            heapq.heappush(self._minutes, minute)
        return block

    def add(self, block: Block, ts: int, code: int) -> None:
        """Insert a sample into its minute's block (from `block(ts)`)."""
        block.insert(ts, code)
        now = self.now
        if now is not None and ts <= now:
            for low, sums in zip(self.lows, self.sums, strict=True):
                if ts > low:
                    self.contribute(code, sums, 1)

    def advance(self, now: int) -> None:
        """Move the clock forward to `now` (a clock never goes back: earlier values are ignored)."""
        old = self.now
        if old is None:
            self.now = now
            self._recompute()
            return
        if now <= old:
            return
        self.now = now
        contribute, lows = self.contribute, self.lows
        for i, (edge, sums) in enumerate(zip(self.edges, self.sums, strict=True)):
            old_low, low = lows[i], edge(now)
            lows[i] = low
            # Leaving: in the window at `old` and not at `now`.
            for code in self._between(old_low, min(old, low)):
                contribute(code, sums, -1)
            # Entering: samples from the future of `old` that `now` reached.
            for code in self._between(max(old, low), now):
                contribute(code, sums, 1)

    def expire(self) -> list[int]:
        """Drop the blocks whose whole minute no window can reach any more; their minutes."""
        if self.now is None:
            return []
        horizon = min(self.lows)  # every ts <= horizon is out of every window for good
        minutes, gone = self._minutes, []
        while minutes and (minutes[0] + 1) * BLOCK_MS - 1 <= horizon:
            minute = heapq.heappop(minutes)
            del self.blocks[minute]
            gone.append(minute)
        return gone

    def codes_in(self, index: int) -> Iterator[int]:
        """The codes of the samples in window number `index` at `now`."""
        if self.now is not None:
            yield from self._between(self.lows[index], self.now)

    def samples(self) -> Iterator[tuple[int, int]]:
        """Every (ts, code) held."""
        for block in self.blocks.values():
            yield from zip(block.times, block.codes, strict=True)

    def _recompute(self) -> None:
        now = self.now
        self.lows = [edge(now) for edge in self.edges]
        self.sums = [[0] * self.size for _ in self.edges]
        for ts, code in self.samples():
            for low, sums in zip(self.lows, self.sums, strict=True):
                if low < ts <= now:
                    self.contribute(code, sums, 1)

    def _between(self, low: int, high: int) -> Iterator[int]:
        """Codes of the samples with low < ts <= high."""
        if high <= low:
            return
        first, last = low // BLOCK_MS, high // BLOCK_MS
        blocks = self.blocks
        if last - first > len(blocks):  # a long jump: visit the blocks we have, not every minute
            minutes: Sequence[int] = sorted(m for m in blocks if first <= m <= last)
        else:
            minutes = range(first, last + 1)
        for minute in minutes:
            block = blocks.get(minute)
            if block is None:
                continue
            times = block.times
            start = bisect_right(times, low) if minute == first else 0
            end = bisect_right(times, high) if minute == last else len(times)
            yield from block.codes[start:end]
