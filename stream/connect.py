"""Amazon Connect's contact events and agent event stream -> v1 events (adapters.md), pure.

One Kafka topic carries both, as JSON objects: EventBridge's "Amazon Connect Contact Event"
envelopes (`detail-type`, `time`, `detail.eventType`, …) and the agent event stream's records
(`EventType`, `EventTimestamp`, `AgentARN`, `CurrentAgentSnapshot`). `Connect` is a state
machine fed the messages in the order they come; its state (open contacts, queue names,
agents' last states) is JSON for the position file. Event ids come from the message's bytes.

Decisions (docs/adapters.md has the table):
- a v1 contact is the first Connect contact; a contact created by a transfer
  (`initiationMethod` TRANSFER or QUEUE_TRANSFER, `previousContactId`) continues it, and its
  QUEUED is a `contact.transferred`. The original's DISCONNECTED while talking is held for
  10 s of event time: a transfer initiated within them continues the contact, else it ended;
- a QUEUED of a waiting contact to another queue is a `contact.transferred` while waiting;
- holds come from the agent snapshots' contact states (CONNECTED <-> CONNECTED_ONHOLD), at
  the agent event's time, and only while the contact is in conversation for us;
- an agent is `busy` with a contact CONNECTED or on hold, `acw` with one ENDED (after-contact
  work), else `offline` (status type OFFLINE, or LOGOUT), `available` (ROUTABLE), or `away`
  (any other status: breaks, lunch…); its queues are its routing profile's inbound queues.
"""

from __future__ import annotations

from typing import Any

import orjson

from .adapter import Event, Outcome, digest, fits, malformed, skipped
from .events import BadEvent, parse_ts

CONTACT_EVENT = "Amazon Connect Contact Event"
CHANNELS = {"VOICE": "voice", "CHAT": "chat"}
TRANSFER_SECONDS = 10
TRANSFER_METHODS = frozenset(("TRANSFER", "QUEUE_TRANSFER"))
AGENT_EVENTS = frozenset(("STATE_CHANGE", "HEART_BEAT", "LOGIN", "LOGOUT"))
# Contact events that carry no v1 state: skipped, counted under their own name.
NO_STATE = frozenset((
    "CONNECTED_TO_SYSTEM", "CONTACT_DATA_UPDATED", "COMPLETED", "AMD_DISABLED", "AMD_ERROR",
    "AMD_DETECTED", "CONTACT_STATUS_UPDATED",
))
TALKING_STATES = frozenset(("CONNECTED", "CONNECTED_ONHOLD"))


class Connect:
    def __init__(self, state: dict[str, Any] | None = None) -> None:
        state = state or {}
        self.queues: dict[str, str] = state.get("queues", {})  # queue id -> name
        # v1 contact id -> {"phase": new|waiting|talking|leaving|transferring, "queue",
        #   "channel", "held", "ids": [Connect contact ids], and while leaving: "at", "line"}
        self.contacts: dict[str, dict[str, Any]] = state.get("contacts", {})
        self.alias: dict[str, str] = state.get("alias", {})  # Connect contact id -> v1 id
        self.agents: dict[str, list] = state.get("agents", {})  # agent -> [state, queues] sent
        self.clock: float = state.get("clock", 0)

    def to_json(self) -> dict[str, Any]:
        return {"queues": self.queues, "contacts": self.contacts, "alias": self.alias,
                "agents": self.agents, "clock": self.clock}

    def feed(self, value: bytes) -> Outcome:
        try:
            message = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            return malformed("invalid_json", str(exc)[:200])
        if not isinstance(message, dict):
            return malformed("not_object", f"a JSON {type(message).__name__}, not an object")
        try:
            if "detail-type" in message:
                return self._contact_message(message, digest(value))
            if "EventType" in message:
                return self._agent_message(message, digest(value))
        except BadField as exc:
            return malformed("bad_field", str(exc))
        return skipped("unknown_message")

    # -- contact events ----------------------------------------------------------------------

    def _contact_message(self, message: dict, line: str) -> Outcome:
        if message["detail-type"] != CONTACT_EVENT:
            return skipped("detail_type")
        detail = _object(message, "detail")
        kind = _text(detail, "eventType")
        contact = _text(detail, "contactId")
        ts = _ts(detail, _TS_FIELDS.get(kind), message)
        channel = CHANNELS.get(_text(detail, "channel"))
        outcome = Outcome(events=self._settle(ts))
        if channel is None:
            outcome.skipped = "channel"
        elif kind in NO_STATE:
            outcome.skipped = kind.lower()
        elif kind not in _HANDLERS:
            outcome.skipped = "unknown_event"
        else:
            done = _HANDLERS[kind](self, detail, contact, channel, ts, line)
            outcome.events += done.events
            outcome.skipped = done.skipped
        self.clock = max(self.clock, ts)
        return outcome

    def _initiated(self, detail: dict, contact: str, channel: str, ts: float,
                   line: str) -> Outcome:
        if contact in self.alias:
            return skipped("out_of_order")
        previous = detail.get("previousContactId")
        origin = self.alias.get(previous) if isinstance(previous, str) else None
        record = self.contacts.get(origin) if origin else None
        if _str(detail.get("initiationMethod")) in TRANSFER_METHODS and record is not None \
                and record["phase"] in ("talking", "leaving"):
            record["phase"] = "transferring"  # its QUEUED will say where
            self.alias[contact] = origin
            record["ids"].append(contact)
            if record.get("line") is None:  # the original's DISCONNECTED is still to come
                self.alias[previous] = ""
            record.pop("line", None)
            return Outcome()
        if not fits(contact):
            raise BadField(f"contactId of {len(contact)} characters")
        self.alias[contact] = contact
        self.contacts[contact] = {"phase": "new", "queue": None, "channel": channel,
                                  "held": False, "ids": [contact]}
        return Outcome()

    def _queued(self, detail: dict, contact: str, channel: str, ts: float,
                line: str) -> Outcome:
        if contact not in self.alias:  # its INITIATED was missed: it starts here
            self._initiated({}, contact, channel, ts, line)
        v1 = self.alias[contact]
        record = self.contacts.get(v1)
        if record is None:
            return skipped("transferred_away")
        queue = self._queue_name(_text(_object(detail, "queueInfo"), "queueArn"))
        if record["phase"] == "new":
            record.update(phase="waiting", queue=queue)
            extra = {"queue": queue}
            customer = (detail.get("customerEndpoint") or {}).get("address") \
                if isinstance(detail.get("customerEndpoint"), dict) else None
            if isinstance(customer, str) and fits(customer):
                extra["customer_id"] = customer
            return Outcome(events=[_contact("contact.queued", line, "c", ts, v1, channel,
                                            **extra)])
        if record["phase"] in ("transferring", "waiting") and record["queue"] != queue:
            record.update(phase="waiting", queue=queue, held=False)
            return Outcome(events=[_contact("contact.transferred", line, "c", ts, v1,
                                            record["channel"], to_queue=queue)])
        return skipped("out_of_order")

    def _connected(self, detail: dict, contact: str, channel: str, ts: float,
                   line: str) -> Outcome:
        record = self._record(contact)
        if record is None:
            return skipped("unknown_contact")
        if record["phase"] != "waiting":
            return skipped("out_of_order")
        arn = _text(_object(detail, "agentInfo"), "agentArn")
        record["phase"] = "talking"
        return Outcome(events=[_contact("contact.answered", line, "c", ts, self.alias[contact],
                                        record["channel"], agent_id=_tail(arn))])

    def _disconnected(self, detail: dict, contact: str, channel: str, ts: float,
                      line: str) -> Outcome:
        v1 = self.alias.get(contact)
        if v1 == "":  # a transfer's original leg: the contact lives on
            del self.alias[contact]
            return skipped("transferred_away")
        record = self._record(contact)
        if record is None:
            return skipped("unknown_contact")
        phase = record["phase"]
        if phase == "waiting":
            self._drop(v1)
            return Outcome(events=[_contact("contact.abandoned", line, "c", ts, v1,
                                            record["channel"])])
        if phase == "talking":  # ended, unless a transfer follows within 10 s
            record.update(phase="leaving", at=ts, line=line)
            return Outcome()
        if phase == "leaving":  # told twice
            return skipped("out_of_order")
        if phase == "transferring":  # the transfer's leg ended before reaching a queue
            self._drop(v1)
            return Outcome(events=[_contact("contact.ended", line, "c", ts, v1,
                                            record["channel"])])
        self._drop(v1)  # never reached a queue: nothing to say
        return Outcome()

    def _settle(self, ts: float) -> list[Event]:
        """End the contacts whose DISCONNECTED no transfer followed within 10 s."""
        events = []
        for v1, record in list(self.contacts.items()):
            if record["phase"] == "leaving" and max(ts, self.clock) > record["at"] + \
                    TRANSFER_SECONDS:
                self._drop(v1)
                events.append(_contact("contact.ended", record["line"], "e", record["at"], v1,
                                       record["channel"]))
        return events

    def _record(self, contact: str) -> dict[str, Any] | None:
        v1 = self.alias.get(contact)
        return self.contacts.get(v1) if v1 else None

    def _drop(self, v1: str) -> None:
        for contact in self.contacts.pop(v1)["ids"]:
            if self.alias.get(contact) == v1:
                del self.alias[contact]

    def _queue_name(self, arn: str) -> str:
        queue = _tail(arn)
        return self.queues.get(queue, queue)

    # -- agent events ------------------------------------------------------------------------

    def _agent_message(self, message: dict, line: str) -> Outcome:
        kind = _str(message["EventType"])
        if kind not in AGENT_EVENTS:
            return skipped("unknown_event")
        agent = _tail(_text(message, "AgentARN"))
        ts = _ts(message, "EventTimestamp", None)
        snapshot = message.get("CurrentAgentSnapshot")
        snapshot = snapshot if isinstance(snapshot, dict) else {}
        queues = self._learn(snapshot)
        contacts = [c for c in snapshot.get("Contacts") or [] if isinstance(c, dict)]
        events = self._settle(ts) + self._holds(contacts, ts, line)
        state = _agent_state(kind, snapshot, contacts)
        self.clock = max(self.clock, ts)
        if self.agents.get(agent) != [state, queues]:
            self.agents[agent] = [state, queues]
            events.append({"event_id": f"acn:{line}:a", "type": "agent.state", "ts": ts,
                           "agent_id": agent, "state": state, "queues": queues})
        return Outcome(events=events)

    def _learn(self, snapshot: dict) -> list[str]:
        """Remember every queue's name the snapshot gives; the routing profile's queues."""
        configuration = snapshot.get("Configuration")
        profile = configuration.get("RoutingProfile") if isinstance(configuration, dict) \
            else None
        profile = profile if isinstance(profile, dict) else {}
        inbound = [q for q in profile.get("InboundQueues") or [] if isinstance(q, dict)]
        named = [*inbound, profile.get("DefaultOutboundQueue"),
                 *(c.get("Queue") for c in snapshot.get("Contacts") or [] if isinstance(c, dict))]
        for queue in named:
            if isinstance(queue, dict) and isinstance(queue.get("ARN"), str) \
                    and isinstance(queue.get("Name"), str) and fits(queue["Name"]):
                self.queues[_tail(queue["ARN"])] = queue["Name"]
        return sorted({self._queue_name(q["ARN"]) for q in inbound
                       if isinstance(q.get("ARN"), str) and fits(_tail(q["ARN"]))})

    def _holds(self, contacts: list[dict], ts: float, line: str) -> list[Event]:
        events = []
        for contact in contacts:
            cid = contact.get("ContactId")
            record = self._record(cid) if isinstance(cid, str) else None
            if record is None or record["phase"] != "talking":
                continue
            state = _str(contact.get("State"))
            held = state == "CONNECTED_ONHOLD"
            if held != record["held"] and state in TALKING_STATES:
                record["held"] = held
                kind = "contact.hold_started" if held else "contact.hold_ended"
                events.append(_contact(kind, line, f"h:{cid}", ts, self.alias[cid],
                                       record["channel"]))
        return events


_HANDLERS = {"INITIATED": Connect._initiated, "QUEUED": Connect._queued,
             "CONNECTED_TO_AGENT": Connect._connected, "DISCONNECTED": Connect._disconnected}
# Each event's own time; the envelope's `time` when it lacks it.
_TS_FIELDS = {"QUEUED": ("queueInfo", "enqueueTimestamp"),
              "CONNECTED_TO_AGENT": ("agentInfo", "connectedToAgentTimestamp"),
              "DISCONNECTED": (None, "disconnectTimestamp"),
              "INITIATED": (None, "initiationTimestamp")}


class BadField(Exception):
    """A message of a known shape with a field v1 cannot use: dead-lettered."""


def _agent_state(kind: str, snapshot: dict, contacts: list[dict]) -> str:
    states = {_str(c.get("State")) for c in contacts}
    status = snapshot.get("AgentStatus")
    status = status if isinstance(status, dict) else {}
    offline = status.get("Type") == "OFFLINE" or status.get("Name") == "Offline"
    if kind == "LOGOUT":
        return "offline"
    if states & TALKING_STATES:
        return "busy"
    if "ENDED" in states:
        return "acw"
    if offline:
        return "offline"
    if status.get("Type") == "ROUTABLE" or status.get("Name") == "Available":
        return "available"
    return "away"


def _str(value: object) -> str | None:
    """A string field, or None: any other JSON value (lists are not even hashable)."""
    return value if isinstance(value, str) else None


def _object(data: dict, name: str) -> dict:
    value = data.get(name)
    if not isinstance(value, dict):
        raise BadField(f"{name} is not an object")
    return value


def _text(data: dict, name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise BadField(f"{name} is not a non-empty string")
    return value


def _ts(detail: dict, where: tuple[str | None, str] | str | None, envelope: dict | None
        ) -> float:
    """The event's own timestamp if it has one, else the envelope's `time`; Unix seconds."""
    if isinstance(where, str):
        where = (None, where)
    candidates = []
    if where is not None:
        holder = detail if where[0] is None else detail.get(where[0])
        if isinstance(holder, dict):
            candidates.append(holder.get(where[1]))
    if envelope is not None:
        candidates.append(envelope.get("time"))
    for value in candidates:
        if isinstance(value, str):
            try:
                return parse_ts(value) / 1000
            except BadEvent:
                raise BadField(f"timestamp {value[:40]!r} is not RFC 3339") from None
    raise BadField("no timestamp")


def _tail(arn: str) -> str:
    """The id at the end of an ARN (`…/queue/<id>`, `…/agent/<id>`)."""
    tail = arn.rsplit("/", 1)[-1]
    if not fits(tail):
        raise BadField(f"ARN {arn[:60]!r} ends in no usable id")
    return tail


def _contact(kind: str, line: str, suffix: str, ts: float, contact: str, channel: str,
             **fields: str) -> Event:
    return {"event_id": f"acn:{line}:{suffix}", "type": kind, "ts": ts, "channel": channel,
            "contact_id": contact, **fields}
