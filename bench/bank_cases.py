"""What the Anonymous Bank 1999 calls say about customers' cases (metrics.md 1.1), per queue.

    python -m bench.bank_cases /work/shared/data/anonymous-bank-1999/*.gz \
        --case-timeout 1d --case-timeout 7d

Feeds every call of the monthly files (converted by `stream/bank.py`) through the pure engine
with one window over the whole period and R more (7300 h + R) and the case timeout R, reads
the case series at the last event, then moves the clock R further so every case still open
is dropped, and prints a table per R. The bank records no resolution, so no case is ever
resolved: a case is a customer's run of calls with at most R between one call's end and the
next call's entry, the repeat contacts are the calls after the first of such a run, and every
case ends dropped.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter

import orjson

from ccmon.settings import parse_duration
from ccmon.stream.bank import events_by_day, read_month
from ccmon.stream.engine import EngineConfig, Pipeline, Record
from ccmon.stream.kpis import queue_metrics

PERIOD_MS = 7300 * 3_600_000  # 304 days: January to October 1999
BATCH = 20_000
COUNTED = ("ccmon_offered_contacts", "ccmon_opened_cases", "ccmon_repeat_contacts",
           "ccmon_dropped_cases", "ccmon_resolved_cases")


def feed(pipeline: Pipeline, paths: list[str]) -> tuple[int, int]:
    """Every call of the files into `pipeline`; (events, ts of the last one in ms)."""
    batch: list[Record] = []
    count = 0
    for path in paths:
        for event in events_by_day(read_month(path)):
            batch.append(Record("cc.voice:0", count, "voice", orjson.dumps(event)))
            count += 1
            if len(batch) == BATCH:
                pipeline.feed(batch)
                batch = []
    pipeline.feed(batch)
    return count, max(pipeline.intake.last_event_ts.values())


def figures(pipeline: Pipeline, now: int) -> dict[str, Counter[str]]:
    """metric -> queue -> value, the windowed ones over the whole period, and open cases."""
    found: dict[str, Counter[str]] = {name: Counter() for name in (*COUNTED, "ccmon_open_cases")}
    pipeline.advance(now)
    for name, labels, value in queue_metrics(pipeline.board, now, set(found)):
        found[name][labels[0]] += value
    return found


def table(at_end: dict[str, Counter[str]], later: dict[str, Counter[str]]) -> list[str]:
    rows = ["| queue | calls | with a customer id | cases opened | repeat calls | repeat share "
            "| calls per case | dropped by the last call | open then | dropped in all |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    queues = sorted(at_end["ccmon_offered_contacts"])
    for queue in [*queues, "all"]:
        def get(found: dict[str, Counter[str]], name: str, queue: str = queue) -> int:
            counts = found[name]
            return int(sum(counts.values()) if queue == "all" else counts[queue])
        opened, repeat = get(at_end, "ccmon_opened_cases"), get(at_end, "ccmon_repeat_contacts")
        taken = opened + repeat
        share = f"{repeat / taken:.1%}" if taken else "-"
        per_case = f"{taken / opened:.2f}" if opened else "-"
        rows.append(f"| {queue} | {get(at_end, 'ccmon_offered_contacts'):,} | {taken:,} "
                    f"| {opened:,} | {repeat:,} | {share} | {per_case} "
                    f"| {get(at_end, 'ccmon_dropped_cases'):,} "
                    f"| {get(at_end, 'ccmon_open_cases'):,} "
                    f"| {get(later, 'ccmon_dropped_cases'):,} |")
    assert sum(at_end["ccmon_resolved_cases"].values()) == 0  # the bank records no resolution
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="monthly files, e.g. 01_January.txt.gz")
    parser.add_argument("--case-timeout", action="append", default=None,
                        help="R, e.g. 7d (repeatable; default 7d, the contract's default)")
    args = parser.parse_args()
    for text in args.case_timeout or ["7d"]:
        timeout_ms = round(parse_duration(text) * 1000)
        window = ("all", PERIOD_MS + timeout_ms)  # still the whole period once R later
        pipeline = Pipeline(EngineConfig(windows=(window,), case_timeout_ms=timeout_ms))
        started = time.perf_counter()
        events, last = feed(pipeline, sorted(args.paths))
        at_end = figures(pipeline, last)
        later = figures(pipeline, last + timeout_ms + 1)
        print(f"\nR = {text}: {events:,} events, last at "
              f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(last / 1000))} "
              f"({time.perf_counter() - started:.0f} s)")
        print("\n".join(table(at_end, later)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
