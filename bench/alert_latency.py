"""Event → WebSocket alert latency, live (clock = wall), under background traffic.

    python -m bench.alert_latency                   # real Apache Kafka, 2,000 events/s
    python -m bench.alert_latency --rate 5000 --probes 100

1. Starts Kafka (jars as for the tests), Redis, a worker with one probe rule (`waiting >= 1`
   in queue `probe`, `for: 0s`) and a gateway; a supervisor connects to the gateway.
2. Sends simulated traffic at `--rate` events/s (timestamps set to now) for the whole run.
3. One probe at a time, at a random moment within the second: a contact queues in `probe`
   (the alert must fire), then abandons (it must resolve). Each latency is from the send of
   the event to the arrival of the alert message at the supervisor's WebSocket.

Rules are evaluated as the monitor clock passes each whole second (alerts.md), so about half
a second on average is waiting for the next second; the rest is Kafka, both worker stages,
the changelog write, Redis and the gateway. Prints p50/p90/p99/max of both transitions.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import multiprocessing
import os
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from ccmon.embedded import free_port
from ccmon.kafka import ensure_topics
from ccmon.launch import ccmon_process, scrape, stop, try_scrape, wait_until
from ccmon.produce import event_message, new_producer
from ccmon.settings import load
from ccmon.stream.events import parse_ts
from ccmon.stream.simulate import SimConfig, Simulation
from tests.support import servers
from tests.support.alerting import Client, Gateway, write_tokens

PROBE_RULE = {"name": "probe", "metric": "ccmon_queue_waiting_contacts",
              "where": {"queue": "probe"}, "op": ">=", "threshold": 1, "for": "0s",
              "severity": "info", "summary": "a probe contact waits"}
DEADLINE = 120.0


def background_process(settings, rate: float, stop_event, sent) -> None:
    """The background traffic in a process of its own, so that it never delays the probes'
    WebSocket reads in this one."""
    sent.value = asyncio.run(background(settings, rate, stop_event))


async def background(settings, rate: float, stop_event) -> int:
    """Simulated events at `rate` per second, their ts moved to the moment they are sent."""
    producer = new_producer(settings.bootstrap())
    await producer.start()
    simulation = Simulation(3, time.time(), SimConfig().scaled(40)).run(30 * 86400)
    sent = 0
    started = time.monotonic()
    try:
        while not stop_event.is_set():
            due = int((time.monotonic() - started) * rate) - sent
            now = time.time()
            for event in itertools.islice(simulation, max(0, due)):
                event["ts"] = now
                topic, key, value = event_message(settings, event)
                await producer.send(topic, value, key=key)
                sent += 1
            await asyncio.sleep(0.01)  # the sending pace
    finally:
        await producer.stop()
    return sent


async def probes(settings, client: Client, count: int) -> dict[str, list[float]]:
    """Latencies: event sent → alert received, and evaluating second → alert received."""
    producer = new_producer(settings.bootstrap())
    await producer.start()
    rng = random.Random(7)
    figures: dict[str, list[float]] = {name: [] for name in (
        "firing", "resolved", "firing after evaluation", "resolved after evaluation")}
    try:
        for i in range(count + 1):  # the first is a warm-up: group join, first fetches
            contact = f"probe-{i}"
            for kind, status in (("contact.queued", "firing"), ("contact.abandoned", "resolved")):
                await asyncio.sleep(rng.uniform(0.3, 1.3))  # a random phase within the second
                event = {"event_id": f"{contact}-{kind}", "type": kind, "ts": time.time(),
                         "contact_id": contact, "queue": "probe", "channel": "voice"}
                if kind != "contact.queued":
                    del event["queue"]
                topic, key, value = event_message(settings, event)
                sent = time.time()
                await producer.send_and_wait(topic, value, key=key)
                seen = len(client.messages)
                message = await client.until(
                    lambda m, seen=seen, status=status: m.get("type") == "alert"
                    and m["labels"].get("queue") == "probe" and m["status"] == status
                    and client.messages.index(m) >= seen, f"the probe {status}", DEADLINE)
                received = time.time()
                evaluated = parse_ts(message["starts_at" if status == "firing" else "ends_at"])
                if i:
                    figures[status].append(received - sent)
                    figures[f"{status} after evaluation"].append(received - evaluated / 1000)
    finally:
        await producer.stop()
    return figures


def percentiles(values: list[float]) -> str:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return (f"p50 {cuts[49] * 1000:,.0f} ms · p90 {cuts[89] * 1000:,.0f} ms · "
            f"p99 {cuts[98] * 1000:,.0f} ms · max {max(values) * 1000:,.0f} ms")


async def measure(values: dict, workdir: Path, gateway: Gateway, args) -> None:
    settings = load(environ={}, brokers=values["brokers"], topic_prefix="bench",
                    partitions=args.partitions)
    client = await Client.open(gateway.ws_url, "carol")
    await client.until(lambda m: m["type"] == "snapshot", "the snapshot")
    stop_event, counter = multiprocessing.Event(), multiprocessing.Value("q", 0)
    traffic = multiprocessing.Process(target=background_process,
                                      args=(settings, args.rate, stop_event, counter))
    traffic.start()
    started = time.monotonic()
    try:
        figures = await probes(settings, client, args.probes)
    finally:
        stop_event.set()
        await asyncio.to_thread(traffic.join)
        await client.close()
    sent = counter.value
    rate = sent / (time.monotonic() - started)
    print(f"background traffic: {rate:,.0f} events/s sent ({sent:,} events)")
    print(f"{args.probes} probes; latency to the supervisor's WebSocket")
    print(f"  queued  → firing:   {percentiles(figures['firing'])}")
    print(f"  abandon → resolved: {percentiles(figures['resolved'])}")
    delivery = scrape(gateway.http_url + "/metrics")
    buckets = {dict(labels)["le"]: value for (name, labels), value in delivery.items()
               if name == "ccmon_alert_delivery_seconds_bucket"}
    print(f"  gateway, Redis → socket: {buckets['0.05']:.0f} of {buckets['+Inf']:.0f} within "
          f"50 ms, {buckets['1.0']:.0f} within 1 s")
    print("  from the evaluating second (after the wait for it):")
    print(f"    firing:   {percentiles(figures['firing after evaluation'])}")
    print(f"    resolved: {percentiles(figures['resolved after evaluation'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--probes", type=int, default=60)
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="ccmon-bench-"))
    kafka = servers.start_kafka(workdir)
    redis = servers.start_redis(workdir)
    rules = workdir / "rules.yaml"
    rules.write_text(yaml.safe_dump({"rules": [PROBE_RULE]}))
    values = {"brokers": kafka.address, "app_id": "bench", "topic_prefix": "bench",
              "clock": "wall", "partitions": args.partitions, "session_timeout": 6,
              "rules": rules, "redis_url": redis.url}
    settings = load(environ={}, brokers=kafka.address, topic_prefix="bench",
                    partitions=args.partitions)
    asyncio.run(ensure_topics(kafka.address, [*settings.channel_topics.values(),
                                              settings.agents_topic], args.partitions))
    port = free_port()
    worker = ccmon_process(["worker"], {**values, "metrics_port": port}, workdir / "worker.log",
                           cwd=workdir)
    gateway = None
    try:
        wait_until(lambda: try_scrape(f"http://127.0.0.1:{port}/metrics"), DEADLINE,
                   "the worker's /metrics")
        gateway = Gateway({"redis_url": redis.url, "app_id": "bench",
                           "tokens": write_tokens(workdir / "tokens.yaml")},
                          workdir / "gateway.log")
        print(f"Apache Kafka, {args.partitions} partitions, worker + gateway + Redis; "
              f"target {args.rate:,.0f} events/s", flush=True)
        asyncio.run(measure(values, workdir, gateway, args))
        print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
              f"{platform.python_version()}")
    finally:
        if gateway is not None:
            gateway.stop()
        stop(worker)
        redis.stop()
        kafka.stop()


if __name__ == "__main__":
    main()
