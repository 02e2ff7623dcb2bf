"""Time to be caught up again after `kill -9`, with static group membership and without.

    python -m bench.recovery                      # 200k events in state, default settings
    python -m bench.recovery --events 500000 --instance-id none   # dynamic membership
    python -m bench.recovery --day 500            # a whole day of a 500-agent centre

1. Starts Apache Kafka (jars as for the tests) and one `ccmon worker` with the default
   session timeout (30 s); writes N simulated events and waits until the worker's /metrics
   equal the pure engine's figures.
2. `kill -9`s the worker, writes 2,000 more events, restarts it with the same settings (the
   same metrics port, hence the same default instance id), and measures the time from the
   restart to /metrics equal to the engine's figures for all events.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
import time
from pathlib import Path

import orjson

from bench.throughput import events
from ccmon.embedded import free_port
from ccmon.figures import describe_difference, engine_figures, matches, queue_series
from ccmon.launch import ccmon_process, stop, try_scrape, wait_until
from ccmon.produce import replay
from ccmon.settings import load
from ccmon.stream.simulate import SimConfig, Simulation

DAY_START = 1_763_769_600.0  # 2025-11-22T00:00:00Z: the simulation's day from midnight
DEADLINE = 600.0
LATE_EVENTS = 2000


def day_of(agents: int, seed: int) -> list[bytes]:
    """A day of simulated events (its last LATE_EVENTS sent after the kill) of a centre with
    about `agents` agents: the default simulation's staffing, scaled."""
    scale = 1.0
    for _ in range(3):  # staffing rounds per queue: the agents come near the target, not on it
        config = SimConfig().scaled(scale)
        day = [orjson.dumps(e) for e in Simulation(seed, DAY_START, config).run(86_400)]
        staffed = len({orjson.loads(line).get("agent_id") for line in day} - {None})
        scale *= agents / staffed
    print(f"a day of a {staffed:,}-agent centre: {len(day):,} events", flush=True)
    return day


def send(settings, lines: list[bytes], path: Path) -> None:
    path.write_bytes(b"\n".join(lines) + b"\n")
    asyncio.run(replay(settings, str(path), progress=False))


def caught_up(url: str, wanted: dict) -> float:
    """Seconds until the worker at `url` exports `wanted`."""
    started = time.perf_counter()
    try:
        wait_until(lambda: matches(queue_series(try_scrape(url)), wanted), DEADLINE,
                   "the worker's figures to equal the engine's", interval=0.05)
    except TimeoutError:
        sys.exit(f"the worker never matched: {describe_difference(try_scrape(url), wanted)}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--instance-id", default="", help="CCMON_INSTANCE_ID ('none': dynamic)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--day", type=int, metavar="AGENTS", default=0,
                        help="instead of --events: a whole simulated day (0 h to 24 h) of a "
                             "centre with about this many agents")
    args = parser.parse_args()

    from tests.support import servers

    if args.day:
        lines = day_of(args.day, args.seed)
        args.events = len(lines) - LATE_EVENTS
    else:
        lines = events(args.events + LATE_EVENTS, args.seed)

    workdir = Path(tempfile.mkdtemp(prefix="ccmon-bench-"))
    broker = servers.start_kafka(workdir)
    try:
        port = free_port()
        values = {"brokers": broker.address, "app_id": "bench", "topic_prefix": "bench",
                  "clock": "event", "metrics_port": port, "instance_id": args.instance_id}
        settings = load(environ={}, brokers=broker.address, topic_prefix="bench")
        first, late = lines[:args.events], lines[args.events:]
        url = f"http://127.0.0.1:{port}/metrics"

        worker = ccmon_process(["worker"], values, workdir / "worker-1.log", cwd=workdir)
        send(settings, first, workdir / "first.jsonl")
        loaded = caught_up(url, engine_figures(first, settings))
        print(f"{len(first):,} events in state after {loaded:.1f} s", flush=True)

        worker.send_signal(signal.SIGKILL)
        worker.wait()
        send(settings, late, workdir / "late.jsonl")
        worker = ccmon_process(["worker"], values, workdir / "worker-2.log", cwd=workdir)
        seconds = caught_up(url, engine_figures(lines, settings))
        stop(worker)
        membership = "dynamic" if args.instance_id == "none" else "static"
        print(f"kill -9, {LATE_EVENTS:,} events meanwhile, restart: caught up in {seconds:.1f} s "
              f"({membership} membership, session timeout {settings.session_timeout:g} s)")
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
