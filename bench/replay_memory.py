"""Peak RSS of a real worker replaying a file of events (e.g. the bank's Jan-Oct 1999).

    for f in /work/shared/data/anonymous-bank-1999/*.gz; do python -m ccmon.stream.bank "$f"
    done > /tmp/bank-1999.jsonl
    python -m bench.replay_memory /tmp/bank-1999.jsonl --windows 5m,15m,1h \
        --windows 5m,15m,1h,7300h

Starts Apache Kafka (jars as for the tests), writes the file to the input topics once, then
for each `--windows` runs one `ccmon worker` (clock = event, default retention unless
`--retention`) over all of it, from the first offset with fresh state, until its /metrics
equal the pure engine's figures for the same events (series of windows beyond the engine's
default ones are left out of that comparison), and prints the worker's peak RSS (VmHWM)
and its RSS then.

`--trim` runs the worker with `orjson.dumps` wrapped to return right-sized bytes, which is
what the one-line change proposed for `consumers/worker.py` does for the values it keeps in
Faust's memory store: orjson 3.12+ returns bytes whose allocation is rounded up (about 4 KB
for a contact's 150 bytes) and never shrunk, so each key held costs ~4 KB whatever its size.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from bench.soak import rss_mb, trim_env
from ccmon.embedded import free_port
from ccmon.figures import describe_difference, engine_figures, matches, queue_series
from ccmon.launch import ccmon_process, stop, try_scrape, wait_until
from ccmon.produce import replay
from ccmon.settings import DEFAULT_WINDOWS, load
from tests.support import servers

DEADLINE = 1800.0


def default_window_series(samples) -> dict:
    """The queue series whose window (if any) is one of the engine's defaults."""
    defaults = {label for label, _ in DEFAULT_WINDOWS}
    return {key: value for key, value in queue_series(samples).items()
            if all(label != "window" or value in defaults for label, value in key[1])}


def run_worker(values: dict, wanted: dict, workdir: Path, name: str, trim: bool) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    worker = ccmon_process(["worker"], {**values, "app_id": name, "metrics_port": port},
                           workdir / f"{name}.log", extra_env=trim_env(workdir) if trim else None,
                           cwd=workdir)
    started = time.monotonic()
    try:
        try:
            wait_until(lambda: matches(default_window_series(try_scrape(url)), wanted),
                       DEADLINE, "the worker's figures to equal the engine's", interval=1.0)
        except TimeoutError:
            sys.exit(f"never matched: {describe_difference(try_scrape(url), wanted)}")
        rss, peak = rss_mb(worker.pid)
        print(f"windows {values['windows']}{', trimmed' if trim else ''}: figures equal after "
              f"{time.monotonic() - started:,.0f} s; peak RSS {peak:,.0f} MB, RSS {rss:,.0f} MB",
              flush=True)
    finally:
        stop(worker)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--windows", action="append", required=True)
    parser.add_argument("--retention", default=None, help="CCMON_CONTACT_RETENTION")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--trim", action="store_true",
                        help="right-sized orjson bytes in the worker (see above)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="ccmon-replay-"))
    kafka = servers.start_kafka(workdir)
    try:
        settings = load(environ={}, brokers=kafka.address, topic_prefix="bench",
                        partitions=args.partitions)
        lines = args.file.read_bytes().splitlines()
        print(f"{len(lines):,} events from {args.file}, Apache Kafka, {args.partitions} "
              f"partitions; {platform.machine()}, {os.cpu_count()} CPUs, Python "
              f"{platform.python_version()}", flush=True)
        asyncio.run(replay(settings, str(args.file), progress=False))
        wanted = engine_figures(lines, settings)
        del lines
        values = {"brokers": kafka.address, "topic_prefix": "bench", "clock": "event",
                  "partitions": args.partitions, "session_timeout": 6}
        if args.retention:
            values["contact_retention"] = args.retention
        for i, windows in enumerate(args.windows):
            run_worker({**values, "windows": windows}, wanted, workdir, f"replay{i}", args.trim)
    finally:
        kafka.stop()


if __name__ == "__main__":
    main()
