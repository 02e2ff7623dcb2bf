"""The first instant of a local date (stream/windows.py `DayStart`) where a clock change skips
local midnight from earlier in the day, so that midnight read with the old offset is not the
date's first instant and the search for it runs. Found by mutation testing: no zone of tzdata
does this from 1970 on (scanned to 2100), but Toronto did in 1919 (tz `northamerica`: "Rule
Toronto 1919 only - Mar 30 23:30 1:00 D"), and a zone may again."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ccmon.stream.windows import DayStart


def ms(text: str) -> int:
    """An ISO instant in UTC as Unix ms."""
    return round(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(("now", "day_start"), [
    # At 23:30 EST (UTC-5) on 30 March, 04:30 UTC on the 31st, clocks went to 00:30 EDT: the
    # 31st began then, half an hour after its midnight would have been.
    ("1919-03-31T12:00:00", "1919-03-31T04:30:00"),
    ("1919-03-31T04:30:00", "1919-03-31T04:30:00"),
    # The 30th began at 00:00 EST, 05:00 UTC, and lasted 23.5 hours.
    ("1919-03-31T04:29:59.999", "1919-03-30T05:00:00"),
    ("1919-03-30T12:00:00", "1919-03-30T05:00:00"),
    ("1919-04-01T12:00:00", "1919-04-01T04:00:00"),  # 00:00 EDT
])
def test_a_day_whose_midnight_a_change_skipped_from_the_evening_before(now, day_start):
    assert DayStart("America/Toronto")(ms(now)) == ms(day_start)
