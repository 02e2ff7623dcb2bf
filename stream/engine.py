"""The KPI engine's entry points: `Intake` (stage one, per input partition) and `Pipeline`
(both stages in one object: for tests, benchmarks and anything that needs no Kafka).

Records and facts are plain tuples so a batch costs no per-event objects beyond the `Event`.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .cases import DEFAULT_TIMEOUT_MS, Cases, JourneyFact, journey_of
from .events import BadEvent, decode
from .facts import Located, Ticker, apply
from .lifecycle import DUPLICATE, Ledger
from .queues import Board, Thresholds

FACTS_PER_EVENT = 1024  # positions: offset * FACTS_PER_EVENT + index of the fact in its event
# (an agent event makes one fact per queue: more than 1024 queues would spill into the next
# offset's positions, which only matters within one unit, i.e. never for distinct queues)
JOURNEYS_PER_MESSAGE = 1024  # journey steps in one message of the journey stream
CASE_FACTS_PER_JOURNEY = 8  # positions of the case facts of one step (it makes at most 3)


def journey_position(offset: int, index: int) -> int:
    """The origin position of the `index`-th journey step of the journey message at `offset`:
    the case facts it causes take the next positions (`Cases.apply`)."""
    return (offset * JOURNEYS_PER_MESSAGE + index) * CASE_FACTS_PER_JOURNEY


class Record(NamedTuple):
    """One input message: where it came from and its untouched bytes."""

    source: str  # "topic:partition"
    offset: int
    channel: str | None  # the channel of its topic (None for the agents topic)
    value: bytes
    key: bytes | None = None  # kept only to dead-letter the message as it came


class DeadLetter(NamedTuple):
    source: str  # "topic:partition"
    record: Any  # the input record: `.offset`, `.key`, `.value` (its untouched bytes)
    reason: str  # a code of events.REASONS
    detail: str


@dataclass(frozen=True)
class EngineConfig:
    windows: tuple[tuple[str, int], ...] = (("5m", 300_000), ("15m", 900_000), ("1h", 3_600_000))
    thresholds: Thresholds = field(default_factory=Thresholds)
    retention_ms: int = 86_400_000
    timezone: str = "UTC"  # of the `today` window (width windows.TODAY)
    case_timeout_ms: int = DEFAULT_TIMEOUT_MS  # R of the cases

    @classmethod
    def from_settings(cls, settings) -> EngineConfig:
        return cls(
            windows=tuple((label, round(seconds * 1000)) for label, seconds in settings.windows),
            timezone=settings.timezone,
            thresholds=Thresholds(
                service_level_ms=round(settings.service_level_seconds * 1000),
                service_level_by_queue={queue: round(s * 1000) for queue, s
                                        in settings.service_level_by_queue.items()},
                short_abandon_ms=round(settings.short_abandon_seconds * 1000),
                service_level_target=settings.service_level_target),
            retention_ms=round(settings.contact_retention * 1000),
            case_timeout_ms=round(settings.case_timeout * 1000))


# State keys of the read marks, next to the ledger's contact and agent keys (never a channel
# name or "agent", so never a contact's or an agent's key).
READ_MARK = "\x1fread\x1f"


class Intake:
    """Stage one for the input partitions this process owns, with the health counters.

    Every input record is accounted for once (events.md 1.1): applied, a duplicate or
    dead-lettered. Besides its ledger, each partition keeps a read mark per input topic
    partition (`source`): the last offset handled. It is logged with the ledger's changes, so a
    worker that re-reads input after a crash skips what it had handled (and logged) instead of
    counting it again as duplicates or dead-lettering it a second time.
    """

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.ledgers: dict[int, Ledger] = {}  # input partition number -> its ledger
        self.read: dict[int, dict[str, int]] = {}  # partition -> source -> last offset handled
        self._read_dirty: dict[int, set[str]] = {}
        # partition -> (source, offset) of records a previous owner dead-lettered past its
        # logged state: found again, they are not dead-lettered twice.
        self.dead_before: dict[int, set[tuple[str, int]]] = {}
        self.events = Counter[tuple[str, str]]()  # (channel, type) -> valid events applied
        self.invalid = Counter[str]()  # reason -> dead-lettered events
        self.duplicates = 0
        self.last_event_ts: dict[str, int] = {}  # channel -> largest ts (ms)
        self.latest_ts = 0  # largest ts of any valid event: the event clock

    def ledger(self, partition: int) -> Ledger:
        ledger = self.ledgers.get(partition)
        if ledger is None:
            ledger = self.ledgers[partition] = Ledger(self.config.retention_ms)
            self.read[partition] = {}
            self._read_dirty[partition] = set()
        return ledger

    def drop(self) -> None:
        """Forget every partition's state (a rebalance): it is restored from the log."""
        self.ledgers.clear()
        self.read.clear()
        self._read_dirty.clear()
        self.dead_before.clear()

    def restore(self, partition: int, key: str, state: object) -> None:
        """One logged state unit of `take_changes` back into the partition's state."""
        ledger = self.ledger(partition)
        if key.startswith(READ_MARK):
            self.read[partition][key[len(READ_MARK):]] = state
        else:
            ledger.restore(key, state)

    def take_changes(self, partition: int) -> dict[str, object]:
        """State units changed since the last call (None: forget the key), to be logged."""
        changes: dict[str, object] = self.ledger(partition).take_dirty()
        marks, dirty = self.read[partition], self._read_dirty[partition]
        for source in dirty:
            changes[READ_MARK + source] = marks[source]
        dirty.clear()
        return changes

    def take(self, partition: int, records: Iterable[Record],
             journeys: list[JourneyFact] | None = None) -> tuple[list[Located],
                                                                 list[DeadLetter]]:
        """Apply records of one partition number, of any topics (tests, tools)."""
        facts: list[Located] = []
        dead: list[DeadLetter] = []
        for (source, channel), run in itertools.groupby(records, _origin):
            run_facts, run_dead = self.take_run(partition, source, channel, run, journeys)
            facts += run_facts
            dead += run_dead
        return facts, dead

    def take_run(self, partition: int, source: str, channel: str | None,
                 records: Iterable[Any], journeys: list[JourneyFact] | None = None
                 ) -> tuple[list[Located], list[DeadLetter]]:
        """Apply a batch of one input topic partition, in offset order: the facts to aggregate,
        the dead letters. A record is anything with `.offset`, `.value` and `.key` (aiokafka's
        `ConsumerRecord`, `Record`), so the worker hands its fetch over as it came.
        `journeys`, if given, receives the journey steps (`cases.journey_of`) of the contacts
        with a customer, in order (an out-list: callers without cases pay nothing)."""
        ledger = self.ledger(partition)
        facts: list[Located] = []
        dead: list[DeadLetter] = []
        events, last_ts = self.events, self.last_event_ts
        marks = self.read[partition]
        handled = marks.get(source, -1)
        dead_before = self.dead_before.get(partition)
        for record in records:
            if record.offset <= handled:
                continue  # re-read after a crash: accounted for before
            handled = record.offset
            try:
                event = decode(record.value, channel)
                caused = ledger.apply(event)
            except Exception as exc:  # no record may stop the monitor
                if dead_before and (source, record.offset) in dead_before:
                    dead_before.discard((source, record.offset))
                    continue
                if isinstance(exc, BadEvent):
                    letter = DeadLetter(source, record, exc.reason, exc.detail)
                else:  # a bug of ours, not a verdict on the input
                    letter = DeadLetter(source, record, "internal", _internal(exc))
                self.invalid[letter.reason] += 1
                dead.append(letter)
                continue
            if event.ts > self.latest_ts:  # a repeat is still a valid event seen
                self.latest_ts = event.ts
            if caused is DUPLICATE:
                self.duplicates += 1
                continue
            event_channel = event.channel or ""  # agent events: an empty label, i.e. none
            events[(event_channel, event.type)] += 1
            # -1: an event at the epoch itself (ts 0, valid) is a channel's last too.
            if event.channel is not None and event.ts > last_ts.get(event_channel, -1):
                last_ts[event_channel] = event.ts
            position = record.offset * FACTS_PER_EVENT
            if journeys is not None and ledger.customer is not None:
                journey = journey_of(ledger.customer, event, caused, source, position)
                if journey is not None:
                    journeys.append(journey)
            for fact in caused:
                facts.append((*fact, source, position))
                position += 1
        if handled != marks.get(source, -1):
            marks[source] = handled
            self._read_dirty[partition].add(source)
        return facts, dead


def _internal(exc: Exception) -> str:
    return f"the monitor failed on this record ({type(exc).__name__}: {str(exc)[:200]})"


def _origin(record: Record) -> tuple[str, str | None]:
    return record.source, record.channel


JOURNEYS_SOURCE = "journeys:0"  # the Pipeline's journey stream: one partition
DROPS_SOURCE = "drops:0"


class Pipeline:
    """Both stages in one process, no Kafka: feed records, read metrics at `now` (after
    `advance(now)`, so that the cases dropped by then count). Between the stages, the cases:
    journey steps -> `Cases` -> case facts -> the board. A `ticker` (the alert rules on the
    board, clock = event) is passed the ticks as in the worker; what it makes is returned."""

    def __init__(self, config: EngineConfig | None = None,
                 ticker: Ticker | None = None) -> None:
        self.config = config = config or EngineConfig()
        self.ticker = ticker
        self.intake = Intake(config)
        self.cases = Cases(config.case_timeout_ms, DROPS_SOURCE)
        self.board = Board(config.windows, config.thresholds, config.timezone)
        self.dead: list[DeadLetter] = []
        self._journeys = 0  # journey steps taken: their positions in the journey stream

    def feed(self, records: Iterable[Record], partition: int = 0) -> list:
        journeys: list[JourneyFact] = []
        facts, dead = self.intake.take(partition, records, journeys)
        self.dead.extend(dead)
        for journey in journeys:
            facts += self.cases.apply(journey, JOURNEYS_SOURCE,
                                      journey_position(0, self._journeys))
            self._journeys += 1
        return apply(self.board, facts, self.ticker)

    def advance(self, now: int) -> list:
        """Move the cases' clock to `now` (the clock the metrics are read at): drops."""
        return apply(self.board, self.cases.advance(now), self.ticker)
