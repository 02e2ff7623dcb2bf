"""The pure KPI engine alone (issue 12's first goal: >= 300k events/s on one core): decode,
validate, lifecycle, aggregation and every metric of versions 1 and 1.1, no Kafka.

Simulated traffic (`stream/simulate.py`) is encoded as the input topics carry it (one
partition per topic), then fed to `stream.engine.Pipeline` as the worker's consumer hands it
over: up to 20,000 records of one topic at a time, the topics in turn; the metrics are read
once at the end (as a scrape would). The figure is events/s of
`feed` alone, the best of `--repeat` runs (the machine's other load only slows a run).

    python bench/engine.py --hours 6 --scale 4 --repeat 3
"""

from __future__ import annotations

import argparse
import platform
import time

import orjson

from ccmon.stream.engine import EngineConfig, Pipeline, Record
from ccmon.stream.kpis import queue_metrics
from ccmon.stream.simulate import SimConfig, Simulation

START = 1_763_802_000.0  # 2025-11-22T09:00:00Z
BATCH = 20_000  # the worker's BATCH_MAX


def records(hours: float, scale: float) -> list[Record]:
    """The simulated events as records of their topics: agent events on `agents`, contact
    events on their channel's topic, offsets counted per topic."""
    offsets: dict[str, int] = {}
    out = []
    for event in Simulation(7, START, SimConfig().scaled(scale)).run(hours * 3600):
        channel = event.get("channel")
        source = f"{channel or 'agents'}:0"
        offset = offsets[source] = offsets.get(source, -1) + 1
        out.append(Record(source, offset, channel, orjson.dumps(event)))
    return out


def run(batches: list[list[Record]]) -> tuple[float, int]:
    """Seconds `feed` took for every batch, and the number of series read at the end."""
    pipeline = Pipeline(EngineConfig())
    started = time.perf_counter()
    for batch in batches:
        pipeline.feed(batch)
    elapsed = time.perf_counter() - started
    return elapsed, sum(1 for _ in queue_metrics(pipeline.board, pipeline.intake.latest_ts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=6.0)
    parser.add_argument("--scale", type=float, default=4.0, help="the simulation's size factor")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    events = records(args.hours, args.scale)
    batches = []
    for i in range(0, len(events), BATCH):  # a fetch: each topic's records, a batch each
        by_topic: dict[str, list[Record]] = {}
        for record in events[i:i + BATCH]:
            by_topic.setdefault(record.source, []).append(record)
        batches += by_topic.values()
    best = min(run(batches)[0] for _ in range(args.repeat))
    print(f"{len(events):,} events ({args.hours:g} h at scale {args.scale}), {len(batches)} "
          f"batches: {len(events) / best:,.0f} events/s (best of {args.repeat}; "
          f"{platform.python_implementation()} {platform.python_version()}, "
          f"{platform.machine()})")


if __name__ == "__main__":
    main()
