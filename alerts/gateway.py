"""`ccmon gateway`: supervisors' WebSocket endpoint (alerts.md) and the supervisor page.

The driver of the protocol: `session.py` decides (a `Session` per connection, the `Mirror` of
the alerts firing now); this module feeds it what arrives and performs what it asks on the
sockets and the store. Any number of gateways can run: each reads the whole transition stream
(Redis), so a supervisor gets every alert of its queues once, whichever gateway it is on.

A client is fed through its own bounded queue by its own task, so a slow client never delays
the others; one that falls `CLIENT_QUEUE` messages behind is disconnected (1013) rather than
silently missing alerts, and gets a fresh snapshot when it reconnects. When Redis loses its
data, the workers re-publish what is firing; the mirror keeps clients from getting it twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
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

from .agents_view import merge
from .health import StoreHealth
from .session import (
    AUTH_SECONDS,
    Action,
    Close,
    FetchView,
    FindAlert,
    Mirror,
    Send,
    Session,
    SignedIn,
    State,
    StoreAck,
)
from .store import AlertStore, Message, StoreUnavailable, now_ms
from .throttle import AuthThrottle, address_key
from .tokens import Supervisor, Tokens
from .web import TEXT, answer, page, response

log = logging.getLogger("ccmon.gateway")

CLIENT_QUEUE = 1000  # messages a client may fall behind before it is disconnected
MAX_MESSAGE = 64 * 1024  # clients only send small control messages
FOLLOW_BLOCK_MS = 2000
TILES_SECONDS = 1.0
TILE_MAX_AGE_MS = 30_000  # tiles of a worker that stopped writing them are not shown


@dataclass(eq=False)
class Client:
    connection: ServerConnection
    session: Session
    name: str  # the supervisor's, for the log
    outbox: asyncio.Queue[Send] = field(default_factory=lambda: asyncio.Queue(CLIENT_QUEUE))


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
                                value=len(self.gateway.mirror.firing))


class Gateway:
    def __init__(self, store: AlertStore, tokens: Tokens, agents_window: str = "15m") -> None:
        self.store = store
        self.tokens = tokens
        self.agents_window = agents_window
        self._window_missing = False  # said once: the workers do not export agents_window
        self.clients: set[Client] = set()
        self.mirror = Mirror()
        self.cursor: str | None = None
        self.generation = ""
        self.ready = asyncio.Event()  # the mirror is loaded: clients can get a snapshot
        self.health = StoreHealth()
        self.throttle = AuthThrottle()
        self.metrics = GatewayMetrics(self)
        self._tasks: list[asyncio.Task] = []
        self._background: set[asyncio.Task] = set()
        self._server: Server | None = None
        self._views = {"kpis": self._send_tiles, "agents": self._send_agents}  # by topic

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

    # -- one client: the session says what to do, the driver does it -----------------------------
    async def _handle(self, connection: ServerConnection) -> None:
        session = Session(self.tokens)
        supervisor = await self._sign_in(connection, session)
        if supervisor is None:
            return
        await self.ready.wait()
        client = Client(connection, session, supervisor.name)
        # The snapshot and the registration happen without an await in between: the client
        # gets every transition after its snapshot, and none twice.
        self._deliver(client, session.open(self.mirror.firing.values()))
        self.clients.add(client)
        sender = asyncio.create_task(self._send_loop(client))
        try:
            async for raw in connection:
                try:
                    await self._perform(client, session.receive(raw))
                except Exception:  # a bug must cost one message, not the connection
                    log.exception("a message from %s failed", client.name)
                    self._deliver(client, session.internal_error())
        except ConnectionClosed:
            pass
        finally:
            session.connection_closed()
            self.clients.discard(client)
            sender.cancel()

    async def _sign_in(self, connection: ServerConnection,
                       session: Session) -> Supervisor | None:
        """The handshake through the session; None: refused (4401), whatever was sent."""
        peer = connection.remote_address
        address = address_key(str(peer[0]) if peer else "")
        throttled = not self.throttle.take(address, time.monotonic())
        try:
            request = connection.request
            headers = request.headers.get_all("Authorization") if request is not None else []
            actions = session.connect(headers, throttled)
            if session.state is State.AWAITING_AUTH:
                actions = session.receive(await asyncio.wait_for(connection.recv(),
                                                                 AUTH_SECONDS))
        except TimeoutError:
            actions = session.timed_out()
        except ConnectionClosed:
            actions = session.handshake_failed()
        except Exception:
            log.exception("authentication failed on an unexpected error")
            actions = session.handshake_failed()
        supervisor = None
        for action in actions:
            if isinstance(action, SignedIn):
                supervisor = action.supervisor
                self.throttle.give_back(address, time.monotonic())
            elif isinstance(action, Close):
                if throttled:
                    self.metrics.throttled.inc()
                self.metrics.refused.inc()
                await connection.close(action.code, action.reason)
        return supervisor

    async def _perform(self, client: Client, actions: Sequence[Action]) -> None:
        """What the session asks for, feeding it the answers (which may ask for more)."""
        for action in actions:
            match action:
                case Send():
                    self._enqueue(client, action)
                case FindAlert() | StoreAck():
                    await self._perform(client, await self._ack_step(client.session, action))
                case FetchView(topic=topic):
                    with contextlib.suppress(StoreUnavailable):  # else the next push brings it
                        await self._views[topic]([client])

    async def _ack_step(self, session: Session,
                        action: FindAlert | StoreAck) -> Sequence[Action]:
        try:
            if isinstance(action, FindAlert):
                alert = self.mirror.firing.get(action.alert_id)
                if alert is None:
                    alert = await self.store.get(action.alert_id)
                return session.alert_found(action.alert_id, alert)
            outcome, by = await self.store.ack(action.alert_id, action.name)
            return session.ack_answered(action.alert_id, outcome, by)
        except StoreUnavailable as exc:
            return session.store_failed(action.alert_id, str(exc))

    async def _send_loop(self, client: Client) -> None:
        connection, outbox = client.connection, client.outbox
        try:
            while True:
                send = await outbox.get()
                await connection.send(orjson.dumps(send.message).decode())
                if send.published_at is not None:
                    self.metrics.delivery.observe(max(0, now_ms() - send.published_at) / 1000)
                    self.metrics.sent.inc()
        except ConnectionClosed:
            pass

    def _deliver(self, client: Client, sends: Iterable[Send]) -> None:
        for send in sends:
            self._enqueue(client, send)

    def _enqueue(self, client: Client, send: Send) -> None:
        if send.bad_message:
            self.metrics.bad_messages.inc()
        try:
            client.outbox.put_nowait(send)
        except asyncio.QueueFull:
            for close in client.session.overflowed():  # nothing if it was closed already
                self.clients.discard(client)
                self.metrics.dropped.inc()
                log.warning("%s fell %d messages behind: disconnected", client.name,
                            CLIENT_QUEUE)
                self._in_background(client.connection.close(close.code, close.reason))

    def _in_background(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)  # kept until done: the loop holds tasks weakly
        task.add_done_callback(self._background.discard)

    # -- the store -------------------------------------------------------------------------
    async def _follow(self) -> None:
        """Mirror the firing alerts and forward every transition, resuming after store
        outages from the cursor (the store keeps the entries), or from the start of a new
        stream if the store lost its data."""
        while True:
            try:
                if self.cursor is None:
                    firing, self.cursor, self.generation = await self.store.load()
                    self.mirror.load(firing)
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
        for action in self.mirror.apply(message):
            if isinstance(action, StoreAck):  # an ack Redis lost: put back
                self._in_background(self._restore_ack(action))
            else:
                for client in list(self.clients):
                    self._deliver(client, client.session.alert(action.message, published_at))

    async def _restore_ack(self, ack: StoreAck) -> None:
        # Every gateway that knew it does this; the first one wins, the others are refused.
        with contextlib.suppress(StoreUnavailable):
            await self.store.ack(ack.alert_id, ack.name)

    async def _push_views(self) -> None:
        """Tiles and agents, once a second, to the clients subscribed to them."""
        while True:
            await asyncio.sleep(TILES_SECONDS)  # the page's refresh pace
            for topic, send in self._views.items():
                subscribed = [client for client in self.clients
                              if topic in client.session.topics]
                if subscribed:
                    with contextlib.suppress(StoreUnavailable):
                        await send(subscribed)

    async def _send_tiles(self, clients: list[Client]) -> None:
        oldest = now_ms() - TILE_MAX_AGE_MS
        tiles = [tile for tile in await self.store.tiles() if tile.get("at", 0) >= oldest]
        tiles.sort(key=lambda tile: (tile["queue"], tile["channel"]))
        window = tiles[0]["window"] if tiles else None
        for client in clients:
            self._deliver(client, client.session.tiles(window, tiles))

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
            self._deliver(client, client.session.agents(self.agents_window, agents))
