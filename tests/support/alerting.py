"""Shared by the alert tests: gateway processes, a WebSocket client, alert messages."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import yaml
from websockets.asyncio.client import ClientConnection, connect

from ccmon.alerts.rules import parse_rules
from ccmon.alerts.state import rfc3339
from ccmon.alerts.store import RedisStore
from ccmon.alerts.watch import BoardWatch
from ccmon.embedded import free_port
from ccmon.launch import ccmon_process, stop, wait_until
from ccmon.stream.engine import EngineConfig, Intake, Record
from ccmon.stream.queues import Board
from tests.support.servers import http_ok

TOKENS = {"alice": ("alice-t0ken", ["billing"]), "bob": ("bob-t0ken", ["sales"]),
          "carol": ("carol-t0ken", ["*"])}
START_SECONDS = 60.0
MESSAGE_SECONDS = 30.0
_ids = itertools.count()
_apps = itertools.count()


def write_tokens(path: Path) -> Path:
    path.write_text(yaml.safe_dump({"tokens": [
        {"name": name, "token": token, "queues": queues}
        for name, (token, queues) in TOKENS.items()]}))
    return path


class Gateway:
    """A `ccmon gateway` process."""

    def __init__(self, settings: dict[str, object], log_path: Path,
                 port: int | None = None) -> None:
        self.port = free_port() if port is None else port
        self.log_path = log_path
        self.process = ccmon_process(["gateway"], {**settings, "ws_port": self.port}, log_path)
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws"
        self.http_url = f"http://127.0.0.1:{self.port}"
        wait_until(lambda: self.process.poll() is not None or http_ok(self.http_url + "/healthz"),
                   START_SECONDS, "the gateway's /healthz")
        assert self.process.poll() is None, self.log()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        stop(self.process)


class Client:
    """A supervisor's WebSocket connection: every message kept, waited on with deadlines."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.messages: list[dict[str, Any]] = []

    @classmethod
    async def open(cls, url: str, name: str, *, header: bool = True) -> Client:
        token = TOKENS[name][0]
        headers = {"Authorization": f"Bearer {token}"} if header else None
        connection = await connect(url, additional_headers=headers, open_timeout=10)
        if not header:
            await connection.send(json.dumps({"type": "auth", "token": token}))
        return cls(connection)

    async def until(self, predicate, what: str, seconds: float = MESSAGE_SECONDS
                    ) -> dict[str, Any]:
        """Read messages until one satisfies `predicate`; it is returned (all are kept)."""
        for message in self.messages:
            if predicate(message):
                return message
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                last = repr(self.messages[-3:])[:2000]
                raise TimeoutError(f"no message {what} within {seconds:g}s; "
                                   f"{len(self.messages)} received, the last: {last}")
            try:
                raw = await asyncio.wait_for(self.connection.recv(), left)
            except TimeoutError:
                continue
            message = json.loads(raw)
            self.messages.append(message)
            if predicate(message):
                return message

    def alerts(self, **fields: object) -> list[dict[str, Any]]:
        """The alert messages received, with these field values."""
        return [m for m in self.messages if m.get("type") == "alert"
                and all(m.get(key) == value for key, value in fields.items())]

    async def close(self) -> None:
        await self.connection.close()


class AlertStack:
    """One app id on a Redis: its gateway processes, its clients, its store as a worker sees
    it (to put alerts and tiles in as a worker does)."""

    def __init__(self, redis_url: str, tmp_path: Path, app_id: str | None = None) -> None:
        self.tmp_path = tmp_path
        app_id = app_id or f"alerts-test-{next(_apps)}"
        self.settings = {"redis_url": redis_url, "app_id": app_id,
                         "tokens": write_tokens(tmp_path / "tokens.yaml")}
        self.store = RedisStore(redis_url, app_id)
        self.gateways: list[Gateway] = []
        self.clients: list[Client] = []

    def gateway(self, port: int | None = None) -> Gateway:
        log_path = self.tmp_path / f"gateway-{len(self.gateways)}.log"
        gateway = Gateway(self.settings, log_path, port)
        self.gateways.append(gateway)
        return gateway

    async def client(self, gateway: Gateway, name: str, header: bool = True) -> Client:
        """A supervisor signed in, its snapshot received."""
        client = await Client.open(gateway.ws_url, name, header=header)
        self.clients.append(client)
        await client.until(lambda m: m["type"] == "snapshot", "snapshot")
        return client

    async def close(self) -> None:
        for client in self.clients:
            await client.close()
        for gateway in self.gateways:
            await asyncio.to_thread(gateway.stop)
        await self.store.close()


async def wait_for(condition: Callable[[], Awaitable[bool]], what: str,
                   seconds: float = MESSAGE_SECONDS) -> None:
    """Poll an async condition until it holds; a missed deadline names `what`."""
    deadline = time.monotonic() + seconds
    while not await condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {seconds:g}s")
        await asyncio.sleep(0.05)  # poll pace


def is_alert(alert_id: str, **fields: object):
    return lambda m: m.get("type") == "alert" and m.get("id") == alert_id and all(
        m.get(key) == value for key, value in fields.items())


def alert(queue: str, status: str = "firing", *, alert_id: str | None = None,
          channel: str = "voice", starts_at: int = 1_763_802_000_000,
          summary: str = "") -> dict[str, Any]:
    """An alert message as a worker publishes it."""
    return {"type": "alert", "id": alert_id or f"test-{next(_ids)}", "rule": "long-queue",
            "status": status, "severity": "warning",
            "labels": {"queue": queue, "channel": channel}, "value": 12, "threshold": 10,
            "summary": summary or f"{queue} queue above 10 waiting",
            "starts_at": rfc3339(starts_at),
            "ends_at": rfc3339(starts_at + 60_000) if status == "resolved" else None,
            "acked_by": None}


def resolved(message: dict[str, Any]) -> dict[str, Any]:
    return alert(message["labels"]["queue"], "resolved", alert_id=message["id"],
                 channel=message["labels"]["channel"])


# -- golden scenarios: events in, the alerts they must raise --------------------------------
T0 = 1_763_802_000  # 2025-11-22T09:00:00Z, seconds
WINDOWS = ("5m", "15m", "1h")
LONG_QUEUE = {"name": "long-queue", "metric": "ccmon_queue_waiting_contacts",
              "where": {"queue": "billing"}, "op": ">", "threshold": 2, "for": "10s",
              "clear": 1, "severity": "warning", "summary": "Billing queue above 2 waiting"}
LOW_SL = {"name": "low-sl", "metric": "ccmon_service_level_ratio", "window": "5m",
          "op": "<", "threshold": 0.9, "severity": "critical"}


class Scenario:
    """Events in, located facts out, as stage one makes them."""

    def __init__(self) -> None:
        self.intake = Intake(EngineConfig())
        self.offset = 0
        self.lines: list[dict] = []

    def event(self, seconds: float, type_: str, contact: str, **fields: object) -> None:
        self.lines.append({"event_id": f"e{len(self.lines)}", "type": type_, "ts": T0 + seconds,
                           "contact_id": contact, **fields})

    def queued(self, seconds: float, contact: str, queue: str = "billing") -> None:
        self.event(seconds, "contact.queued", contact, queue=queue)

    def facts(self) -> list[tuple]:
        records = [Record("cc.voice:0", offset, "voice", orjson.dumps(line))
                   for offset, line in enumerate(self.lines)]
        facts, dead = self.intake.take(0, records)
        assert dead == []
        return facts


def watch_for(*entries: dict, interval_ms: int = 1000) -> BoardWatch:
    """A board and its rules; evaluated every whole second (E = 1 s, the moments of version 1)
    unless told otherwise."""
    config = EngineConfig()
    return BoardWatch(parse_rules({"rules": list(entries)}, WINDOWS),
                      Board(config.windows, config.thresholds, config.timezone), interval_ms)


def ticks(scenario: Scenario, until: float, first: int = 1) -> None:
    """Another queue's traffic, once a second: it moves the event clock and nothing else."""
    for second in range(first, int(until) + 1):
        scenario.queued(second + 0.5, f"tick-{second}", queue="sales")


def long_queue_day() -> Scenario:
    s = Scenario()
    s.queued(0, "a")
    s.queued(1.5, "b")
    s.queued(2.0, "c")  # 3 waiting from 2.0 s on: pending at the 3 s evaluation
    s.event(20.2, "contact.answered", "a")  # 2 waiting: not > 2, but above clear 1
    s.event(25.7, "contact.answered", "b")  # 1 waiting: resolves at the 26 s evaluation
    ticks(s, 40)
    s.lines.sort(key=lambda line: line["ts"])
    return s
