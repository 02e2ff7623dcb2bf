"""Worker throughput against the raw client, on the same N events, in one run.

    python -m bench.throughput                    # real Apache Kafka (jars as for the tests)
    python -m bench.throughput --broker tansu     # the demo's embedded broker
    python -m bench.throughput --events 1000000

1. Starts a broker, writes N simulated events (all channels and agent states, about 1 % of
   them bad or repeated) to the input topics, partitions as the worker's default.
2. (a) raw: one aiokafka consumer reads them all with `getmany` and decodes each with orjson.
3. (b) worker: one `ccmon worker` process consumes the same topics end to end (validation,
   lifecycle, facts topic, aggregation, changelogs); its rate counts from its first applied
   event to the moment its /metrics equal the pure engine's figures for the same events, so
   group join and recovery are left out but every write the events cause is in. Progress is
   read from the group's committed offsets (every partition it reads, input, facts and the
   rest, at its end), not by scraping /metrics in a loop: a scrape runs in the worker's
   event loop, and at this centre's size (2,800 agents a queue) one costs about a second.
   Once caught up, /metrics is compared with the engine's figures (once a second until
   equal).
Prints both rates, their ratio, and the worker's peak RSS (VmHWM).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from ccmon.embedded import free_port, start_tansu
from ccmon.figures import describe_difference, engine_figures, matches, queue_series
from ccmon.launch import ccmon_process, stop, total, try_scrape, wait_until
from ccmon.produce import replay
from ccmon.settings import load
from ccmon.stream.simulate import SimConfig, Simulation

START = 1_763_802_000.0  # 2025-11-22T09:00:00Z
DEADLINE = 600.0
POLL_S = 0.05


def events(count: int, seed: int) -> list[bytes]:
    """`count` simulated events of a large centre, with some bad lines and repeats mixed in."""
    simulation = Simulation(seed, START, SimConfig().scaled(40))
    lines = [orjson.dumps(e) for e in itertools.islice(simulation.run(30 * 86400), count)]
    rng = random.Random(seed)
    for _ in range(count // 200):
        lines.insert(rng.randrange(len(lines)), b'{"not": "an event"}')
    for _ in range(count // 200):
        i = rng.randrange(len(lines) - 1)
        lines.insert(rng.randrange(i + 1, len(lines) + 1), lines[i])
    return lines[:count]


async def raw_rate(bootstrap: str, topics: list[str], count: int) -> float:
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", max_poll_records=5000,
                                fetch_max_bytes=64 * 1024 * 1024)
    await consumer.start()
    read = 0
    started = None
    try:
        while read < count:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            if started is None and batches:
                started = time.perf_counter()
            for messages in batches.values():
                for message in messages:
                    try:  # noqa: SIM105 - the cheapest form in the loop being timed
                        orjson.loads(message.value)
                    except orjson.JSONDecodeError:
                        pass
                read += len(messages)
    finally:
        await consumer.stop()
    return read / (time.perf_counter() - started)


async def caught_up(bootstrap: str, group: str, inputs: set[str]) -> bool:
    """The group has committed every partition it reads at its end, the input topics' too."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        if not inputs <= {tp.topic for tp in committed}:
            return False
        ends = await consumer.end_offsets(list(committed))
        return all(meta.offset >= ends[tp] for tp, meta in committed.items())
    finally:
        await consumer.stop()
        await admin.close()


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def worker_rate(values: dict, lines: list[bytes], workdir: Path, inputs: set[str]
                ) -> tuple[float, float]:
    wanted = engine_figures(lines, load(environ={}, **{
        k: v for k, v in values.items() if k in ("brokers", "topic_prefix")}))
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    worker = ccmon_process(["worker"], {**values, "metrics_port": port}, workdir / "worker.log",
                           cwd=workdir)
    try:
        def applied() -> float:
            samples = try_scrape(url) or {}
            return sum(total(samples, name) for name in (
                "ccmon_events_total", "ccmon_events_invalid_total",
                "ccmon_events_duplicate_total"))

        first = wait_until(applied, DEADLINE, "the worker's first events", interval=POLL_S)
        started = time.perf_counter()
        wait_until(lambda: asyncio.run(caught_up(values["brokers"], values["app_id"], inputs)),
                   DEADLINE, "the worker's group to commit every partition's end", interval=0.5)
        caught = time.perf_counter()
        try:
            wait_until(lambda: matches(queue_series(try_scrape(url)), wanted), DEADLINE,
                       "the worker's figures to equal the engine's", interval=1.0)
        except TimeoutError:
            sys.exit(f"the worker never matched: {describe_difference(try_scrape(url), wanted)}")
        elapsed = caught - started
        return (len(lines) - first) / elapsed, peak_rss_mb(worker.pid)
    finally:
        stop(worker)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--broker", choices=("kafka", "tansu"), default="kafka")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="ccmon-bench-"))
    if args.broker == "kafka":
        from tests.support import servers


        broker = servers.start_kafka(workdir)
        bootstrap = broker.address
    else:
        broker = start_tansu(log_path=workdir / "tansu.log")
        bootstrap = broker.bootstrap
    try:
        values = {"brokers": bootstrap, "app_id": "bench", "topic_prefix": "bench",
                  "clock": "event", "partitions": args.partitions, "session_timeout": 6}
        settings = load(environ={}, brokers=bootstrap, topic_prefix="bench",
                        partitions=args.partitions)
        lines = events(args.events, args.seed)
        path = workdir / "events.jsonl"
        path.write_bytes(b"\n".join(lines) + b"\n")
        print(f"{len(lines):,} events, {args.partitions} partitions, {args.broker}", flush=True)
        asyncio.run(replay(settings, str(path), progress=False))
        topics = [*settings.channel_topics.values(), settings.agents_topic]
        raw = asyncio.run(raw_rate(bootstrap, topics, len(lines)))
        print(f"(a) raw aiokafka getmany + orjson.loads: {raw:,.0f} events/s", flush=True)
        rate, rss = worker_rate(values, lines, workdir, set(topics))
        print(f"(b) ccmon worker, end to end:           {rate:,.0f} events/s "
              f"(peak RSS {rss:,.0f} MB)")
        print(f"ratio worker/raw: {rate / raw:.2f}")
        print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
              f"{platform.python_version()}")
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
