"""The supervisors' WebSocket protocol (alerts.md), sans I/O: one `Session` per connection.

A session is fed what happens on its connection (the handshake's `Authorization` headers, a
received frame, the end of the 5 s wait, a transition, a view, the store's answers) and
answers with actions for its driver, `gateway.py`, to perform: send a message, close, look an
alert up, acknowledge it in the store, fetch a view. No I/O, no clock, no asyncio: every rule of
the protocol is tested without a server (tests/unit/test_session.py).

States: CONNECTING → SIGNED_IN (a valid bearer header), or → AWAITING_AUTH (no header) →
SIGNED_IN (a valid first `auth` message); → OPEN (the snapshot) → CLOSED. A refused handshake
closes with 4401 and nothing sent, whatever the client sent; once OPEN, nothing the client
sends closes it: a bad message is answered with an error.

`Mirror` is what a gateway's sessions share: the alerts firing now, for snapshots, and the
filter that lets a transition published again reach nobody twice.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from .agents_view import visible
from .tokens import Supervisor, Tokens

Message = dict[str, Any]

AUTH_SECONDS = 5.0  # alerts.md: a browser's first message must authenticate within this
UNAUTHORIZED = 4401
TOO_SLOW = 1013  # "try again later": the client reconnects and resyncs from a snapshot
TOPICS = ("kpis", "agents")  # what a client may subscribe to
ACKED, ALREADY, UNKNOWN = "acked", "already", "unknown"  # a store's answers to an ack


class State(enum.Enum):
    CONNECTING = "connecting"  # the handshake not looked at yet
    AWAITING_AUTH = "awaiting auth"  # no Authorization header: the first message must be auth
    SIGNED_IN = "signed in"  # the snapshot waits for the gateway's mirror to be loaded
    OPEN = "open"
    CLOSED = "closed"


class SessionError(RuntimeError):
    """The driver fed an input the session's state cannot take: a bug of the driver."""


# -- actions: what the driver is asked to do -------------------------------------------------
@dataclass(frozen=True)
class Send:
    message: Message
    published_at: int | None = None  # a transition's publication in the store, Unix ms
    bad_message: bool = False  # it answers a client message that breaks the protocol


@dataclass(frozen=True)
class Close:
    code: int
    reason: str


@dataclass(frozen=True)
class SignedIn:
    """The token is right: the sign-in was no guess (throttle). Feed `open` when the mirror is
    loaded."""
    supervisor: Supervisor


@dataclass(frozen=True)
class FindAlert:
    """Feed `alert_found` with the alert, from the mirror or the store, or None."""
    alert_id: str


@dataclass(frozen=True)
class StoreAck:
    """Acknowledge the alert in the store as `name`; a session's own: feed `ack_answered`."""
    alert_id: str
    name: str


@dataclass(frozen=True)
class FetchView:
    """Feed `tiles` ("kpis") or `agents` with the view as it is now."""
    topic: str


@dataclass(frozen=True)
class Forward:
    """Give the transition to every session (`Session.alert`): each keeps what it may see."""
    message: Message


Action = Send | Close | SignedIn | FindAlert | StoreAck | FetchView


class Session:
    def __init__(self, tokens: Tokens) -> None:
        self.tokens = tokens
        self.state = State.CONNECTING
        self.supervisor: Supervisor | None = None
        self.topics: frozenset[str] = frozenset()  # the views subscribed to
        self._agents_sent: list[Message] | None = None  # a view is sent when it changes

    # -- the handshake -------------------------------------------------------------------------
    def connect(self, authorization: list[str], throttled: bool = False) -> list[Action]:
        """The handshake's `Authorization` headers. `throttled`: too many wrong tokens came
        from the client's address, so not even a right one is looked at."""
        self._expect(State.CONNECTING)
        if throttled:
            return self._close(UNAUTHORIZED, "too many wrong tokens, try again later")
        if len(authorization) > 1:
            return self._refuse()  # which one would count? Neither.
        if not authorization:
            self.state = State.AWAITING_AUTH
            return []
        scheme, _, token = authorization[0].partition(" ")  # wrong: refused, no fallback
        return self._sign_in(token.strip() if scheme.lower() == "bearer" else None)

    def timed_out(self) -> list[Action]:
        """AUTH_SECONDS went by without a first message."""
        return self.handshake_failed()

    def handshake_failed(self) -> list[Action]:
        """The handshake could not be read to its end (the connection went, a bug)."""
        if self.state in (State.CONNECTING, State.AWAITING_AUTH):
            return self._refuse()
        return []

    def open(self, firing: Iterable[Message]) -> list[Send]:
        """The snapshot of the alerts firing now (the mirror's); from then on the session must
        be given every later transition, and none before."""
        self._expect(State.SIGNED_IN)
        self.state = State.OPEN
        supervisor = self._signed_in()
        return [Send({"type": "snapshot", "user": supervisor.name,
                      "queues": supervisor.listed_queues(),
                      "alerts": [m for m in firing if supervisor.sees(m["labels"])]})]

    # -- what the client sends -----------------------------------------------------------------
    def receive(self, raw: str | bytes) -> list[Action]:
        """A text or binary frame from the client."""
        if self.state is State.AWAITING_AUTH:
            first = _json_object(raw) or {}
            return self._sign_in(first.get("token") if first.get("type") == "auth" else None)
        if self.state is not State.OPEN:
            return []
        message = _json_object(raw)
        if message is None:
            return [_bad("not a JSON object")]
        kind = message.get("type")
        if kind == "ping":
            return [Send({"type": "pong"})]
        if kind == "ack":
            alert_id = message.get("id")
            return [FindAlert(alert_id)] if isinstance(alert_id, str) else [
                _bad("ack needs the alert's id")]
        if kind == "subscribe":
            return self._subscribe(message)
        if kind == "auth":
            return []  # signed in already
        named = repr(kind) if isinstance(kind, str) and len(kind) <= 40 else "(not shown)"
        return [_bad(f"unknown message type {named}")]

    def internal_error(self) -> list[Send]:
        """Handling the client's last message failed on a bug: it costs that message, not the
        connection."""
        return [Send(_error("the message could not be handled"))]

    def _subscribe(self, message: Message) -> list[Action]:
        """A subscription replaces the previous one: `topics` (alerts.md 1.1: "agents"; the page
        also asks for "kpis"), or the page's older `"kpis": true`."""
        topics = message.get("topics", [])
        if not isinstance(topics, list) or not all(topic in TOPICS for topic in topics):
            return [_bad(f"topics must be a list of {', '.join(TOPICS)}")]
        wanted = set(topics) | ({"kpis"} if message.get("kpis") else set())
        self.topics, self._agents_sent = frozenset(wanted), None
        return [FetchView(topic) for topic in TOPICS if topic in wanted]  # at once, not in 1 s

    # -- an acknowledgement, through the store -------------------------------------------------
    def alert_found(self, alert_id: str, alert: Message | None) -> list[Action]:
        if alert is None or not self._signed_in().sees(alert["labels"]):
            # Out of scope reads as unknown: a token learns nothing of other queues.
            return [Send(_error("no such alert", alert_id))]
        return [StoreAck(alert_id, self._signed_in().name)]

    def ack_answered(self, alert_id: str, outcome: str, by: str) -> list[Send]:
        """The store's answer to `StoreAck`: ACKED comes back to every client that may see the
        alert as a transition with `acked_by` (`alert`), not as an answer."""
        if outcome == ACKED:
            return []
        if outcome == ALREADY:
            return [Send(_error(f"already acknowledged by {by}", alert_id))]
        return [Send(_error("no such alert", alert_id))]

    def store_failed(self, alert_id: str, reason: str) -> list[Send]:
        """The store could not be reached to find or acknowledge the alert."""
        return [Send(_error(f"not acknowledged: {reason}", alert_id))]

    # -- what the gateway pushes -----------------------------------------------------------------
    def alert(self, message: Message, published_at: int | None = None) -> list[Send]:
        """A transition (or an acknowledgement) the mirror forwards: only the token's queues."""
        if self.state is not State.OPEN or not self._signed_in().sees(message["labels"]):
            return []
        return [Send(message, published_at)]

    def tiles(self, window: str | None, tiles: Iterable[Message]) -> list[Send]:
        """Every queue's fresh KPI tiles, in order: the token's, if subscribed to "kpis"."""
        if self.state is not State.OPEN or "kpis" not in self.topics:
            return []
        supervisor = self._signed_in()
        mine = [{key: value for key, value in tile.items() if key not in ("at", "window")}
                for tile in tiles if supervisor.sees({"queue": tile["queue"]})]
        return [Send({"type": "kpis", "window": window, "tiles": mine})]

    def agents(self, window: str, agents: Iterable[Message]) -> list[Send]:
        """Every agent (alerts.md 1.1): those of the token's queues, if subscribed to "agents"
        and unlike what was sent last."""
        if self.state is not State.OPEN or "agents" not in self.topics:
            return []
        mine = visible(agents, self._signed_in())
        if mine == self._agents_sent:
            return []
        self._agents_sent = mine
        return [Send({"type": "agents", "window": window, "agents": mine})]

    # -- the end ---------------------------------------------------------------------------------
    def overflowed(self) -> list[Close]:
        """The client fell the driver's queue behind: closed rather than silently missing
        alerts. Nothing if it was closed already."""
        return self._close(TOO_SLOW, "too slow, reconnect") if self.state is State.OPEN else []

    def connection_closed(self) -> None:
        self.state = State.CLOSED

    # -- helpers ---------------------------------------------------------------------------------
    def _sign_in(self, token: object) -> list[Action]:
        supervisor = self.tokens.find(token)
        if supervisor is None:
            return self._refuse()
        self.supervisor, self.state = supervisor, State.SIGNED_IN
        return [SignedIn(supervisor)]

    def _refuse(self) -> list[Close]:
        return self._close(UNAUTHORIZED, "unauthorized")

    def _close(self, code: int, reason: str) -> list[Close]:
        self.state = State.CLOSED
        return [Close(code, reason)]

    def _expect(self, state: State) -> None:
        if self.state is not state:
            raise SessionError(f"the session is {self.state.value}, not {state.value}")

    def _signed_in(self) -> Supervisor:
        if self.supervisor is None:
            raise SessionError("the session has not signed in")
        return self.supervisor


class Mirror:
    """The alerts firing now, as one gateway follows them from the store. A transition is
    forwarded only if it changes the mirror, so one published again (a worker re-publishing
    after a crash, or after Redis lost its data) reaches nobody twice."""

    def __init__(self) -> None:
        self.firing: dict[str, Message] = {}

    def load(self, firing: dict[str, Message]) -> None:
        self.firing = firing

    def apply(self, message: Message) -> list[StoreAck | Forward]:
        """A transition read from the store: what to forward, and an ack to put back."""
        actions: list[StoreAck | Forward] = []
        known = self.firing.get(message["id"])
        if known is not None and known["acked_by"] and not message["acked_by"]:
            # Redis lost its data, the ack with it; a worker re-published the alert. Every
            # gateway that knew it puts it back: the first wins, the others are refused.
            actions.append(StoreAck(message["id"], known["acked_by"]))
            message = {**message, "acked_by": known["acked_by"]}
        if message["status"] == "firing":
            if known is not None and known["acked_by"] == message["acked_by"]:
                return actions  # told already: re-published, or in the mirror since loaded
            self.firing[message["id"]] = message
        elif known is None and message["acked_by"] is None:
            return actions  # the end of an alert this gateway never had: told already, or never
        else:
            self.firing.pop(message["id"], None)
        return [*actions, Forward(message)]


def _json_object(raw: str | bytes) -> Message | None:
    try:
        message = orjson.loads(raw)  # a depth limit, unlike json: deep nesting is an error
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


def _bad(text: str) -> Send:
    return Send(_error(text), bad_message=True)


def _error(text: str, alert_id: str | None = None) -> Message:
    message: Message = {"type": "error", "error": text}
    if alert_id is not None:
        message["id"] = alert_id
    return message
