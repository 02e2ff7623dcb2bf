"""`ccmon worker`: the Faust shell around the KPI engine.

Two stages, both batch-first:

1. `intake` consumes the input topics (keyed by contact or agent) and runs each batch through
   the partition's `Ledger` (stage one). Facts go to the internal `<app_id>-facts` topic keyed
   by `queue<US>channel`; bad events go to the dead-letter topic with their reason.
2. `aggregate` consumes the facts and updates the partition's `Board` (stage two). Whoever owns
   a facts partition owns its (queue, channel) series and is the only one to export them.

Between them, the cases (metrics.md 1.1): stage one sends the journey steps of contacts with a
customer to `<app_id>-journeys`, partitioned by customer id, so a customer's contacts meet in
one `Cases`; the `cases` agent sends the case facts it makes to the facts topic, and drops cases
on the monitor clock (clock = event: the event clock stage one sends along; wall: every tick of E).

State lives in two Faust tables whose changelogs are written once per batch and per changed
unit (contact, agent, queue live state, minute of samples), never once per event. The engine
objects are the working copy; the tables are their durable log, replayed at assignment.

Exactness across a crash (at-least-once delivery, no transactions):
- facts are awaited until acknowledged *before* the ledger changes they cause are logged, so a
  logged contact state never refers to facts that were lost;
- a replayed input event is either a duplicate of a logged contact state (nothing happens) or
  re-sends facts with the same positions, which the board units ignore (see `queues.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from operator import attrgetter

import faust
import orjson
from aiokafka import ConsumerRecord
from faust.auth import Credentials

from ccmon.alerts.agents_view import partial as agents_partial
from ccmon.alerts.store import StoreUnavailable
from ccmon.alerts.watch import STATE_UNIT, BoardWatch, Outgoing
from ccmon.alerts.watch import tiles as board_tiles
from ccmon.security import KafkaOptions, kafka_options
from ccmon.settings import Settings
from ccmon.stream.cases import Cases, JourneyFact
from ccmon.stream.deadletter import dead_letter_message
from ccmon.stream.engine import (
    JOURNEYS_PER_MESSAGE,
    DeadLetter,
    EngineConfig,
    Intake,
    journey_position,
)
from ccmon.stream.facts import (
    FACTS_PER_MESSAGE,
    Located,
    clock_fact,
    encode,
    key_partition,
    series_partition,
)
from ccmon.stream.facts import apply as apply_facts
from ccmon.stream.facts import decode as decode_facts
from ccmon.stream.queues import Board

from .alerting import Alerting
from .changelog import ChangelogWriter, FencedTable
from .deadletters import (
    DEAD_LETTER_MARK,
    READ_BACK_SECONDS,
    dead_letter_partition,
    written_since,
)
from .fastpath import NOT_HANDLED, BatchApp

log = logging.getLogger("ccmon.worker")

BATCH_MAX = 20_000  # a contact's state is logged once per batch, however many events it had
BATCH_WITHIN = 0.05  # seconds a batch may wait to fill: bounds the latency it adds

TABLES = ("contacts", "queues", "cases")
COMPACTED = {"cleanup.policy": "compact"}  # what Faust gives its changelog topics


def facts_topic(settings: Settings) -> str:
    return f"{settings.app_id}-facts"


def journeys_topic(settings: Settings) -> str:
    return f"{settings.app_id}-journeys"


def journey_partition(customer: str, partitions: int) -> int:
    """Kafka's default partitioning of the customer id as key, as a series' facts."""
    return key_partition(customer.encode(), partitions)


def changelog_topics(settings: Settings) -> list[str]:
    return [f"{settings.app_id}-{table}-changelog" for table in TABLES]


def faust_credentials(security: KafkaOptions) -> Credentials | None:
    """`ccmon.security`'s client options as Faust's `broker_credentials`, which Faust turns
    back into the same aiokafka arguments for its consumer, producers and topic creation."""
    protocol = security["security_protocol"]
    if protocol == "SSL":
        return faust.SSLCredentials(security["ssl_context"])
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        return faust.SASLCredentials(
            username=security["sasl_plain_username"], password=security["sasl_plain_password"],
            ssl_context=security.get("ssl_context"), mechanism=security["sasl_mechanism"])
    return None


def _partition_key(partition: int, name: str) -> bytes:
    # Table keys carry their partition so a partition's state is found again after recovery.
    return f"{partition}/{name}".encode()


class Worker:
    """The Faust app and the engine state of the partitions this process owns."""

    def __init__(self, settings: Settings, partitions: int, alerting: Alerting | None = None,
                 **faust_options: object) -> None:
        self.settings = settings
        self.alerting = alerting
        self.config = EngineConfig.from_settings(settings)
        self.intake = Intake(self.config)
        self.boards: dict[int, Board] = {}
        self._writing: asyncio.Future | None = None  # the latest batch's changelog writes
        self._clock_sent = 0  # the event clock last told to stage two and the cases
        self.cases: dict[int, Cases] = {}  # journeys partition -> its customers
        self._cases_lock = asyncio.Lock()  # a batch and a wall-clock drop log in turn
        self._fact_partitions: dict[tuple[str, str], int] = {}
        self._dead_letter_partitions: int | None = None  # the topic's, read at first need
        self._dead_before: dict[int, set[tuple[str, int]]] = {}
        self.partitions = partitions
        self.kafka_security = kafka_options(settings)
        options: dict[str, object] = {
            "broker": [f"kafka://{server}" for server in settings.bootstrap().split(",")],
            "broker_credentials": faust_credentials(self.kafka_security),
            "store": "memory://",
            "topic_partitions": partitions,
            "processing_guarantee": "at_least_once",
            "consumer_auto_offset_reset": "earliest",
            "stream_buffer_maxsize": 4 * BATCH_MAX,
            "web_enabled": True,
            "web_port": settings.metrics_port,
            "web_bind": settings.bind,
            "web_host": settings.bind,
            "table_standby_replicas": 0,
            "producer_acks": -1,
            "producer_linger_ms": 1,
            "producer_max_batch_size": 512 * 1024,  # changelog writes go as whole batches
            "broker_max_poll_records": BATCH_MAX,
            "consumer_max_fetch_size": 4 * 1024 * 1024,  # per partition: room for big batches
            "broker_session_timeout": settings.session_timeout,
            "consumer_group_instance_id": settings.group_instance_id(),
            "broker_heartbeat_interval": max(0.5, settings.session_timeout / 10),
        }
        options.update(faust_options)
        self.app = app = BatchApp(settings.app_id, **options)
        self.changelog = ChangelogWriter(app)
        channel_topics = settings.channel_topics
        self.topic_channels = {topic: channel for channel, topic in channel_topics.items()}
        self.topic_channels[settings.agents_topic] = None
        self.inputs = app.topic(*self.topic_channels, key_type=bytes, value_type=bytes,
                                key_serializer="raw", value_serializer="raw")
        self.facts = app.topic(facts_topic(settings), key_serializer="raw",
                               value_serializer="raw", internal=True, partitions=partitions)
        self.journeys = app.topic(journeys_topic(settings), key_serializer="raw",
                                  value_serializer="raw", internal=True, partitions=partitions)
        self.contacts, self.queues, self.case_table = (
            self._raw_table(name, partitions) for name in TABLES)
        app.agent(self.inputs, name="intake")(self._no_events)
        for topic in self.topic_channels:
            app.batch_handlers[topic] = self._intake
        app.agent(self.facts, name="aggregate")(self._aggregate)
        app.agent(self.journeys, name="cases")(self._cases)
        self.case_table.on_recover(self._on_cases_recovered)
        if settings.clock == "wall":
            app.task(self._drop_every_second)
        app.on_partitions_revoked.connect(self._on_revoked)
        self.contacts.on_recover(self._on_contacts_recovered)
        self.queues.on_recover(self._on_queues_recovered)
        if alerting is not None:
            app.task(self._every_tick)
            app.task(alerting.publish_forever)

    def _raw_table(self, name: str, partitions: int) -> FencedTable:
        """A table of bytes: the engine encodes its own state (orjson), Faust only logs it."""
        app = self.app
        table = FencedTable(app, name=name, beacon=app.tables.beacon, key_type=bytes,
                            value_type=bytes, partitions=partitions)
        table.key_serializer = table.value_serializer = "raw"  # before its changelog is made
        app.tables.add(table)
        return table

    # -- stage one ---------------------------------------------------------------------------
    @staticmethod
    async def _no_events(stream: faust.StreamT) -> None:
        """The input topics' agent: it subscribes them; their messages take the batch path."""
        async for _ in stream:
            pass

    async def _intake(self, messages: list[ConsumerRecord]) -> asyncio.Future:
        """One fetched batch of one input topic, handed over by the batching consumer."""
        stamp = self.changelog.stamp()
        fresh = {message.partition for message in messages} - self.intake.ledgers.keys()
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
            run_facts, run_dead = self.intake.take_run(partition, f"{topic}:{partition}",
                                                       channel, run, journeys)
            facts += run_facts
            dead += run_dead
            touched.append(partition)
        # Taken before the first await: a rebalance may drop the ledgers while we send.
        changes = {partition: self.intake.take_changes(partition) for partition in touched}
        dead_sent = await self._send_dead_letters(dead)
        sent = [*await self._send_facts(facts), *(sending for _, sending in dead_sent),
                *await self._send_journeys(journeys), *await self._send_clock()]
        previous, self._writing = self._writing, None
        self._writing = asyncio.ensure_future(
            self._log_after(previous, sent, changes, dead_sent, stamp))
        return self._writing

    async def _log_after(self, previous: asyncio.Future | None, sent: list[asyncio.Future],
                         changes: dict[int, dict], dead_sent: list[tuple[int, asyncio.Future]],
                         stamp: bytes) -> None:
        """Log a batch's ledger changes once its facts are acknowledged and the previous
        batch is logged: a logged contact state must never refer to a fact Kafka lacks.
        With them goes where each partition's dead letters got to (see `deadletters`)."""
        if previous is not None:
            await previous
        await asyncio.gather(*sent)
        for partition, sending in dead_sent:
            offset = sending.result().offset
            partition_changes = changes[partition]
            if offset > partition_changes.get(DEAD_LETTER_MARK, -1):
                partition_changes[DEAD_LETTER_MARK] = offset
        await asyncio.gather(*(self._log_changes(self.contacts, partition, partition_changes,
                                                 stamp)
                               for partition, partition_changes in changes.items()))

    def _ensure_ledger(self, partition: int) -> None:
        if partition in self.intake.ledgers:
            return
        self.intake.ledger(partition)
        prefix = f"{partition}/".encode()
        for key, value in list(self.contacts.data.items()):
            if key.startswith(prefix) and value is not None:
                unit = key[len(prefix):].decode()
                if unit != DEAD_LETTER_MARK:
                    self.intake.restore(partition, unit, orjson.loads(value))
        self.intake.dead_before[partition] = self._dead_before.pop(partition, set())

    async def _send_facts(self, facts: list[Located]) -> list[asyncio.Future]:
        """Send a batch's facts to the partitions of their (queue, channel) keys, in batch
        order within each partition: stage two must see a partition's facts in the order
        they happened, so the rules pass each tick on the right state (clock = event)."""
        by_partition: dict[int, list] = defaultdict(list)
        partition_of = self._fact_partitions
        for located in facts:
            series = (located[0], located[1])
            partition = partition_of.get(series)
            if partition is None:
                partition = partition_of[series] = series_partition(*series, self.partitions)
            by_partition[partition].append(located)
        send = self.app.producer.send
        topic = self.facts.get_topic_name()
        return [await send(topic, None, encode(batch[i:i + FACTS_PER_MESSAGE]),
                           partition, None, None)
                for partition, batch in by_partition.items()
                for i in range(0, len(batch), FACTS_PER_MESSAGE)]

    async def _send_journeys(self, journeys: list[JourneyFact]) -> list[asyncio.Future]:
        """Send journey steps to the partitions of their customers, in order. A message is
        `[event clock, [step, ...]]` (see `_cases`)."""
        if not journeys:
            return []
        by_partition: dict[int, list] = defaultdict(list)
        for journey in journeys:
            by_partition[journey_partition(journey.customer, self.partitions)].append(journey)
        send = self.app.producer.send
        topic = self.journeys.get_topic_name()
        clock = self.intake.latest_ts
        return [await send(topic, None, encode([clock, batch[i:i + JOURNEYS_PER_MESSAGE]]),
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
        messages = [(self.facts.get_topic_name(),
                     encode([clock_fact(latest)])),
                    (self.journeys.get_topic_name(), orjson.dumps([latest, []]))]
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

    async def _log_changes(self, table: faust.Table, partition: int, changes: dict,
                           stamp: bytes) -> None:
        """Write changed state units to the table's changelog, and wait until Kafka has them.
        `stamp`: the writer of the batch they come from (see `changelog`). The table's store
        is kept equal to what was logged.
        """
        data = table.data
        records = []
        for name, state in changes.items():
            key = _partition_key(partition, name)
            # Copied: orjson's bytes keep a ~4 KB allocation however short, and the store
            # keeps every value for as long as its unit lives (docs/benchmarks.md, memory).
            value = None if state is None else bytes(memoryview(orjson.dumps(state)))
            records.append((key, value))
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        await self.changelog.write(table, partition, records, stamp)

    # -- cases -------------------------------------------------------------------------------
    async def _cases(self, stream: faust.StreamT) -> None:
        """Journey steps into the partition's `Cases`; the case facts to the facts topic, then
        the state logged (a logged customer never refers to a fact Kafka lacks). A replay makes
        the same facts at the same positions (from the journey message's offset, or a drop's
        moment), which the boards ignore."""
        event_clock = self.settings.clock == "event"
        topic = self.journeys.get_topic_name()
        async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN):
            async with self._cases_lock:
                stamp = self.changelog.stamp()
                facts: list[Located] = []
                touched = set()
                for event in self._still_owned(events, self.journeys):
                    message = event.message
                    cases = self.case_stage(message.partition)
                    clock, steps = orjson.loads(message.value)
                    source = f"{topic}:{message.partition}"
                    for index, step in enumerate(steps):
                        facts += cases.apply(JourneyFact(*step), source,
                                             journey_position(message.offset, index))
                    if event_clock:
                        facts += cases.advance(clock)
                    touched.add(message.partition)
                await self._send_cases_facts(facts, touched, stamp)

    async def _drop_every_second(self) -> None:
        """clock = wall: the cases that come due are dropped at every whole second."""
        while True:
            now = time.time()
            await asyncio.sleep(math.ceil(now) - now + 0.001)
            second = math.floor(time.time()) * 1000
            async with self._cases_lock:
                stamp = self.changelog.stamp()
                facts: list[Located] = []
                touched = set()
                for partition in self._assigned_partitions(self.journeys):
                    cases = self.cases.get(partition)
                    if cases is not None:
                        facts += cases.advance(second)
                        touched.add(partition)
                await self._send_cases_facts(facts, touched, stamp)

    async def _send_cases_facts(self, facts: list[Located], touched: set[int],
                                stamp: bytes) -> None:
        # Taken before the first await: a rebalance may drop the cases meanwhile.
        changes = {partition: self.cases[partition].take_dirty() for partition in touched}
        await asyncio.gather(*await self._send_facts(facts))
        await asyncio.gather(*(self._log_changes(self.case_table, partition, partition_changes,
                                                 stamp)
                               for partition, partition_changes in changes.items()
                               if partition_changes))

    def case_stage(self, partition: int) -> Cases:
        cases = self.cases.get(partition)
        if cases is None:
            cases = self.cases[partition] = Cases(self.config.case_timeout_ms,
                                                  f"drops:{partition}")
            prefix = f"{partition}/".encode()
            for key, value in list(self.case_table.data.items()):
                if key.startswith(prefix) and value is not None:
                    cases.restore(key[len(prefix):].decode(), orjson.loads(value))
        return cases

    async def _on_cases_recovered(self) -> None:
        self._forget_unassigned(self.case_table)
        self._rewrite_overwritten(self.case_table)
        self.cases.clear()

    # -- stage two ---------------------------------------------------------------------------
    async def _aggregate(self, stream: faust.StreamT) -> None:
        alerting = self.alerting
        stepping = alerting is not None and alerting.event_clock and bool(alerting.rules)
        async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN):
            stamp = self.changelog.stamp()
            touched = set()
            for event in self._still_owned(events, self.facts):
                partition = event.message.partition
                board = self.board(partition)
                watch = self.watch(partition) if stepping else None
                facts = decode_facts(event.message.value)
                transitions = apply_facts(board, facts, watch)
                if transitions:
                    alerting.count(transitions)
                touched.add(partition)
            # All taken before the first await: a rebalance may drop the boards meanwhile.
            changes = {partition: self.boards[partition].take_dirty() for partition in touched}
            covered = [self._alert_state(partition, changes[partition]) for partition in touched]
            for partition, partition_changes in changes.items():
                await self._log_changes(self.queues, partition, partition_changes, stamp)
            for entries in covered:
                if entries:
                    alerting.logged(entries)

    def _alert_state(self, partition: int, changes: dict) -> list[Outgoing]:
        """Put the partition's alert state into `changes` if it changed; the transitions it
        covers may be published once `changes` are logged."""
        watch = self.alerting.watches.get(partition) if self.alerting is not None else None
        if watch is None or watch.board is not self.boards.get(partition):
            return []
        state, covered = watch.take_state()
        if state is not None:
            changes[STATE_UNIT] = state
        return covered

    def watch(self, partition: int) -> BoardWatch:
        def stored(unit: str) -> bytes | None:
            return self.queues.data.get(_partition_key(partition, unit))

        return self.alerting.watch(partition, self.board(partition), stored)

    async def _every_tick(self) -> None:
        """At every multiple of E on the wall clock: the rules (clock = wall); at the first
        tick of each wall-clock second: the page's tiles and the partials of its agents view."""
        alerting = self.alerting
        store = alerting.store
        step = alerting.interval_ms
        window = self.settings.windows[0][0]
        views_sent: asyncio.Future | None = None
        viewed = 0  # the wall-clock second the views were last put for
        while True:
            now_ms = time.time() * 1000
            await asyncio.sleep(((now_ms // step + 1) * step - now_ms + 1) / 1000)
            tick = int(time.time() * 1000) // step * step
            second = tick // 1000 * 1000
            views = store is not None and second > viewed
            if alerting.event_clock and not views:
                continue
            stamp = self.changelog.stamp()
            tiles: dict[str, dict] = {}
            agents: dict[str, dict] = {}  # facts partition -> its partial
            for partition in sorted(self._assigned_facts_partitions()):
                board = self.boards.get(partition)
                if board is None:
                    continue
                if not alerting.event_clock:
                    watch = self.watch(partition)
                    alerting.count(watch.evaluate(tick))
                    changes: dict = {}
                    covered = self._alert_state(partition, changes)
                    if changes:
                        await self._log_changes(self.queues, partition, changes, stamp)
                        alerting.logged(covered)
                if views:
                    # clock = event: the partition's own clock (its latest fact, as /metrics
                    # reads it: the rules are past it); none yet before its first fact.
                    board_now = board.latest_ts if alerting.event_clock else tick
                    if board_now:
                        tiles |= board_tiles(board, window, board_now, second)
                        agents[str(partition)] = agents_partial(board, board_now, second)
            if views:
                viewed = second
            # In the background: an unreachable Redis must not hold up the next evaluation.
            if (tiles or agents) and (views_sent is None or views_sent.done()):
                views_sent = asyncio.ensure_future(self._put_views(store, tiles, agents))

    @staticmethod
    async def _put_views(store, tiles: dict[str, dict], agents: dict[str, dict]) -> None:
        with contextlib.suppress(StoreUnavailable):  # said by the publisher
            await store.put_tiles(tiles)
            await store.put_agents(agents)

    def board(self, partition: int) -> Board:
        board = self.boards.get(partition)
        if board is None:
            config = self.config
            board = self.boards[partition] = Board(config.windows, config.thresholds,
                                                   config.timezone)
            prefix = f"{partition}/".encode()
            for key, value in list(self.queues.data.items()):
                if key.startswith(prefix) and value is not None:
                    unit = key[len(prefix):].decode()
                    if unit != STATE_UNIT:  # the partition's alert state: see `watch`
                        board.restore(unit, orjson.loads(value))
        return board

    def _still_owned(self, events: list, topic: faust.TopicT) -> list:
        """The events of a batch whose partitions are still assigned here. Faust's take buffer
        may hand over, after a rebalance, events fetched before it: those of partitions gone
        to another worker are its to apply (it fetches them again), not ours to log."""
        assigned = self._assigned_partitions(topic)
        return [event for event in events if event.message.partition in assigned]

    def _assigned_facts_partitions(self) -> set[int]:
        return self._assigned_partitions(self.facts)

    def _assigned_partitions(self, topic: faust.TopicT) -> set[int]:
        name = topic.get_topic_name()
        return {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == name}

    def owned_boards(self) -> Iterable[Board]:
        """Boards of the facts partitions assigned to this worker and recovered."""
        for partition in self._assigned_facts_partitions():
            board = self.boards.get(partition)
            if board is not None:
                yield board

    async def _on_revoked(self, app: faust.App, revoked: set, **_: object) -> None:
        """Rebalancing is eager: every partition is revoked, also those we get back. Let the
        pending changelog writes finish, so that the tables hold everything the engine objects
        do, then drop those objects: they are rebuilt from the tables after recovery."""
        if self._writing is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._writing),
                                       self.settings.session_timeout / 2)
        with contextlib.suppress(Exception):  # the cases' batch in flight, likewise
            await asyncio.wait_for(self._cases_lock.acquire(), self.settings.session_timeout / 2)
            self._cases_lock.release()
        self.boards.clear()
        self.cases.clear()
        self.intake.drop()
        if self.alerting is not None:
            self.alerting.watches.clear()

    async def _on_contacts_recovered(self) -> None:
        self._forget_unassigned(self.contacts)
        self._rewrite_overwritten(self.contacts)

    async def _read_back_dead_letters(self, partitions: set[int]) -> None:
        """Before a partition's first record after an assignment: which records a previous
        owner dead-lettered after its last logged state (see `deadletters`)."""
        topic = self.settings.deadletter_topic
        if self._dead_letter_partitions is None:  # the topic's own count: it may differ
            producer = self.app.producer._ensure_producer()
            try:  # bounded: the producer's own wait is its request timeout (20 min in Faust)
                self._dead_letter_partitions = len(await asyncio.wait_for(
                    producer.partitions_for(topic), READ_BACK_SECONDS))
            except Exception as exc:  # any failure: the configured count
                log.warning("could not read the partitions of %s (%s); using %d", topic,
                            exc or type(exc).__name__, self.partitions)
                self._dead_letter_partitions = self.partitions

        async def read_back(partition: int) -> None:
            mark = self.contacts.data.get(_partition_key(partition, DEAD_LETTER_MARK))
            self._dead_before[partition] = await written_since(
                self.settings.bootstrap(), topic, self._dead_letter_partitions, partition,
                None if mark is None else orjson.loads(mark), self.kafka_security)

        await asyncio.gather(*map(read_back, partitions))

    async def _on_queues_recovered(self) -> None:
        self._forget_unassigned(self.queues)
        self._rewrite_overwritten(self.queues)
        # Build the boards now, not at their first fact: a quiet queue is still exported.
        self.boards.clear()
        for partition in self._assigned_facts_partitions():
            self.board(partition)
            if self.alerting is not None:
                self.watch(partition)

    def _rewrite_overwritten(self, table: FencedTable) -> None:
        """The keys whose last record recovery skipped as a zombie's (see `changelog`), logged
        again with the value recovered, so that the log's last record says it too."""
        self.changelog.rewrite(table, self._assigned_partitions(table.changelog_topic))

    def _forget_unassigned(self, table: faust.Table) -> None:
        """Drop the keys of partitions that went to another worker: if one comes back, its
        recovery replays the whole changelog, but the tombstones in it may be compacted away."""
        assigned = {tp.partition for tp in self.app.assignor.assigned_actives()
                    if tp.topic == table.changelog_topic.get_topic_name()}
        data = table.data
        for key in [key for key in data if int(key.partition(b"/")[0]) not in assigned]:
            del data[key]

    def consumer_lag(self) -> Iterator[tuple[str, int, int]]:
        """(topic, partition, records behind) for the input and facts partitions assigned
        here: the end offset last seen by the consumer less the next offset to read."""
        consumer = self.app.consumer
        read = consumer._read_offset
        watched = {*self.topic_channels, self.facts.get_topic_name(),
                   self.journeys.get_topic_name()}
        for tp in sorted(self.app.assignor.assigned_actives()):
            if tp.topic not in watched:
                continue
            end, last = consumer.highwater(tp), read.get(tp)
            if end is not None and last is not None:
                yield tp.topic, tp.partition, max(0, end - last - 1)

    def alerting_figures(self) -> tuple[list, Counter, int]:
        """(alerts firing in the owned partitions, transitions by (rule, status) in this
        process, transitions not yet in the store) for /metrics."""
        if self.alerting is None:
            return [], Counter(), 0
        owned = self._assigned_facts_partitions()
        return (list(self.alerting.firing(owned)), self.alerting.transitions,
                self.alerting.unpublished())

    def event_clock(self) -> int:
        """The largest event ts this worker has seen, in ms (metrics.md, clock = event)."""
        return max([self.intake.latest_ts, *(b.latest_ts for b in self.boards.values())])

