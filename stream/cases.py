"""Cases: a customer's journey across contacts and channels (metrics.md 1.1, issue 10).

A stage of its own between stage one (`lifecycle.py`) and stage two (`queues.py`). Stage one
sends a `JourneyFact` for each step of a contact whose `contact.queued` carried
`customer_id`, keyed by that customer id, so all of a customer's contacts meet in one
`Cases`: the customers of one partition of that keyed stream. `Cases.apply` and
`Cases.advance` return *case facts* (`lifecycle.Fact`, kinds below) addressed to the
(queue, channel) they count for, for stage two to aggregate into windows, and the deltas of
the `ccmon_open_cases` gauge, so that a `Board` on another partition can keep it.

Decisions where the contract is silent (or where reading it took a choice):

- Only three steps are sent: the entry (`contact.queued`), the end (`contact.ended`, with
  `resolved`) and the abandon. An answer or a transfer changes nothing a case needs: a
  transfer is not a leave, and a leave step already says where the contact was when it
  left (an `ended` is in the queue of its segment, i.e. where it was last answered; an
  abandon where it waited), which is where a resolution and a drop count.
- The clock: the largest of every `advance(now)` and the ts of every journey fact applied
  (with `clock = event` that is the monitor clock; live, journey ts are behind the wall
  clock). Whenever it moves, every case with no contact waiting or talking whose latest
  leave + R < clock is dropped, in the order of (drop moment, customer). "Judged at the
  entry" is this rule at the entry's ts (entry - latest leave > R), so a drop is the same
  fact whether `advance` or a later contact found it.
- Taken as it comes: a contact that reaches us late is judged against its customer's state
  when it is applied. A case the clock has already dropped stays dropped (facts are never
  taken back), even if the late contact's entry precedes the drop moment: the contact opens
  a new case, not a reopening.
- The case's *latest contact* (gauge place, drop place) is the one with the greatest entry ts;
  of equal ones the later taken.
- Reopened is `entry - resolution < R` as written, so a late contact whose entry precedes its
  customer's previous resolution also reopens.
- The steps of a contact that is not in its customer's open case (its case closed: resolved
  or dropped) change nothing: `resolved: true` on a closed case is ignored.
- Memory is bounded by R: a customer with no open case is forgotten once clock ≥ its latest
  applied ts + R (then its previous case was resolved at least R ago, or dropped, and no
  reopening can depend on it). Its idempotence marks go with it, so every entry with
  ts + R ≤ clock is ignored: it may be a repeat of a forgotten customer's (whose every ts
  is that old), and a genuine one is that late only across partitions skewed by days
  (stage one already refuses a contact.queued older than its contact retention, 1 d < R).

Idempotence. A `JourneyFact` carries the origin of its input event (`source`, `position`);
each customer remembers the last position applied per source and ignores anything at or
before it (as `Board` units do). Output facts are located, `(*fact, source, position)` as
`engine.Located`: those caused by a journey fact take the journey message's origin given to
`apply` (+ the index of the fact), and a drop takes `drops_source` and a position derived
from its drop moment (moment * DROP_SLOTS, kept increasing), so stage two recognises a drop
sent again after a crash whichever of `advance` or `apply` found it the second time.

Persistence, as `Ledger`: `take_dirty()` gives the changed units as JSON-able state or None
(forget the key); `restore(key, state)` takes them back. A customer's unit (`c␟<id>`) is
`[marks, last ts, previous resolution or null, open case or null]`, a case `[opener, earliest
entry, latest contact, latest leave, {contact: [channel, entry ts, entry queue, queue where
it left, waiting or talking]}]`. The clock's unit (`clock`) is `[clock, last drop position]`:
logged because late contacts are judged against the clock and drop positions must keep
increasing across restarts.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from .events import Event
from .lifecycle import ABANDONED, ENDED, ENTERED, Fact

DEFAULT_TIMEOUT_MS = 7 * 86_400_000  # CCMON_CASE_TIMEOUT, default 7d

# Journey steps (JourneyFact.kind).
ENTRY = "entry"  # contact.queued with a customer_id: where it entered
END = "end"  # contact.ended: where its segment was (last answered), and `resolved`
ABANDON = "abandon"  # contact.abandoned: where it waited

# Case fact kinds (Fact.kind); each counts in windows at its ts, except the gauge deltas.
OPENED = "case_opened"  # value: True when the case is a reopening (it counts as opened too)
REPEAT = "case_repeat"  # a contact joined the open case
RESOLVED = "case_resolved"  # value: Resolution
DROPPED = "case_dropped"
OPEN_CASES = "open_cases"  # value: +1 / -1 to `ccmon_open_cases` of (queue, channel)

DROP_SLOTS = 1024  # drop positions: drop moment * DROP_SLOTS, kept increasing
CLOCK_KEY = "clock"  # the clock's unit; a customer's is CUSTOMER_PREFIX + id, never this
CUSTOMER_PREFIX = "c\x1f"


class JourneyFact(NamedTuple):
    """One step of a customer's contact: the message stage one sends keyed by `customer`."""

    customer: str
    contact: str  # the contact's key (lifecycle.contact_key): internal, never a label
    kind: str  # ENTRY | END | ABANDON
    ts: int  # Unix ms of the event
    queue: str  # where it happened
    channel: str
    resolved: bool = False  # END: `resolved: true`
    source: str = ""  # the input event's origin ("topic:partition"): for idempotence
    position: int = 0  # ... and its position there (offset * FACTS_PER_EVENT)


class Resolution(NamedTuple):
    """The value of a RESOLVED fact."""

    ms: int  # from the earliest entry among the case's contacts to the resolving `ended`
    contacts: int  # contacts taken into the case up to its resolution
    fcr: bool  # resolved by the contact that opened it
    multichannel: bool  # its contacts used at least two channels


@dataclass(slots=True)
class Member:
    """A contact of an open case."""

    channel: str
    entered: int  # entry ts
    queue: str  # where it entered (its contact.queued)
    where: str  # where it was when it left (the entry queue until then)
    active: bool = True  # waiting or talking

    def to_json(self) -> list:
        return [self.channel, self.entered, self.queue, self.where, self.active]


@dataclass(slots=True)
class Case:
    opener: str
    first_entry: int  # earliest entry among its contacts
    latest: str  # the contact with the greatest entry ts (the later taken of equal ones)
    left_at: int = 0  # latest leave among its contacts
    members: dict[str, Member] = field(default_factory=dict)

    def to_json(self) -> list:
        return [self.opener, self.first_entry, self.latest, self.left_at,
                {contact: member.to_json() for contact, member in self.members.items()}]

    @classmethod
    def from_json(cls, data: list) -> Case:
        opener, first_entry, latest, left_at, members = data
        return cls(opener, first_entry, latest, left_at,
                   {contact: Member(*member) for contact, member in members.items()})

    def idle(self) -> bool:
        """No contact waits or talks."""
        return not any(member.active for member in self.members.values())


@dataclass(slots=True)
class Customer:
    marks: dict[str, int] = field(default_factory=dict)  # input source -> last position
    last_ts: int = 0  # largest ts applied
    resolved_at: int | None = None  # the previous case's resolution; None: none, or dropped
    case: Case | None = None  # the open case

    def to_json(self) -> list:
        return [self.marks, self.last_ts, self.resolved_at,
                self.case.to_json() if self.case is not None else None]

    @classmethod
    def from_json(cls, data: list) -> Customer:
        marks, last_ts, resolved_at, case = data
        return cls(dict(marks), last_ts, resolved_at,
                   Case.from_json(case) if case is not None else None)


# The events cases follow: their journey kind, and the fact of theirs that says where and when.
_JOURNEY_STEPS = {"contact.queued": (ENTRY, ENTERED), "contact.ended": (END, ENDED),
                  "contact.abandoned": (ABANDON, ABANDONED)}


def journey_of(customer: str, event: Event, caused: Sequence[Fact], source: str,
               position: int) -> JourneyFact | None:
    """The journey step of a contact event whose contact has `customer`, from the facts the
    ledger made of it (`caused`), with the event's origin; None for the events cases ignore."""
    step = _JOURNEY_STEPS.get(event.type)
    if step is None:
        return None
    kind, made = step
    for fact in caused:
        if fact.kind == made:
            break
    else:  # the lifecycle always makes it: a bug of ours if not (dead-lettered as internal)
        raise LookupError(f"{event.type} made no {made} fact")
    return JourneyFact(customer, fact.contact, kind, fact.ts, fact.queue, fact.channel,
                       event.resolved is True, source, position)


class Cases:
    """The customers of one partition of the journey stream; see the module's docstring."""

    def __init__(self, timeout_ms: int = DEFAULT_TIMEOUT_MS, drops_source: str = "drops"):
        self.timeout = timeout_ms
        self.drops_source = drops_source  # unique per partition: the origin of its drops
        self.customers: dict[str, Customer] = {}
        self.clock = 0
        self.last_drop = -1  # position of the latest drop fact
        self.dirty: set[str] = set()  # unit keys changed since `take_dirty`
        # (due, customer): a drop (clock > left_at + R) or a forgetting (clock > last_ts + R - 1).
        # Stale entries are skipped: an entry acts only if it is still the customer's due.
        self._due: list[tuple[int, str]] = []

    # -- persistence -------------------------------------------------------------------------
    def take_dirty(self) -> dict[str, object]:
        """Changed units with their JSON-able state (None: forget the key)."""
        out: dict[str, object] = {}
        for key in self.dirty:
            if key == CLOCK_KEY:
                out[key] = [self.clock, self.last_drop]
            else:
                customer = self.customers.get(key[len(CUSTOMER_PREFIX):])
                out[key] = customer.to_json() if customer is not None else None
        self.dirty.clear()
        return out

    def restore(self, key: str, state: list) -> None:
        if key == CLOCK_KEY:
            self.clock = max(self.clock, state[0])
            self.last_drop = max(self.last_drop, state[1])
            return
        customer_id = key[len(CUSTOMER_PREFIX):]
        customer = self.customers[customer_id] = Customer.from_json(state)
        self._schedule(customer_id, customer)

    def _touch(self, customer_id: str) -> None:
        self.dirty.add(CUSTOMER_PREFIX + customer_id)

    # -- the clock ---------------------------------------------------------------------------
    def advance(self, now: int) -> list[tuple]:
        """Move the clock to `now` (never back): the drops that come due, located."""
        out: list[tuple] = []
        self._move(now, out)
        return out

    def _move(self, now: int, out: list[tuple]) -> None:
        """Move the clock and act on what came due, in order (drops first found after a late
        leave included: the clock may already be past their moment)."""
        if now > self.clock:
            self.clock = now
            self.dirty.add(CLOCK_KEY)
        now, due = self.clock, self._due
        while due and due[0][0] < now:
            when, customer_id = heapq.heappop(due)
            customer = self.customers.get(customer_id)
            if customer is None or self._due_of(customer) != when:
                continue
            if customer.case is not None:
                self._drop(customer_id, customer, out)
                self._schedule(customer_id, customer)  # its forgetting may be due as well
            else:
                del self.customers[customer_id]
                self._touch(customer_id)

    def _due_of(self, customer: Customer) -> int | None:
        case = customer.case
        if case is None:
            return customer.last_ts + self.timeout - 1  # forgotten at clock >= last_ts + R
        return case.left_at + self.timeout if case.idle() else None  # dropped at clock > it

    def _schedule(self, customer_id: str, customer: Customer) -> None:
        when = self._due_of(customer)
        if when is not None:
            heapq.heappush(self._due, (when, customer_id))

    def _drop(self, customer_id: str, customer: Customer, out: list[tuple]) -> None:
        case = customer.case
        moment = case.left_at + self.timeout
        latest = case.members[case.latest]
        position = max(moment * DROP_SLOTS, self.last_drop + 1)
        source = self.drops_source
        out.append((latest.where, latest.channel, DROPPED, moment, case.latest, None,
                    source, position))
        out.append((latest.queue, latest.channel, OPEN_CASES, moment, case.latest, -1,
                    source, position + 1))
        self.last_drop = position + 1
        self.dirty.add(CLOCK_KEY)
        customer.case = None
        customer.resolved_at = None  # the previous case is a dropped one: no reopening
        self._touch(customer_id)

    # -- journey facts -----------------------------------------------------------------------
    def apply(self, journey: JourneyFact, source: str, position: int) -> list[tuple]:
        """The located case facts a journey fact causes (drops that came due first). `source`,
        `position`: the journey message's own origin, given to the facts it causes."""
        customer_id = journey.customer
        customer = self.customers.get(customer_id)
        if customer is not None and customer.marks.get(journey.source, -1) >= journey.position:
            return []  # applied before
        out: list[tuple] = []
        self._move(journey.ts, out)
        if journey.kind == ENTRY and journey.ts + self.timeout <= self.clock:
            return out  # a repeat of a forgotten customer's entry (see the docstring)
        customer = self.customers.get(customer_id)  # the move may have forgotten it
        if customer is None:
            if journey.kind != ENTRY:
                return out  # a step of a contact no case holds
            customer = self.customers[customer_id] = Customer()
        customer.marks[journey.source] = journey.position
        customer.last_ts = max(customer.last_ts, journey.ts)
        self._touch(customer_id)
        caused = self._entry(customer, journey) if journey.kind == ENTRY else self._leave(
            customer, journey)
        out += [(*fact, source, position + index) for index, fact in enumerate(caused)]
        self._schedule(customer_id, customer)
        self._move(self.clock, out)  # a late leave: the clock may be past the drop moment
        return out

    def _entry(self, customer: Customer, journey: JourneyFact) -> list[Fact]:
        contact, ts, queue, channel = journey.contact, journey.ts, journey.queue, journey.channel
        case = customer.case
        if case is None:
            reopened = (customer.resolved_at is not None
                        and ts - customer.resolved_at < self.timeout)
            customer.case = Case(contact, ts, contact, members={
                contact: Member(channel, ts, queue, queue)})
            return [Fact(queue, channel, OPENED, ts, contact, reopened),
                    Fact(queue, channel, OPEN_CASES, ts, contact, 1)]
        case.members[contact] = Member(channel, ts, queue, queue)
        case.first_entry = min(case.first_entry, ts)
        facts = [Fact(queue, channel, REPEAT, ts, contact)]
        latest = case.members[case.latest]
        if ts >= latest.entered:  # the gauge follows the latest contact's contact.queued
            case.latest = contact
            if (latest.queue, latest.channel) != (queue, channel):
                facts += [Fact(latest.queue, latest.channel, OPEN_CASES, ts, contact, -1),
                          Fact(queue, channel, OPEN_CASES, ts, contact, 1)]
        return facts

    def _leave(self, customer: Customer, journey: JourneyFact) -> list[Fact]:
        case = customer.case
        member = case.members.get(journey.contact) if case is not None else None
        if member is None:
            return []  # not a contact of the open case: its case is closed
        ts = journey.ts
        if journey.kind == END and journey.resolved:
            latest = case.members[case.latest]
            resolution = Resolution(
                ts - case.first_entry, len(case.members), journey.contact == case.opener,
                len({m.channel for m in case.members.values()}) >= 2)
            customer.case = None
            customer.resolved_at = ts
            return [Fact(journey.queue, journey.channel, RESOLVED, ts, journey.contact,
                         resolution),
                    Fact(latest.queue, latest.channel, OPEN_CASES, ts, case.latest, -1)]
        member.active = False
        member.where = journey.queue
        case.left_at = max(case.left_at, ts)
        return []
