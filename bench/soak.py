"""Soak: a real worker under steady live traffic, its RSS sampled until the run ends by itself.

    nohup python -m bench.soak --minutes 60 > /tmp/ccmon-soak.log 2>&1 &

Starts Apache Kafka (jars as for the tests) and one `ccmon worker` (clock = wall), sends
simulated traffic at `--rate` events/s with ts = now (the sender of `alert_latency.py`, in a
process of its own) and, every `--every` seconds, scrapes the worker's /metrics (as
Prometheus would: a scrape also slides the windows) and reads its VmRSS. Prints one CSV line
per sample, then RSS at each quarter and the slope over the second half (MB per hour).

The retention, the windows and the case timeout are shortened (`--retention`, `--windows`,
`--case-timeout`) so that the state reaches its steady size within minutes: after
max(retention, longest window, case timeout) the contacts, samples and cases that leave equal
those that arrive, and RSS must stay flat from there.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.alert_latency import background_process
from ccmon.embedded import free_port
from ccmon.kafka import ensure_topics
from ccmon.launch import ccmon_process, stop, total, try_scrape, wait_until
from ccmon.settings import load
from tests.support import servers

ROOT = Path(__file__).resolve().parents[1]
STALLED_S = 60
# Right-sized orjson bytes in a worker: what the one-line change proposed for
# consumers/worker.py does for the values Faust's memory store keeps (docs/benchmarks.md).
TRIM = """import orjson
_dumps = orjson.dumps
orjson.dumps = lambda *args, **options: bytes(memoryview(_dumps(*args, **options)))
"""


def trim_env(workdir: Path) -> dict[str, str]:
    """The environment of a worker whose `orjson.dumps` returns right-sized bytes."""
    (workdir / "trim").mkdir(exist_ok=True)
    (workdir / "trim" / "sitecustomize.py").write_text(TRIM)
    return {"PYTHONPATH": str(workdir / "trim")}
APPLIED = ("ccmon_events_total", "ccmon_events_invalid_total", "ccmon_events_duplicate_total")


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process, in MB."""
    fields = dict(line.split(":", 1) for line in
                  Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return tuple(int(fields[name].split()[0]) / 1024 for name in ("VmRSS", "VmHWM"))


def soak(values: dict, workdir: Path, args: argparse.Namespace) -> list[tuple[float, float]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    worker = ccmon_process(["worker"], {**values, "metrics_port": port}, workdir / "worker.log",
                           extra_env=trim_env(workdir) if args.trim else None, cwd=workdir)
    settings = load(environ={}, brokers=values["brokers"], topic_prefix="bench",
                    partitions=args.partitions)
    stop_event, sent = multiprocessing.Event(), multiprocessing.Value("q", 0)
    traffic = multiprocessing.Process(target=background_process,
                                      args=(settings, args.rate, stop_event, sent))
    samples: list[tuple[float, float]] = []
    try:
        wait_until(lambda: try_scrape(url), 120, "the worker's /metrics")
        traffic.start()
        started = time.monotonic()
        end = started + args.minutes * 60
        print("elapsed_s,rss_mb,hwm_mb,applied_events", flush=True)
        progress = (0.0, 0.0)  # (events applied, when that count was first seen)
        while time.monotonic() < end:
            time.sleep(args.every)  # the sampling pace, not a synchronisation
            if worker.poll() is not None:
                print(f"the worker exited with code {worker.returncode}", flush=True)
                break
            scraped = try_scrape(url) or {}
            applied = sum(total(scraped, name) for name in APPLIED)
            rss, hwm = rss_mb(worker.pid)
            elapsed = time.monotonic() - started
            samples.append((elapsed, rss))
            print(f"{elapsed:.0f},{rss:.1f},{hwm:.1f},{applied:.0f}", flush=True)
            if applied > progress[0]:
                progress = (applied, elapsed)
            elif elapsed - progress[1] > STALLED_S:
                print(f"no event applied for {STALLED_S} s: the broker or the worker is gone "
                      f"(worker log: {workdir / 'worker.log'})", flush=True)
                break
    finally:
        stop_event.set()
        if traffic.pid is not None:
            traffic.join()
        stop(worker)
    print(f"sent {sent.value:,} events in {args.minutes} min "
          f"({sent.value / (args.minutes * 60):,.0f} events/s)")
    return samples


def summary(samples: list[tuple[float, float]]) -> None:
    quarter = len(samples) // 4
    for i in range(1, 5):
        elapsed, rss = samples[min(i * quarter, len(samples)) - 1]
        print(f"RSS at {elapsed / 60:5.1f} min: {rss:,.0f} MB")
    second_half = samples[len(samples) // 2:]
    slope = statistics.linear_regression([t for t, _ in second_half],
                                         [r for _, r in second_half]).slope
    rss = [r for _, r in second_half]
    print(f"second half: RSS {min(rss):,.0f} to {max(rss):,.0f} MB, slope {slope * 3600:+.1f} MB/h")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--every", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--retention", default="10m", help="CCMON_CONTACT_RETENTION")
    parser.add_argument("--windows", default="1m,5m,15m", help="CCMON_WINDOWS")
    parser.add_argument("--case-timeout", default="10m",
                        help="CCMON_CASE_TIMEOUT: a customer's case is kept R after its last "
                             "contact left (the traffic's 50,000 customers come back often)")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--trim", action="store_true",
                        help="right-sized orjson bytes in the worker (see TRIM)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="ccmon-soak-"))
    kafka = servers.start_kafka(workdir)
    try:
        values = {"brokers": kafka.address, "app_id": "soak", "topic_prefix": "bench",
                  "clock": "wall", "partitions": args.partitions, "session_timeout": 6,
                  "contact_retention": args.retention, "windows": args.windows,
                  "case_timeout": args.case_timeout}
        settings = load(environ={}, brokers=kafka.address, topic_prefix="bench",
                        partitions=args.partitions)
        asyncio.run(ensure_topics(kafka.address, [*settings.channel_topics.values(),
                                                  settings.agents_topic], args.partitions))
        print(f"soak: {args.rate:,.0f} events/s for {args.minutes} min, retention "
              f"{args.retention}, windows {args.windows}, case timeout {args.case_timeout}, "
              f"Apache Kafka, {args.partitions} "
              f"partitions{', trimmed' if args.trim else ''}; {platform.machine()}, "
              f"{os.cpu_count()} CPUs, Python {platform.python_version()}; {ROOT} at "
              f"{git_head()}; work dir {workdir}",
              flush=True)
        summary(soak(values, workdir, args))
    finally:
        kafka.stop()


def git_head() -> str:
    return subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, text=True,
                          capture_output=True).stdout.strip()


if __name__ == "__main__":
    main()
