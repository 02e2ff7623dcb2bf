"""Convert the Anonymous Bank 1999 call records into v1 voice events (events.md).

Data source, acknowledged as its terms ask: the "Anonymous Bank" call-centre data, January to
October 1999, collected by the Technion Service Enterprise Engineering lab (Guedj & Mandelbaum);
used in Brown et al. 2005 (JASA) and Gans, Koole & Mandelbaum 2003 (MSOM). "The data is free for
use. If used, please notify Avi Mandelbaum ... and do acknowledge the data source."

Usage: python -m ccmon.stream.bank 01_January.txt.gz [--day 1999-01-04 ...] > january.jsonl

Decisions (one record = one call = one contact):
- queue: the service line `type` (PS, PE, IN, NE, NW, TT); channel `voice`.
- PHANTOM records are skipped ("a virtual call to be ignored", Technion documentation).
- HANG with `q_start = 0:00:00` hung up in the voice-response unit before reaching any queue: not
  offered to agents, skipped.
- AGENT with `q_start = 0:00:00` went from the VRU "directly to receive service": kept as a
  contact queued and answered at `ser_start` (zero wait). Dropping them would drop half the
  served calls and turn the published 15.4 % abandonment (Gans et al., computed over these very
  calls) into 24.8 %.
- queued: `contact.queued` at `q_start`, with `customer_id` unless it is 0 (unidentified).
- HANG: `contact.abandoned` at `q_exit`.
- AGENT: `contact.answered` at `ser_start` (`agent_id` = `server`), but never before the call
  was queued: `ser_start` is often 1 s (sometimes more) before `q_exit`, and occasionally before
  `q_start`. `contact.ended` at `ser_exit`, never before the answer. A served call without
  service times (`ser_start = 0:00:00`, a few dozen a month) is answered and ended at `q_exit`.
  `resolved` and `wrap_seconds` are unknown, so they are left out; `agent_id` too when the
  server is `NO_SERVER` (a few hundred served calls a month, mostly zero-length).
- Times are local Israel clock times of 1999; they are emitted as if they were UTC
  (`1999-01-04T09:00:00.000Z` = 09:00 in Israel), which keeps the intraday shape readable and
  avoids the repeated hour of the daylight-saving change. A time earlier than the call's
  previous step by more than 12 h is on the next day (calls that cross midnight).
- ids: contact `bank-<yymmdd>-<vru+line>-<call_id>` (unique: call ids are per VRU line),
  event `<contact>-q|a|x|e` (queued, answered, abandoned, ended): converting twice gives
  the same ids, so a second replay is only duplicates.
- Output is sorted by ts, a day at a time: a day's events are held back only past midnight.
"""

from __future__ import annotations

import argparse
import calendar
import csv
import gzip
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import orjson

Row = dict[str, str]
Event = dict[str, Any]

DAY_S = 86400
NOT_QUEUED = "0:00:00"


def read_month(path: str) -> Iterator[Row]:
    """Rows of one monthly file (gzip or plain TSV with a header), values stripped."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="latin-1", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            yield {key.strip(): (value or "").strip() for key, value in row.items() if key}


def day_start(yymmdd: str) -> int:
    """`990104` -> Unix seconds of 1999-01-04T00:00:00Z."""
    year, month, day = 1900 + int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:6])
    return calendar.timegm((year, month, day, 0, 0, 0))


def _clock(text: str) -> int:
    hours, minutes, seconds = (int(part) for part in text.split(":"))
    return hours * 3600 + minutes * 60 + seconds


def _at(midnight: int, clock: str, not_before: int) -> int:
    """Absolute time of a clock reading that follows `not_before` (rolls over midnight)."""
    t = midnight + _clock(clock)
    while t < not_before - DAY_S // 2:
        t += DAY_S
    return t


def format_ts(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(t))) + ".000Z"


def call_to_events(row: Row) -> list[tuple[int, Event]]:
    """(Unix seconds, event) of one call in lifecycle order; [] for a skipped call."""
    outcome = row["outcome"]
    direct = row["q_start"] == NOT_QUEUED
    if outcome not in ("AGENT", "HANG") or (direct and outcome != "AGENT"):
        return []
    midnight = day_start(row["date"])
    vru_entry = midnight + _clock(row["vru_entry"])
    contact_id = f"bank-{row['date']}-{row['vru+line']}-{row['call_id']}"

    def event(suffix: str, type_: str, t: int, **fields: Any) -> tuple[int, Event]:
        body = {"event_id": f"{contact_id}-{suffix}", "type": type_, "ts": format_ts(t),
                "channel": "voice", "contact_id": contact_id, **fields}
        return t, body

    has_service = row["ser_start"] != NOT_QUEUED
    if direct:
        queued = _at(midnight, row["ser_start"], vru_entry)
    else:
        queued = _at(midnight, row["q_start"], vru_entry)
    extra = {} if row["customer_id"] in ("", "0") else {"customer_id": row["customer_id"]}
    events = [event("q", "contact.queued", queued, queue=row["type"], **extra)]
    if outcome == "HANG":
        events.append(event("x", "contact.abandoned", _at(midnight, row["q_exit"], queued)))
        return events
    if has_service:
        answered = max(queued, _at(midnight, row["ser_start"], queued))
        ended = max(answered, _at(midnight, row["ser_exit"], answered))
    else:
        answered = ended = max(queued, _at(midnight, row["q_exit"], queued))
    agent = {} if row["server"] in ("", "NO_SERVER") else {"agent_id": row["server"]}
    events.append(event("a", "contact.answered", answered, **agent))
    events.append(event("e", "contact.ended", ended))
    return events


def calls_to_events(rows: Iterable[Row]) -> list[Event]:
    """Events of these calls sorted by ts (stable: a call's same-second events keep order)."""
    timed = [pair for row in rows for pair in call_to_events(row)]
    timed.sort(key=lambda pair: pair[0])
    return [event for _, event in timed]


def events_by_day(rows: Iterable[Row], days: set[str] | None = None) -> Iterator[Event]:
    """All events in ts order, converting one day of calls at a time.

    Events after the next midnight (calls that cross it) are carried into the next day.
    """
    by_date: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_date[row["date"]].append(row)
    carried: list[tuple[int, Event]] = []
    for date in sorted(by_date, key=day_start):
        if days is not None and date not in days:
            continue
        next_midnight = day_start(date) + DAY_S
        timed = carried + [pair for row in by_date[date] for pair in call_to_events(row)]
        timed.sort(key=lambda pair: pair[0])
        yield from (event for t, event in timed if t < next_midnight)
        carried = [(t, event) for t, event in timed if t >= next_midnight]
    yield from (event for _, event in carried)


def _yymmdd(text: str) -> str:
    """`1999-01-04` -> `990104`, the file's date format."""
    year, month, day = text.split("-")
    if len(year) != 4 or not (month + day).isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 1999-01-04")
    return f"{year[2:]}{month}{day}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ccmon.stream.bank",
        description="Anonymous Bank 1999 call records (Technion SEE lab) -> v1 voice events "
                    "as JSON lines on stdout, sorted by ts.")
    parser.add_argument("path", help="a monthly file, e.g. 01_January.txt.gz")
    parser.add_argument("--day", action="append", type=_yymmdd, metavar="YYYY-MM-DD",
                        help="only the calls of this day (repeatable)")
    args = parser.parse_args(argv)
    out = sys.stdout.buffer
    days = set(args.day) if args.day else None
    try:
        for event in events_by_day(read_month(args.path), days):
            out.write(orjson.dumps(event) + b"\n")
        out.flush()
    except BrokenPipeError:  # e.g. piped into `head`
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
