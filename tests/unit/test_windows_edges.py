"""The sliding windows' edges (stream/windows.py): sums in the first minute of 1970 (events.md
allows any ts from 1970), a window's exclusive lower edge, a block given back once its whole
minute is out of every window, and the width the settings give `today` (metrics.md 1.1:
`(midnight, now]`). Expectations by hand from metrics.md ("an event at `now - W` is out") and
the module's rule that a minute leaves once no window can reach it."""

from __future__ import annotations

from datetime import UTC, datetime

from ccmon.settings import parse_windows
from ccmon.stream.windows import SlidingWindows, lower_edges

MINUTE = 60_000
T0_MS = 1_795_338_000_000  # 2026-11-22T09:00:00Z, a whole minute


def add_codes(code: int, sums: list, sign: int) -> None:
    sums[0] += sign * code


def windows(widths: tuple[int, ...], samples: list[tuple[int, int]]) -> SlidingWindows:
    w = SlidingWindows(lower_edges(widths), 1, add_codes)
    for ts, code in samples:
        w.add(w.block(ts), ts, code)
    return w


def test_a_minute_window_in_the_first_minute_of_1970():
    w = windows((MINUTE,), [(10_000, 1), (30_000, 10), (65_000, 100)])
    assert w.sums == [[0]]  # nothing summed before the first advance
    w.advance(20_000)  # (-40 s, 20 s]: the sample at 10 s
    assert w.sums == [[1]]
    w.advance(70_000)  # (10 s, 70 s]: 10 s is exactly at the edge, out
    assert (w.sums, list(w.codes_in(0))) == ([[110]], [10, 100])


def test_a_minute_leaves_once_no_window_reaches_it():
    # Window 1 min; at T0 + 200 s every ts <= T0 + 140 s is out for good: the minutes
    # [T0, T0 + 60 s) and [T0 + 60 s, T0 + 120 s) both end before that.
    w = windows((MINUTE,), [(T0_MS + 30_000, 1), (T0_MS + 90_000, 10)])
    w.advance(T0_MS + 100_000)
    w.advance(T0_MS + 200_000)
    first = T0_MS // MINUTE
    assert (w.expire(), w.blocks, w.sums) == ([first, first + 1], {}, [[0]])


def test_the_settings_width_of_today_is_the_calendar_window():
    widths = tuple(round(seconds * 1000) for _, seconds in parse_windows("1h,today"))
    hour, today = lower_edges(widths, "UTC")
    now = int(datetime(2026, 3, 29, 12, tzinfo=UTC).timestamp() * 1000)
    midnight = int(datetime(2026, 3, 29, tzinfo=UTC).timestamp() * 1000)
    assert (hour(now), today(now)) == (now - 3_600_000, midnight)
