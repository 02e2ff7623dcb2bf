"""Stage one in the worker: each fetched batch of an input topic through the partition's
`Ledger` (`stream.engine.Intake`); facts, journey steps, the event clock and dead letters out
to Kafka; the ledger changes logged once Kafka has acknowledged what they refer to.

Exactness across a crash (at-least-once delivery, no transactions): facts are awaited until
acknowledged *before* the ledger changes they cause are logged, so a logged contact state never
refers to facts that were lost; a replayed input event is either a duplicate of a logged
contact state (nothing happens) or re-sends facts with the same positions, which the board
units ignore (see `stream/queues.py`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import defaultdict
from operator import attrgetter

import faust
import orjson
from aiokafka import ConsumerRecord

from ccmon.security import KafkaOptions
from ccmon.settings import Settings
from ccmon.stream.cases import JourneyFact
from ccmon.stream.deadletter import dead_letter_message
from ccmon.stream.engine import JOURNEYS_PER_MESSAGE, DeadLetter, Intake
from ccmon.stream.facts import Located, clock_fact, encode, key_partition

from .changelog import ChangelogWriter, InTurn, partition_key, partition_units
from .deadletters import (
    DEAD_LETTER_MARK,
    READ_BACK_SECONDS,
    dead_letter_partition,
    written_since,
)
from .facts_out import FactSender
from .fastpath import NOT_HANDLED, BatchApp

log = logging.getLogger("ccmon.worker")


def journey_partition(customer: str, partitions: int) -> int:
    """Kafka's default partitioning of the customer id as key, as a series' facts."""
    return key_partition(customer.encode(), partitions)


class IntakeStage:
    def __init__(self, app: BatchApp, settings: Settings, intake: Intake, table: faust.Table,
                 changelog: ChangelogWriter, facts: FactSender, journeys_topic: str,
                 topic_channels: dict[str, str | None], kafka_security: KafkaOptions) -> None:
        self.app = app
        self.settings = settings
        self.intake = intake
        self.table = table  # contacts: the ledgers' changelog
        self.changelog = changelog
        self.facts = facts
        self.journeys_topic = journeys_topic
        self.topic_channels = topic_channels
        self.kafka_security = kafka_security
        self.partitions = facts.partitions
        self.logging = InTurn()  # the batches' ledger changes, logged in turn
        self._clock_sent = 0  # the event clock last told to stage two and the cases
        self._dead_letter_partitions: int | None = None  # the topic's, read at first need
        self._dead_before: dict[int, set[tuple[str, int]]] = {}

    async def take(self, messages: list[ConsumerRecord]) -> asyncio.Future:
        """One fetched batch of one input topic, handed over by the batching consumer."""
        stamp = self.changelog.stamp()
        intake = self.intake
        fresh = {message.partition for message in messages} - intake.ledgers.keys()
        if fresh:
            # Awaited here, in the batch path, not in the tables' recovery callbacks: an await
            # there stalls Faust's resumption of the input partitions now and then.
            generation = self.app.consumer_generation_id
            await self._read_back_dead_letters(fresh)
            if self.app.consumer_generation_id != generation:
                return NOT_HANDLED
        topic = messages[0].topic
        channel = self.topic_channels.get(topic)
        facts: list[Located] = []
        dead: list[DeadLetter] = []
        journeys: list[JourneyFact] = []
        touched = []
        # The consumer hands a fetch over a partition's run at a time.
        for partition, run in itertools.groupby(messages, attrgetter("partition")):
            self._ensure_ledger(partition)
            run_facts, run_dead = intake.take_run(partition, f"{topic}:{partition}", channel,
                                                  run, journeys)
            facts += run_facts
            dead += run_dead
            touched.append(partition)
        # Taken before the first await: a rebalance may drop the ledgers while we send.
        changes = {partition: intake.take_changes(partition) for partition in touched}
        dead_sent = await self._send_dead_letters(dead)
        sent = [*await self.facts.send(facts), *(sending for _, sending in dead_sent),
                *await self._send_journeys(journeys), *await self._send_clock()]
        return self.logging.then(self._log_once_sent(sent, changes, dead_sent, stamp))

    async def _log_once_sent(self, sent: list[asyncio.Future], changes: dict[int, dict],
                             dead_sent: list[tuple[int, asyncio.Future]], stamp: bytes) -> None:
        """Log a batch's ledger changes once its facts are acknowledged (and, `InTurn`, the
        previous batch is logged): a logged contact state must never refer to a fact Kafka
        lacks. With them goes where each partition's dead letters got to (see
        `deadletters`)."""
        await asyncio.gather(*sent)
        for partition, sending in dead_sent:
            offset = sending.result().offset
            partition_changes = changes[partition]
            if offset > partition_changes.get(DEAD_LETTER_MARK, -1):
                partition_changes[DEAD_LETTER_MARK] = offset
        await asyncio.gather(*(self.changelog.log_changes(self.table, partition,
                                                          partition_changes, stamp)
                               for partition, partition_changes in changes.items()))

    def _ensure_ledger(self, partition: int) -> None:
        intake = self.intake
        if partition in intake.ledgers:
            return
        intake.ledger(partition)
        for unit, state in partition_units(self.table, partition):
            if unit != DEAD_LETTER_MARK:
                intake.restore(partition, unit, state)
        intake.dead_before[partition] = self._dead_before.pop(partition, set())

    async def _send_journeys(self, journeys: list[JourneyFact]) -> list[asyncio.Future]:
        """Send journey steps to the partitions of their customers, in order, as
        `[event clock, [step, ...]]` (see `cases`)."""
        by_partition: dict[int, list] = defaultdict(list)
        for journey in journeys:
            by_partition[journey_partition(journey.customer, self.partitions)].append(journey)
        send = self.app.producer.send
        clock = self.intake.latest_ts
        return [await send(self.journeys_topic, None,
                           encode([clock, batch[i:i + JOURNEYS_PER_MESSAGE]]),
                           partition, None, None)
                for partition, batch in by_partition.items()
                for i in range(0, len(batch), JOURNEYS_PER_MESSAGE)]

    async def _send_clock(self) -> list[asyncio.Future]:
        """Tell every facts partition (see queues.CLOCK) and every journeys partition (the
        cases drop on it) how far event time has got."""
        latest = self.intake.latest_ts
        if latest <= self._clock_sent:
            return []
        self._clock_sent = latest
        send = self.app.producer.send
        messages = [(self.facts.topic, encode([clock_fact(latest)])),
                    (self.journeys_topic, encode([latest, []]))]
        return [await send(topic, None, value, partition, None, None)
                for topic, value in messages for partition in range(self.partitions)]

    async def _send_dead_letters(self, dead: list[DeadLetter]
                                 ) -> list[tuple[int, asyncio.Future]]:
        """Send dead letters, each to the dead-letter partition of its input partition number;
        (that number, the send's future) for each."""
        producer = self.app.producer
        topic = self.settings.deadletter_topic
        pending = []
        for letter in dead:
            partition = int(letter.source.rpartition(":")[2])
            key, value, headers = dead_letter_message(letter)
            target = dead_letter_partition(partition, self._dead_letter_partitions)
            pending.append((partition, await producer.send(topic, key, value, target, None,
                                                           headers)))
        return pending

    async def _read_back_dead_letters(self, partitions: set[int]) -> None:
        """Before a partition's first record after an assignment: which records a previous
        owner dead-lettered after its last logged state (see `deadletters`)."""
        topic = self.settings.deadletter_topic
        if self._dead_letter_partitions is None:  # the topic's own count: it may differ
            producer = self.app.kafka_producer()
            try:  # bounded: the producer's own wait is its request timeout (20 min in Faust)
                self._dead_letter_partitions = len(await asyncio.wait_for(
                    producer.partitions_for(topic), READ_BACK_SECONDS))
            except Exception as exc:  # any failure: the configured count
                log.warning("could not read the partitions of %s (%s); using %d", topic,
                            exc or type(exc).__name__, self.partitions)
                self._dead_letter_partitions = self.partitions

        async def read_back(partition: int) -> None:
            mark = self.table.data.get(partition_key(partition, DEAD_LETTER_MARK))
            self._dead_before[partition] = await written_since(
                self.settings.bootstrap(), topic, self._dead_letter_partitions, partition,
                None if mark is None else orjson.loads(mark), self.kafka_security)

        await asyncio.gather(*map(read_back, partitions))

    async def settle(self, seconds: float) -> None:
        """Let the pending changelog writes finish (a rebalance began), for at most `seconds`."""
        await self.logging.settle(seconds)

    def drop(self) -> None:
        self.intake.drop()
