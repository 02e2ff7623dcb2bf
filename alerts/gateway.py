"""`ccmon gateway`: supervisors' WebSocket endpoint (alerts.md) and the supervisor page.

One gateway keeps a mirror of the alerts firing now, follows every transition from the store
(Redis) and forwards each one to the clients allowed to see it. Any number of gateways can
run: each reads the whole transition stream, so a supervisor gets every alert of its queues
once, whichever gateway it is connected to.

A client is fed through its own bounded queue by its own task, so a slow client never delays
the others; one that falls `CLIENT_QUEUE` messages behind is disconnected (1013) rather than
silently missing alerts, and gets a fresh snapshot when it reconnects.

When Redis loses its data, the workers re-publish what is firing: a gateway forwards only what
changes its mirror, so its clients get nothing twice, and it puts back the acknowledgements
it knew of. Nothing a client sends, in the handshake or after it, ends its connection with an
error: a refused handshake closes with 4401, a bad message is answered with an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from http import HTTPStatus
from operator import attrgetter
from typing import Any

import orjson
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from .agents_view import merge, visible
from .health import StoreHealth
from .store import ACKED, ALREADY, AlertStore, Message, StoreUnavailable, now_ms
from .throttle import AuthThrottle, address_key
from .tokens import Supervisor, Tokens
from .web import TEXT, answer, page, response

log = logging.getLogger("ccmon.gateway")

AUTH_SECONDS = 5.0  # alerts.md: a browser's first message must authenticate within this
UNAUTHORIZED = 4401
TOO_SLOW = 1013  # "try again later": the client reconnects and resyncs from a snapshot
CLIENT_QUEUE = 1000  # messages a client may fall behind before it is disconnected
MAX_MESSAGE = 64 * 1024  # clients only send small control messages
FOLLOW_BLOCK_MS = 2000
TILES_SECONDS = 1.0
TILE_MAX_AGE_MS = 30_000  # tiles of a worker that stopped writing them are not shown
TOPICS = ("kpis", "agents")  # what a client may subscribe to

@dataclass(eq=False)
class Client:
    connection: ServerConnection
    supervisor: Supervisor
    outbox: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(CLIENT_QUEUE))
    kpis: bool = False
    agents: bool = False
    agents_sent: list | None = None  # the agents last sent: a view is sent when it changes


class GatewayMetrics:
    """The gateway's own registry: client count at scrape time, delivery latency."""

    def __init__(self, gateway: Gateway) -> None:
        disable_created_metrics()  # no `_created` series: they only double the scrape
        self.gateway = gateway
        self.registry = registry = CollectorRegistry(auto_describe=True)
        registry.register(self)
        self.delivery = Histogram(
            "ccmon_alert_delivery_seconds", "From a transition's publication in the store to "
            "its message written to a client", registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.sent = Counter("ccmon_gateway_alert_messages", "Alert messages sent to clients",
                            registry=registry)
        self.refused = Counter("ccmon_gateway_auth_failures", "Connections closed with 4401",
                               registry=registry)
        self.throttled = Counter(
            "ccmon_gateway_auth_throttled", "Connections closed with 4401 without looking at "
            "their token: too many wrong ones from their address", registry=registry)
        self.bad_messages = Counter("ccmon_gateway_bad_messages",
                                    "Client messages answered with an error", registry=registry)
        registry.register(gateway.health)
        self.dropped = Counter("ccmon_gateway_slow_clients_dropped",
                               "Clients disconnected for falling behind", registry=registry)

    def describe(self) -> list:
        return []

    def collect(self):
        yield GaugeMetricFamily("ccmon_gateway_clients", "Authenticated WebSocket clients now",
                                value=len(self.gateway.clients))
        yield GaugeMetricFamily("ccmon_gateway_firing_alerts",
                                "Alerts firing now, as this gateway's mirror has them",
                                value=len(self.gateway.firing))


class Gateway:
    def __init__(self, store: AlertStore, tokens: Tokens, agents_window: str = "15m") -> None:
        self.store = store
        self.tokens = tokens
        self.agents_window = agents_window
        self._window_missing = False  # said once: the workers do not export agents_window
        self.clients: set[Client] = set()
        self.firing: dict[str, Message] = {}
        self.cursor: str | None = None
        self.generation = ""
        self.ready = asyncio.Event()  # the mirror is loaded: clients can get a snapshot
        self.health = StoreHealth()
        self.throttle = AuthThrottle()
        self.metrics = GatewayMetrics(self)
        self._tasks: list[asyncio.Task] = []
        self._background: set[asyncio.Task] = set()
        self._server: Server | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self, host: str, port: int) -> None:
        self._server = await serve(
            self._handle, host, port, process_request=self._http, max_size=MAX_MESSAGE,
            ping_interval=20, ping_timeout=20, server_header="ccmon",
            # Messages are small; per-connection deflate would cost CPU and ~300 KB per client.
            compression=None)
        self._tasks = [asyncio.create_task(self._follow(), name="follow"),
                       asyncio.create_task(self._push_views(), name="views")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    # -- HTTP: the page, /metrics, /healthz -------------------------------------------------
    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        return answer(request, self._http_get)

    def _http_get(self, path: str) -> Response:
        if path == "/metrics":
            return response(HTTPStatus.OK, generate_latest(self.metrics.registry),
                            "text/plain; version=0.0.4; charset=utf-8")
        if path == "/healthz":
            if not self.ready.is_set():
                return response(HTTPStatus.SERVICE_UNAVAILABLE,
                                b"waiting for the alert store\n", TEXT)
            return response(*self.health.healthz(), TEXT)
        return page(path)

    # -- one client ------------------------------------------------------------------------
    async def _handle(self, connection: ServerConnection) -> None:
        peer = connection.remote_address
        address = address_key(str(peer[0]) if peer else "")
        if not self.throttle.take(address, time.monotonic()):
            self.metrics.throttled.inc()
            await self._refuse(connection, "too many wrong tokens, try again later")
            return
        supervisor = await self._authenticate(connection)
        if supervisor is None:
            await self._refuse(connection, "unauthorized")
            return
        self.throttle.give_back(address, time.monotonic())
        await self.ready.wait()
        client = Client(connection, supervisor)
        # The snapshot and the registration happen without an await in between: the client
        # gets every transition after its snapshot, and none twice.
        client.outbox.put_nowait((None, {
            "type": "snapshot", "user": supervisor.name, "queues": supervisor.listed_queues(),
            "alerts": [m for m in self.firing.values() if supervisor.sees(m["labels"])]}))
        self.clients.add(client)
        sender = asyncio.create_task(self._send_loop(client))
        try:
            async for raw in connection:
                try:
                    await self._on_message(client, raw)
                except Exception:  # a bug must cost one message, not the connection
                    log.exception("a message from %s failed", supervisor.name)
                    self._enqueue(client, (None, _error("the message could not be handled")))
        except ConnectionClosed:
            pass
        finally:
            self.clients.discard(client)
            sender.cancel()

    async def _refuse(self, connection: ServerConnection, reason: str) -> None:
        self.metrics.refused.inc()
        await connection.close(UNAUTHORIZED, reason)

    async def _authenticate(self, connection: ServerConnection) -> Supervisor | None:
        """The supervisor of the token offered, or None; never raises, whatever was sent."""
        try:
            return await self._offered_token(connection)
        except Exception:
            log.exception("authentication failed on an unexpected error")
            return None

    async def _offered_token(self, connection: ServerConnection) -> Supervisor | None:
        request = connection.request
        headers = request.headers.get_all("Authorization") if request is not None else []
        if len(headers) > 1:
            return None  # which one would count? Neither.
        if headers:
            scheme, _, token = headers[0].partition(" ")
            return self.tokens.find(token.strip()) if scheme.lower() == "bearer" else None
        try:
            raw = await asyncio.wait_for(connection.recv(), AUTH_SECONDS)
            message = orjson.loads(raw)  # a depth limit, unlike json: deep nesting is an error
        except (TimeoutError, ConnectionClosed, ValueError):
            return None
        if not isinstance(message, dict) or message.get("type") != "auth":
            return None
        return self.tokens.find(message.get("token"))

    async def _send_loop(self, client: Client) -> None:
        connection, outbox = client.connection, client.outbox
        try:
            while True:
                published_at, message = await outbox.get()
                await connection.send(orjson.dumps(message).decode())
                if published_at is not None:
                    self.metrics.delivery.observe(max(0, now_ms() - published_at) / 1000)
                    self.metrics.sent.inc()
        except ConnectionClosed:
            pass

    def _enqueue(self, client: Client, item: tuple[int | None, Message]) -> None:
        try:
            client.outbox.put_nowait(item)
        except asyncio.QueueFull:
            self.clients.discard(client)
            self.metrics.dropped.inc()
            log.warning("%s fell %d messages behind: disconnected", client.supervisor.name,
                        CLIENT_QUEUE)
            self._in_background(client.connection.close(TOO_SLOW, "too slow, reconnect"))

    def _in_background(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)  # kept until done: the loop holds tasks weakly
        task.add_done_callback(self._background.discard)

    async def _on_message(self, client: Client, raw: str | bytes) -> None:
        try:
            message = orjson.loads(raw)  # a depth limit, unlike json: deep nesting is an error
        except ValueError:
            message = None
        if not isinstance(message, dict):
            self.metrics.bad_messages.inc()
            self._enqueue(client, (None, _error("not a JSON object")))
            return
        kind = message.get("type")
        if kind == "ping":
            self._enqueue(client, (None, {"type": "pong"}))
        elif kind == "ack":
            await self._ack(client, message.get("id"))
        elif kind == "subscribe":
            await self._subscribe(client, message)
        elif kind == "auth":
            pass  # already authenticated
        else:
            self.metrics.bad_messages.inc()
            named = repr(kind) if isinstance(kind, str) and len(kind) <= 40 else "(not shown)"
            self._enqueue(client, (None, _error(f"unknown message type {named}")))

    async def _subscribe(self, client: Client, message: Message) -> None:
        """A subscription replaces the previous one: `topics` (alerts.md 1.1: "agents"; the
        page also asks for "kpis"), or the page's older `"kpis": true`."""
        topics = message.get("topics", [])
        if not isinstance(topics, list) or not all(topic in TOPICS for topic in topics):
            self.metrics.bad_messages.inc()
            self._enqueue(client, (None, _error(f"topics must be a list of {', '.join(TOPICS)}")))
            return
        client.kpis = "kpis" in topics or bool(message.get("kpis"))
        client.agents, client.agents_sent = "agents" in topics, None
        with contextlib.suppress(StoreUnavailable):  # else the next push brings them
            if client.kpis:
                await self._send_tiles([client])
            if client.agents:
                await self._send_agents([client])

    async def _ack(self, client: Client, alert_id: Any) -> None:
        if not isinstance(alert_id, str):
            self.metrics.bad_messages.inc()
            self._enqueue(client, (None, _error("ack needs the alert's id")))
            return
        alert = self.firing.get(alert_id)
        try:
            if alert is None:
                alert = await self.store.get(alert_id)
            if alert is None or not client.supervisor.sees(alert["labels"]):
                # Out of scope reads as unknown: a token learns nothing of other queues.
                self._enqueue(client, (None, _error("no such alert", alert_id)))
                return
            outcome, by = await self.store.ack(alert_id, client.supervisor.name)
        except StoreUnavailable as exc:
            self._enqueue(client, (None, _error(f"not acknowledged: {exc}", alert_id)))
            return
        if outcome == ALREADY:
            self._enqueue(client, (None, _error(f"already acknowledged by {by}", alert_id)))
        elif outcome != ACKED:
            self._enqueue(client, (None, _error("no such alert", alert_id)))
        # ACKED: the acknowledgement comes back to every client through the stream.

    # -- the store -------------------------------------------------------------------------
    async def _follow(self) -> None:
        """Mirror the firing alerts and forward every transition, resuming after store
        outages from the cursor (the store keeps the entries), or from the start of a new
        stream if the store lost its data."""
        while True:
            try:
                if self.cursor is None:
                    self.firing, self.cursor, self.generation = await self.store.load()
                    self._answered()
                    self.ready.set()
                generation, cursor, entries = await self.store.follow(
                    self.generation, self.cursor, FOLLOW_BLOCK_MS)
            except StoreUnavailable as exc:
                if self.health.failed():
                    log.error("%s; retrying", exc)
                await asyncio.sleep(1.0)  # retry pace, not a synchronisation
                continue
            self._answered()
            if generation != self.generation:
                log.warning("the alert store lost its data: following its new stream; the "
                            "workers publish again what is firing")
            self.generation, self.cursor = generation, cursor
            for published_at, message in entries:
                self._forward(published_at, message)

    def _answered(self) -> None:
        if self.health.answered():
            log.warning("alert store reachable again")

    def _forward(self, published_at: int, message: Message) -> None:
        known = self.firing.get(message["id"])
        if known is not None and known["acked_by"] and not message["acked_by"]:
            # Redis lost its data, the ack with it; a worker re-published the alert.
            self._in_background(self._restore_ack(message["id"], known["acked_by"]))
            message = {**message, "acked_by": known["acked_by"]}
        if message["status"] == "firing":
            if known is not None and known["acked_by"] == message["acked_by"]:
                return  # told already: re-published, or in the mirror since it was loaded
            self.firing[message["id"]] = message
        elif known is None and message["acked_by"] is None:
            return  # the end of an alert this gateway never had: told already, or never
        else:
            self.firing.pop(message["id"], None)
        for client in list(self.clients):
            if client.supervisor.sees(message["labels"]):
                self._enqueue(client, (published_at, message))

    async def _restore_ack(self, alert_id: str, name: str) -> None:
        # Every gateway that knew it does this; the first one wins, the others are refused.
        with contextlib.suppress(StoreUnavailable):
            await self.store.ack(alert_id, name)

    async def _push_views(self) -> None:
        """Tiles and agents, once a second, to the clients subscribed to them."""
        while True:
            await asyncio.sleep(TILES_SECONDS)  # the page's refresh pace
            for wanted, send in ((attrgetter("kpis"), self._send_tiles),
                                 (attrgetter("agents"), self._send_agents)):
                subscribed = [client for client in self.clients if wanted(client)]
                if subscribed:
                    with contextlib.suppress(StoreUnavailable):
                        await send(subscribed)

    async def _send_tiles(self, clients: list[Client]) -> None:
        oldest = now_ms() - TILE_MAX_AGE_MS
        tiles = [tile for tile in await self.store.tiles() if tile.get("at", 0) >= oldest]
        tiles.sort(key=lambda tile: (tile["queue"], tile["channel"]))
        window = tiles[0]["window"] if tiles else None
        for client in clients:
            mine = [_public_tile(tile) for tile in tiles
                    if client.supervisor.sees({"queue": tile["queue"]})]
            self._enqueue(client, (None, {"type": "kpis", "window": window, "tiles": mine}))

    async def _send_agents(self, clients: list[Client]) -> None:
        """Each client's agents (alerts.md 1.1), when they differ from what it was sent."""
        oldest = now_ms() - TILE_MAX_AGE_MS
        agents = merge((part for part in await self.store.agents() if part["at"] >= oldest),
                       self.agents_window)
        if agents is None:
            if not self._window_missing:
                self._window_missing = True
                log.warning("the agents window %s (--agents-window) is not one of the "
                            "workers' windows (CCMON_WINDOWS): no agents are sent",
                            self.agents_window)
            return
        for client in clients:
            mine = visible(agents, client.supervisor)
            if mine != client.agents_sent:
                client.agents_sent = mine
                self._enqueue(client, (None, {"type": "agents", "window": self.agents_window,
                                              "agents": mine}))


def _public_tile(tile: Message) -> Message:
    return {key: value for key, value in tile.items() if key not in ("at", "window")}


def _error(text: str, alert_id: str | None = None) -> Message:
    message: Message = {"type": "error", "error": text}
    if alert_id is not None:
        message["id"] = alert_id
    return message

