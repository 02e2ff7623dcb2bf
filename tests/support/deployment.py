"""One ccmon deployment on the test broker (its own app id and topics) and its workers."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

from ccmon.embedded import free_port
from ccmon.launch import ccmon_process, stop, try_scrape, wait_until
from ccmon.produce import replay
from ccmon.settings import env_name, load

DEADLINE = 120.0
_names = itertools.count()


class Deployment:
    """Settings of one ccmon deployment on the test broker, and its worker processes."""

    def __init__(self, kafka, tmp_path: Path, **values: object) -> None:
        n = next(_names)
        self.tmp_path = tmp_path
        self.values = {"brokers": kafka.address, "app_id": f"ccmon-test-{n}",
                       "topic_prefix": f"t{n}", "clock": "event", "session_timeout": 6,
                       "partitions": 4, **values}
        # Parsed as the worker parses them (CCMON_* variables): the oracle's settings.
        self.settings = load(environ={env_name(k): str(v) for k, v in self.values.items()})
        self.workers: list = []

    def start_worker(self):
        port = free_port()
        # INFO: Faust's rebalance and recovery steps, for the log tail of a failure.
        process = ccmon_process(["worker", "--loglevel", "INFO"],
                                {**self.values, "metrics_port": port},
                                self.tmp_path / f"worker-{len(self.workers)}.log",
                                cwd=self.tmp_path)  # Faust's <app id>-data folder goes there
        process.metrics_url = f"http://127.0.0.1:{port}/metrics"
        self.workers.append(process)
        wait_until(lambda: process.poll() is not None or try_scrape(process.metrics_url),
                   DEADLINE, "the worker's /metrics")
        assert process.poll() is None, self.log_tail()
        return process

    def start_ingest(self, *args: str):
        """`ccmon ingest ARGS…` with the deployment's settings and a /metrics port of its own;
        its log is `ingest.log`."""
        port = free_port()
        process = ccmon_process(["ingest", *args], {**self.values, "metrics_port": port},
                                self.tmp_path / "ingest.log")
        process.metrics_url = f"http://127.0.0.1:{port}/metrics"
        return process

    def ingest_log(self) -> str:
        path = self.tmp_path / "ingest.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def send(self, lines: list[bytes]) -> None:
        asyncio.run(self.send_async(lines))

    async def send_async(self, lines: list[bytes]) -> None:
        path = self.tmp_path / f"lines-{next(_names)}.jsonl"
        path.write_bytes(b"\n".join(lines) + b"\n")
        sent = await replay(self.settings, str(path), progress=False)
        assert sent == len(lines), f"replay sent {sent} of {len(lines)} lines"

    def log_tail(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:]
                         for p in sorted(self.tmp_path.glob("worker-*.log")))

    def stop_all(self) -> None:
        for process in self.workers:
            stop(process)
