"""Exact sliding-window sums over event time.

For each width W the sums cover exactly the samples with `now - W < ts <= now` (metrics.md:
an event at `now - W` is out). Timestamps are integer milliseconds, so edges are exact.

The monitor clock only moves forward, so the sums are kept incrementally: a sample is added
to a window's sums when it enters (at insertion, or when `now` reaches a future sample) and
subtracted when `now - W` passes it. Samples live in one-second buckets, so moving the clock
touches only the buckets it crosses: O(1) amortised per sample and window, whatever W is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

# contribute(sample, sums, sign): add (sign=1) or remove (sign=-1) a sample's share of the sums.
Contribute = Callable[[Any, list, int], None]

BUCKET_MS = 1000


class SlidingWindows:
    def __init__(self, widths_ms: Sequence[int], size: int, contribute: Contribute) -> None:
        self.widths = tuple(widths_ms)
        self.longest = max(self.widths)
        self.size = size
        self.contribute = contribute
        self.buckets: dict[int, list] = {}  # second -> samples; a sample is (ts_ms, ...)
        self.sums = [[0] * size for _ in self.widths]
        self.now: int | None = None  # None until the first `advance`: nothing summed yet

    def reaches(self, ts: int) -> bool:
        """Whether a sample at `ts` can still count in some window (now or later)."""
        return self.now is None or ts > self.now - self.longest

    def add(self, sample: tuple) -> bool:
        """Insert a sample; False (and nothing kept) if it is older than every window."""
        ts = sample[0]
        now = self.now
        if now is not None and ts <= now - self.longest:
            return False
        self.buckets.setdefault(ts // BUCKET_MS, []).append(sample)
        if now is not None and ts <= now:
            for width, sums in zip(self.widths, self.sums, strict=True):
                if ts > now - width:
                    self.contribute(sample, sums, 1)
        return True

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
        for width, sums in zip(self.widths, self.sums, strict=True):
            # Leaving: in the window at `old` and not at `now`.
            for sample in self._between(old - width, min(old, now - width)):
                self.contribute(sample, sums, -1)
            # Entering: samples from the future of `old` that `now` reached.
            for sample in self._between(max(old, now - width), now):
                self.contribute(sample, sums, 1)

    def expire(self) -> list[int]:
        """Drop buckets that no window can reach any more; return their seconds."""
        if self.now is None:
            return []
        horizon = self.now - self.longest  # every ts <= horizon is out of every window
        gone = [second for second in self.buckets if (second + 1) * BUCKET_MS <= horizon + 1]
        for second in gone:
            del self.buckets[second]
        return gone

    def samples(self) -> Iterator[tuple]:
        for bucket in self.buckets.values():
            yield from bucket

    def _recompute(self) -> None:
        now = self.now
        self.sums = [[0] * self.size for _ in self.widths]
        for sample in self.samples():
            ts = sample[0]
            for width, sums in zip(self.widths, self.sums, strict=True):
                if now - width < ts <= now:
                    self.contribute(sample, sums, 1)

    def _between(self, low: int, high: int) -> Iterator[tuple]:
        """Samples with low < ts <= high."""
        if high <= low:
            return
        first, last = low // BUCKET_MS, high // BUCKET_MS
        buckets = self.buckets
        if last - first > len(buckets):  # a long jump: visit the buckets we have, not every second
            seconds: Sequence[int] = sorted(s for s in buckets if first <= s <= last)
        else:
            seconds = range(first, last + 1)
        for second in seconds:
            bucket = buckets.get(second)
            if bucket:
                for sample in bucket:
                    if low < sample[0] <= high:
                        yield sample
