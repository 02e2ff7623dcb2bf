"""Stage one of the KPI engine: each contact's and agent's lifecycle, turned into queue facts.

A `Ledger` holds the state of the contacts and agents of one input partition. `apply` checks
an event against the lifecycle of events.md and returns the facts it causes, each addressed
to the (queue, channel) it counts for. Facts are what stage two (`queues.py`) aggregates.
Pure and deterministic: the same state and event always give the same facts.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import NamedTuple

from . import reps
from .events import AGENT_TYPE, CHANNELS, BadEvent, Event

# Fact kinds. Each is counted when the event that closes it falls inside a window (metrics.md).
ENTERED = "entered"  # starts waiting in the queue (queued, transferred in)
ANSWERED = "answered"  # value: wait (ms); opens a conversation segment
ABANDONED = "abandoned"  # value: wait in ms
WAIT_TRANSFERRED = "wait_transferred"  # left the queue by transfer while waiting
HOLD_STARTED = "hold_started"
HOLD_ENDED = "hold_ended"  # value: hold length in ms
ENDED = "ended"  # value: handle time in ms (segment + wrap); closes the segment
TALK_TRANSFERRED = "talk_transferred"  # value: segment length in ms; closes it by transfer
SURVEY = "survey"  # value: (kind, score)
AGENT = "agent"  # contact: agent id; value: state, or None when the agent left the queue
# The agent of a contact's latest answer credited with a closing fact (segment, hold, csat
# survey): contact: agent id; value: `reps.rep_code`. Same (queue, channel) as the closing
# fact, after every other fact of its event (their positions stay those of older versions).
REP = "rep"

AGENTS_CHANNEL = ""  # agent facts are per queue only: `ccmon_agents` has no channel label
# A copy of an agent fact for each channel's series of the queue, which may live on another
# facts partition than the queue's agents: the Erlang C figures of (queue, channel) need the
# queue's staffing there. Never exported itself. Sent only when the agent's staffing of the
# queue changes (joins, leaves, or moves in or out of STAFFED): N is all it serves, and a copy
# per event and channel was most of the facts of a large centre.
STAFF = "staff"
STAFFED = frozenset(("available", "busy", "acw"))  # agents counted as staffing a queue
SERIES_CHANNELS = tuple(sorted(CHANNELS))

AGENT_DEDUP_IDS = 256  # an agent's recent event ids kept to spot duplicates


class Fact(NamedTuple):
    queue: str
    channel: str
    kind: str
    ts: int  # Unix ms of the event that caused it
    contact: str  # internal identity (contact or agent id): never a metric label
    value: object = None


DUPLICATE: list[Fact] = []  # returned (by identity) for a repeated event_id

FINISHED = ("ended", "abandoned", "surveyed")  # "surveyed": known only from a survey


@dataclass(slots=True)
class Contact:
    channel: str
    status: str  # waiting | talking | one of FINISHED
    queue: str  # where it waits, or the queue of its conversation segment
    since: int  # entry into the queue, or start of the segment (ms)
    last_ts: int
    hold_since: int | None = None
    answered_queue: str | None = None
    waited_queue: str | None = None
    event_ids: list[str] = field(default_factory=list)
    customer: str | None = None  # customer_id of its contact.queued: it takes part in cases
    agent: str | None = None  # agent_id of its latest contact.answered: credited (reps.py)

    def to_json(self) -> list:
        return [self.channel, self.status, self.queue, self.since, self.last_ts, self.hold_since,
                self.answered_queue, self.waited_queue, self.event_ids, self.customer,
                self.agent]

    @classmethod
    def from_json(cls, data: list) -> Contact:
        return cls(*data)  # logged before cases or agents: the defaults None


@dataclass(slots=True)
class Agent:
    state: str
    queues: tuple[str, ...]
    last_ts: int
    event_ids: list[str] = field(default_factory=list)

    def to_json(self) -> list:
        return [self.state, list(self.queues), self.last_ts, self.event_ids]

    @classmethod
    def from_json(cls, data: list) -> Agent:
        return cls(data[0], tuple(data[1]), data[2], data[3])


def contact_key(channel: str, contact_id: str) -> str:
    # Platforms number their contacts independently: the same id on two channels is two contacts.
    return f"{channel}\x1f{contact_id}"


def agent_key(agent_id: str) -> str:
    return f"agent\x1f{agent_id}"


class Ledger:
    """Contacts and agents of one partition. Mutations are recorded in `dirty` for persistence.

    A finished contact is remembered for the retention after its last event, on the ledger's
    own clock: the largest ts of the events it applied (duplicates and bad events do not move
    it). That clock is the largest `last_ts` of the state it keeps, so a ledger restored from
    its changelog has the same clock and forgets the same contacts at the same events.
    """

    def __init__(self, retention_ms: int = 86_400_000):
        self.contacts: dict[str, Contact] = {}
        self.agents: dict[str, Agent] = {}
        self.retention = retention_ms
        self.clock = 0  # largest ts applied (ms)
        self.dirty: set[str] = set()  # keys changed (or removed) since `take_dirty`
        self._finished: list[tuple[int, str]] = []  # (last ts, key) of finished contacts
        # The customer of the contact of the latest event applied (None: none, or an agent),
        # so that stage one looks for a journey step only for contacts with a customer.
        self.customer: str | None = None

    # -- persistence -----------------------------------------------------------------------
    def restore(self, key: str, data: list) -> None:
        state: Agent | Contact
        if key.startswith("agent\x1f"):
            state = self.agents[key] = Agent.from_json(data)
        else:
            state = self.contacts[key] = Contact.from_json(data)
            if state.status in FINISHED:
                heapq.heappush(self._finished, (state.last_ts, key))
        self.clock = max(self.clock, state.last_ts)

    def take_dirty(self) -> dict[str, list | None]:
        """Changed keys with their serialisable state (None: forget the key)."""
        out: dict[str, list | None] = {}
        for key in self.dirty:
            state = self.agents.get(key) or self.contacts.get(key)
            out[key] = state.to_json() if state is not None else None
        self.dirty.clear()
        return out

    def _forget_finished(self) -> None:
        """Forget the contacts finished at or before `clock - retention`, as windows drop a
        sample at `now - W`. O(1) when none is due: the earliest is on top of the heap."""
        horizon = self.clock - self.retention
        finished = self._finished
        while finished and finished[0][0] <= horizon:
            ts, key = heapq.heappop(finished)
            contact = self.contacts.get(key)
            # Entries left behind by a later event of the contact are skipped.
            if contact is not None and contact.status in FINISHED and contact.last_ts == ts:
                del self.contacts[key]
                self.dirty.add(key)

    # -- the lifecycle ---------------------------------------------------------------------
    def apply(self, event: Event) -> list[Fact]:
        """Facts caused by a valid event; DUPLICATE for a repeat; BadEvent('lifecycle') if wrong."""
        self.customer = None
        facts = self._agent(event) if event.type == AGENT_TYPE else self._contact_event(event)
        if facts is not DUPLICATE:
            if event.ts > self.clock:
                self.clock = event.ts
            self._forget_finished()
        return facts

    def _contact_event(self, event: Event) -> list[Fact]:
        key = contact_key(event.channel, event.contact_id)
        contact = self.contacts.get(key)
        if contact is not None:
            if event.event_id in contact.event_ids:
                return DUPLICATE
            if event.ts < contact.last_ts:
                raise BadEvent("lifecycle", f"{event.type} is older than the contact's last event")
        elif event.ts <= self.clock - self.retention:
            # Every event of a forgotten contact is this old: it may be a repeat, and applied
            # again it could count twice or leave a contact waiting forever.
            raise BadEvent("lifecycle", f"{event.type} for a contact not remembered, older than "
                           "the contact retention")
        handler = _HANDLERS[event.type]
        facts = handler(self, event, contact, key)
        contact = self.contacts.get(key)
        self.customer = contact.customer if contact is not None else None
        if contact is not None:
            contact.event_ids.append(event.event_id)
            contact.last_ts = max(contact.last_ts, event.ts)
            if contact.status in FINISHED:  # (re)schedule forgetting it
                heapq.heappush(self._finished, (contact.last_ts, key))
            self.dirty.add(key)
        return facts

    def _queued(self, event: Event, contact: Contact | None, key: str) -> list[Fact]:
        if contact is not None and contact.status != "surveyed":
            raise BadEvent("lifecycle", "contact.queued for a contact already known")
        self.contacts[key] = Contact(event.channel, "waiting", event.queue, event.ts, event.ts,
                                     waited_queue=event.queue,
                                     event_ids=contact.event_ids if contact else [],
                                     customer=event.customer_id)
        return [Fact(event.queue, event.channel, ENTERED, event.ts, key)]

    def _answered(self, event: Event, contact: Contact | None, key: str) -> list[Fact]:
        contact = _require(contact, "waiting", event)
        wait = event.ts - contact.since
        contact.status, contact.since, contact.answered_queue = "talking", event.ts, contact.queue
        contact.agent = event.agent_id
        return [Fact(contact.queue, contact.channel, ANSWERED, event.ts, key, wait)]

    def _abandoned(self, event: Event, contact: Contact | None, key: str) -> list[Fact]:
        contact = _require(contact, "waiting", event)
        contact.status = "abandoned"
        return [Fact(contact.queue, contact.channel, ABANDONED, event.ts, key,
                     event.ts - contact.since)]

    def _hold_started(self, event: Event, contact: Contact | None, key: str) -> list[Fact]:
        contact = _require(contact, "talking", event)
        if contact.hold_since is not None:
            raise BadEvent("lifecycle", "contact.hold_started while already on hold")
        contact.hold_since = event.ts
        return [Fact(contact.queue, contact.channel, HOLD_STARTED, event.ts, key)]

    def _hold_ended(self, event: Event, contact: Contact | None, key: str) -> list[Fact]:
        contact = _require(contact, "talking", event)
        if contact.hold_since is None:
            raise BadEvent("lifecycle", "contact.hold_ended without a hold")
        return _credited([self._close_hold(contact, event.ts, key)], contact.agent)

    def _close_hold(self, contact: Contact, ts: int, key: str) -> Fact:
        length = ts - contact.hold_since
        contact.hold_since = None
        return Fact(contact.queue, contact.channel, HOLD_ENDED, ts, key, length)

    def _transferred(self, event: Event, contact: Contact | None, key: str) -> list[Fact]:
        if contact is None or contact.status not in ("waiting", "talking"):
            raise BadEvent("lifecycle", _not_state(event, contact, "waiting or talking"))
        ts, facts = event.ts, []
        if contact.status == "waiting":
            facts.append(Fact(contact.queue, contact.channel, WAIT_TRANSFERRED, ts, key,
                              ts - contact.since))
        else:
            if contact.hold_since is not None:
                facts.append(self._close_hold(contact, ts, key))
            facts.append(Fact(contact.queue, contact.channel, TALK_TRANSFERRED, ts, key,
                              ts - contact.since))
        contact.status, contact.queue, contact.since = "waiting", event.to_queue, ts
        contact.waited_queue = event.to_queue
        facts.append(Fact(event.to_queue, contact.channel, ENTERED, ts, key))
        return _credited(facts, contact.agent)

    def _ended(self, event: Event, contact: Contact | None, key: str) -> list[Fact]:
        contact = _require(contact, "talking", event)
        facts = []
        if contact.hold_since is not None:
            facts.append(self._close_hold(contact, event.ts, key))
        handle = event.ts - contact.since + event.wrap_ms
        facts.append(Fact(contact.queue, contact.channel, ENDED, event.ts, key, handle))
        contact.status = "ended"
        return _credited(facts, contact.agent)

    def _survey(self, event: Event, contact: Contact | None, key: str) -> list[Fact]:
        queue = event.queue
        if queue is None and contact is not None:
            queue = contact.answered_queue or contact.waited_queue
        if queue is None:
            raise BadEvent("lifecycle", "survey for an unknown contact that names no queue")
        if contact is None:  # remembered, so that a repeat of this survey is a duplicate
            self.contacts[key] = Contact(event.channel, "surveyed", queue, event.ts, event.ts)
        survey = Fact(queue, event.channel, SURVEY, event.ts, key, (event.kind, event.score))
        if event.kind != "csat" or contact is None or contact.agent is None:
            return [survey]
        return [survey, Fact(queue, event.channel, REP, event.ts, contact.agent,
                             reps.rep_code(reps.CSAT, event.score))]

    def _agent(self, event: Event) -> list[Fact]:
        key = agent_key(event.agent_id)
        agent = self.agents.get(key)
        if agent is None:
            agent = self.agents[key] = Agent("", (), event.ts)
        elif event.event_id in agent.event_ids:
            return DUPLICATE
        agent.event_ids.append(event.event_id)
        del agent.event_ids[:-AGENT_DEDUP_IDS]
        self.dirty.add(key)
        changes = [(q, None) for q in agent.queues if q not in event.queues]
        changes += [(q, event.state) for q in event.queues]
        facts = [Fact(q, AGENTS_CHANNEL, AGENT, event.ts, event.agent_id, state)
                 for q, state in changes]
        # A late event takes its place in the queues' timelines (stage two orders them by
        # ts), but the agent's current state and queues stay those of its latest event: it
        # changes no staffing.
        if event.ts >= agent.last_ts:
            was_staffed, staffed = agent.state in STAFFED, event.state in STAFFED
            facts += [Fact(q, channel, STAFF, event.ts, event.agent_id, state)
                      for q, state in changes
                      if state is None or q not in agent.queues or was_staffed != staffed
                      for channel in SERIES_CHANNELS]
            agent.state, agent.queues, agent.last_ts = event.state, event.queues, event.ts
        return facts


_REP_KINDS = {ENDED: reps.ENDED, TALK_TRANSFERRED: reps.TRANSFERRED, HOLD_ENDED: reps.HOLD}


def _credited(facts: list[Fact], agent: str | None) -> list[Fact]:
    """`facts`, then a REP fact crediting `agent` with each segment or hold they close."""
    if agent is None:  # an answer without agent_id: nobody is credited
        return facts
    return facts + [Fact(queue, channel, REP, ts, agent, reps.rep_code(_REP_KINDS[kind], value))
                    for queue, channel, kind, ts, _, value in facts if kind in _REP_KINDS]


def _not_state(event: Event, contact: Contact | None, wanted: str) -> str:
    now = "unknown" if contact is None else contact.status
    return f"{event.type} for a contact that is {now}, not {wanted}"


def _require(contact: Contact | None, status: str, event: Event) -> Contact:
    if contact is None or contact.status != status:
        raise BadEvent("lifecycle", _not_state(event, contact, status))
    return contact


_HANDLERS = {
    "contact.queued": Ledger._queued,
    "contact.answered": Ledger._answered,
    "contact.abandoned": Ledger._abandoned,
    "contact.hold_started": Ledger._hold_started,
    "contact.hold_ended": Ledger._hold_ended,
    "contact.transferred": Ledger._transferred,
    "contact.ended": Ledger._ended,
    "survey.submitted": Ledger._survey,
}
