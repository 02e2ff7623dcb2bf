"""The `today` window (metrics.md 1.1): `(midnight, now]` from the first instant of the local
date in CCMON_TIMEZONE, 23- and 25-hour days included. Expected instants are worked out by
hand from the zones' published rules (comments), never from the code's own conversion."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from ccmon.errors import SettingsError
from ccmon.settings import load, parse_windows
from ccmon.stream.engine import EngineConfig, Pipeline, Record
from ccmon.stream.kpis import queue_metrics
from ccmon.stream.windows import TODAY, DayStart


def ms(text: str) -> int:
    """An ISO instant in UTC ("2026-03-29T01:00:00") as Unix ms."""
    return round(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(("zone", "now", "midnight"), [
    ("UTC", "2026-11-22T09:00:00", "2026-11-22T00:00:00"),
    ("UTC", "2026-11-22T00:00:00", "2026-11-22T00:00:00"),  # at midnight: the new day, empty
    ("UTC", "2026-11-21T23:59:59.999", "2026-11-21T00:00:00"),
    # Berlin in winter is UTC+1: local midnight is 23:00 UTC the day before.
    ("Europe/Berlin", "2026-01-15T12:00:00", "2026-01-14T23:00:00"),
    ("Europe/Berlin", "2026-01-14T22:59:59.999", "2026-01-13T23:00:00"),
    # Summer, UTC+2: 22:00 UTC the day before.
    ("Europe/Berlin", "2026-07-01T06:00:00", "2026-06-30T22:00:00"),
    # 2026-03-29: clocks go from 02:00 to 03:00 (01:00 UTC). The day began at 00:00 CET =
    # 23:00 UTC on the 28th and lasts 23 hours: the 30th begins at 22:00 UTC on the 29th.
    ("Europe/Berlin", "2026-03-29T21:59:59.999", "2026-03-28T23:00:00"),
    ("Europe/Berlin", "2026-03-29T22:00:00", "2026-03-29T22:00:00"),
    # 2026-10-25: clocks go from 03:00 back to 02:00 (01:00 UTC). The day began at 00:00 CEST =
    # 22:00 UTC on the 24th and lasts 25 hours: the 26th begins at 23:00 UTC on the 25th.
    ("Europe/Berlin", "2026-10-25T22:59:59.999", "2026-10-24T22:00:00"),
    ("Europe/Berlin", "2026-10-25T23:00:00", "2026-10-25T23:00:00"),
    # Brazil's 2018 change skipped local midnight: on 2018-11-04 the clocks went from 00:00 to
    # 01:00 (UTC-3 to UTC-2) at 03:00 UTC. The date's first instant is that change, 01:00.
    ("America/Sao_Paulo", "2018-11-04T12:00:00", "2018-11-04T03:00:00"),
    ("America/Sao_Paulo", "2018-11-04T02:59:59.999", "2018-11-03T03:00:00"),
    # Cuba ends daylight saving at 01:00 back to 00:00 (UTC-4 to UTC-5): on 2025-11-02 local
    # midnight occurs twice, at 04:00 and 05:00 UTC; the day begins at the first.
    ("America/Havana", "2025-11-02T04:30:00", "2025-11-02T04:00:00"),
    ("America/Havana", "2025-11-02T05:30:00", "2025-11-02T04:00:00"),
])
def test_the_day_begins_at_the_first_instant_of_the_local_date(zone, now, midnight):
    assert DayStart(zone)(ms(now)) == ms(midnight)


def test_a_cached_day_is_left_at_its_end():
    start = DayStart("Europe/Berlin")
    assert start(ms("2026-03-29T12:00:00")) == ms("2026-03-28T23:00:00")
    assert start(ms("2026-03-29T22:00:00")) == ms("2026-03-29T22:00:00")  # 23 h later
    assert start(ms("2026-03-29T21:00:00")) == ms("2026-03-28T23:00:00")  # back: recomputed


def answered(contact: str, queued: str, answered_at: str) -> list[dict]:
    def event(n: int, kind: str, at: str, **fields) -> dict:
        return {"event_id": f"{contact}-{n}", "type": f"contact.{kind}", "ts": at + "Z",
                "contact_id": contact, **fields}
    return [event(0, "queued", queued, queue="billing"), event(1, "answered", answered_at)]


def answers(pipeline: Pipeline, now: str) -> dict[str, float]:
    return {labels[2]: value for name, labels, value in queue_metrics(pipeline.board, ms(now))
            if name == "ccmon_answered_contacts"}


def test_today_counts_since_local_midnight_and_starts_empty():
    """Berlin, the 23-hour day 2026-03-29 (it begins 2026-03-28T23:00Z, ends 2026-03-29T22:00Z).
    Answers at 22:30Z on the 28th (the day before), exactly 23:00Z (midnight: the day
    before, the window is open below), 23:00:00.001Z, 06:00Z and 21:59:59.999Z."""
    config = EngineConfig(windows=(("today", TODAY), ("1h", 3_600_000)),
                          timezone="Europe/Berlin")
    pipeline = Pipeline(config)
    events = [*answered("a", "2026-03-28T22:29:00", "2026-03-28T22:30:00"),
              *answered("b", "2026-03-28T22:59:00", "2026-03-28T23:00:00"),
              *answered("c", "2026-03-28T22:59:30", "2026-03-28T23:00:00.001"),
              *answered("d", "2026-03-29T05:59:00", "2026-03-29T06:00:00"),
              *answered("e", "2026-03-29T21:59:00", "2026-03-29T21:59:59.999")]
    pipeline.feed(Record("cc.voice:0", n, "voice", orjson.dumps(event))
                  for n, event in enumerate(events))
    # At 23:00Z on the 28th (midnight): the new day is empty; the hour holds a and b.
    assert answers(pipeline, "2026-03-28T23:00:00") == {"today": 0, "1h": 2}
    # At 23:30Z: today holds c; the hour (22:30, 23:30] b and c, a exactly at its edge is out.
    assert answers(pipeline, "2026-03-28T23:30:00") == {"today": 1, "1h": 2}
    assert answers(pipeline, "2026-03-29T12:00:00") == {"today": 2, "1h": 0}  # c, d
    assert answers(pipeline, "2026-03-29T21:59:59.999") == {"today": 3, "1h": 1}  # c, d, e
    # The next midnight, 23 hours after the last: empty again.
    assert answers(pipeline, "2026-03-29T22:00:00") == {"today": 0, "1h": 1}


def test_today_and_time_zone_settings():
    assert parse_windows("5m,today") == (("5m", 300.0), ("today", 0.0))
    settings = load(environ={"CCMON_WINDOWS": "1h,today", "CCMON_TIMEZONE": "Europe/Berlin"})
    assert EngineConfig.from_settings(settings).windows == (("1h", 3_600_000), ("today", 0))
    assert EngineConfig.from_settings(settings).timezone == "Europe/Berlin"
    assert load(environ={}).timezone == "UTC"
    for bad in ("Mars/Olympus", "", "../etc/passwd"):
        with pytest.raises(SettingsError, match=r"CCMON_TIMEZONE.*IANA time zone"):
            load(environ={"CCMON_TIMEZONE": bad})


def test_case_timeout_and_service_level_target_settings():
    defaults = load(environ={})
    assert (defaults.case_timeout, defaults.service_level_target) == (7 * 86_400, 0.8)
    settings = load(environ={"CCMON_CASE_TIMEOUT": "36h", "CCMON_SERVICE_LEVEL_TARGET": "0.9"})
    assert (settings.case_timeout, settings.service_level_target) == (36 * 3600, 0.9)
    for bad in ("0", "1.5", "-0.2", "eighty"):
        with pytest.raises(SettingsError, match="CCMON_SERVICE_LEVEL_TARGET"):
            load(environ={"CCMON_SERVICE_LEVEL_TARGET": bad})
    with pytest.raises(SettingsError, match="CCMON_CASE_TIMEOUT"):
        load(environ={"CCMON_CASE_TIMEOUT": "a week"})
