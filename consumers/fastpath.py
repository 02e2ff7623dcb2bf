"""A batch path through Faust's consumer for the topics the worker consumes.

Faust hands each fetched message to its stream through two new tasks (`wait_first` on the
callback and on the flow-suspension event), an `Event` and a queue: about 150 µs a message
here, which caps a worker near 5k events/s however cheap the processing is. For topics that
have a batch handler, this consumer instead hands every `getmany` round to the handler as
one list and acknowledges the messages once the handler's writes are acknowledged by Kafka,
so Faust's own commit logic (only acked offsets are committed, after a producer flush)
applies unchanged. Batches are pipelined: the next one is processed while Kafka acknowledges
the writes of the previous ones. The worker gives every topic it consumes a handler but the
changelogs, which take Faust's usual path (its recovery reads them).

Faust's stream path also loses events: its recovery resumes the stream partitions, seeks them
to their committed offsets, then resumes the flow, and `flow_control.resume()` clears every
stream queue, with the events its fetcher put there while the seek ran. The batch path has no
queue to clear: a batch is handled as it is fetched.

The topics must still be subscribed by an agent: that is what makes Faust subscribe to them,
assign them co-partitioned with the tables, and treat them as acking topics.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from faust.types.tuples import ack_lock
from mode import Service
from mode.utils.futures import notify

log = logging.getLogger("ccmon.worker")

# A handler processes a batch (aiokafka `ConsumerRecord`s of one topic: `.topic`, `.partition`,
# `.offset`, `.key`, `.value`) and returns what is left to wait for (e.g. broker acks) before
# the batch may be acknowledged, or None. The consumer fetches and hands over the next batches
# meanwhile, keeping at most IN_FLIGHT batches a topic unacknowledged. A handler that finds a
# rebalance began while it waited returns NOT_HANDLED: the batch is not acknowledged, and its
# records are fetched again, by whoever owns them, from the committed offsets.
NOT_HANDLED: Any = object()
BatchHandler = Callable[[list[Any]], Awaitable[Awaitable[None] | None]]
IN_FLIGHT = 3  # per topic with a handler: a round hands over a batch of each
BATCH_MAX = 20_000  # records per batch: a contact's state is logged once per batch
RESEEK_AFTER_QUIET = 10.0  # seconds without a batch before the partitions are sought again


class BatchingConsumer(faust_aiokafka.Consumer):
    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - Faust loop
        """Faust's fetch loop, with the batch path: records of a batch topic go to its handler
        as they came from aiokafka (no Faust `Message` each), a partition's run at a time."""
        handlers: Mapping[str, BatchHandler] = getattr(self.app, "batch_handlers", {})
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
        # (what is left to wait for, the records, the generation they were handed over in)
        in_flight: deque[tuple[asyncio.Future | None, list[Any], int]] = deque()
        quiet_since = time.monotonic()
        limit = IN_FLIGHT * max(1, len(handlers))
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                await self.sleep(0)
                if self.should_stop:
                    break
                batches = await self._fetch(handlers)
                if batches or in_flight:
                    quiet_since = time.monotonic()
                elif time.monotonic() - quiet_since > RESEEK_AFTER_QUIET:
                    await self._reseek()
                    quiet_since = time.monotonic()
                for topic, records in batches.items():
                    generation = self.app.consumer_generation_id
                    rest = await handlers[topic](records)
                    if rest is NOT_HANDLED:
                        break  # a rebalance: the round's other batches are fetched again too
                    in_flight.append((rest and asyncio.ensure_future(rest), records, generation))
                while in_flight and (len(in_flight) > limit or not in_flight[0][0]
                                     or in_flight[0][0].done()):
                    rest, records, generation = in_flight.popleft()
                    if rest is not None:
                        await rest  # raises if the batch's writes failed: never ack those
                    if self.app.consumer_generation_id == generation:
                        self.ack_batch(records)
                    else:  # a rebalance came between: see docs/design.md, "No acknowledgement
                        # across a rebalance"
                        log.info("%d records of %s handed over in generation %d are not "
                                 "acknowledged: a rebalance came between", len(records),
                                 records[0].topic, generation)
                if self._commit_every is not None and self._n_acked >= self._commit_every:
                    self._n_acked = 0
                    await self.commit()
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise

    async def _reseek(self) -> None:
        """Seek the assigned partitions to their committed offsets again. Now and then, after
        a recovery, Faust's consumer fetches nothing from resumed partitions (measured: about
        one restart in ten in the kill -9 tests, one in two with a pause in an `on_recover`
        callback), though they hold records; a seek starts their fetching again. Everything
        handed over is acknowledged first, so nothing is read twice but what the read marks
        and the facts' positions already make harmless."""
        if not self.flow_active or self.app.in_recovery:
            # Said, as it cannot cure a stall then: what a stalled worker's log should show.
            log.info("no batch for %g s and not sought again: flow active %s, in recovery %s",
                     RESEEK_AFTER_QUIET, self.flow_active, self.app.in_recovery)
            return
        with contextlib.suppress(Exception):  # a rebalance meanwhile: recovery seeks anyway
            await self.perform_seek()

    async def _fetch(self, handlers: Mapping[str, BatchHandler]) -> dict[str, list[Any]]:
        """One `getmany` round: other topics' messages go through Faust's callback now; the
        batch topics' records are returned per topic. Empty if a rebalance began meanwhile:
        what was fetched is fetched again once it is done."""
        records, active = await self._wait_next_records(1.0)
        batches: dict[str, list[Any]] = {}
        if records is None or self.should_stop:
            return batches
        generation = self.app.consumer_generation_id
        read_offset = self._read_offset
        for tp, tp_records in records.items():
            if not self.flow_active or self.app.consumer_generation_id != generation:
                return {}
            if not (active is None or tp in active or tp in self._buffered_partitions):
                continue
            self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
            last = read_offset[tp]
            if last is not None and tp_records[0].offset < last:
                # re-delivered after a seek: already handled
                tp_records = [record for record in tp_records if record.offset >= last]
                if not tp_records:
                    continue
            if tp.topic in handlers:
                await self._mark_gaps(tp, last, tp_records)
                batches.setdefault(tp.topic, []).extend(tp_records)
                read_offset[tp] = tp_records[-1].offset
            else:
                for record in tp_records:
                    message = self._to_message(tp, record)
                    await self.wait_first(self.callback(message), self.suspend_flow.wait())
                    read_offset[tp] = record.offset
        if not self.flow_active or self.app.consumer_generation_id != generation:
            return {}
        return batches

    async def _mark_gaps(self, tp: TP, last: int | None, records: list[Any]) -> None:
        """Tell Faust's commit logic about offsets that hold no record (compaction,
        transaction markers), as its own loop does, so commits can pass them."""
        if not self.app.topics.acks_enabled_for(tp.topic):
            return
        if last and records[0].offset - last > 1:
            await self._add_gap(tp, last + 1, records[0].offset)
        if records[-1].offset - records[0].offset + 1 != len(records):  # rare: find them
            for before, after in itertools.pairwise(records):
                if after.offset - before.offset > 1:
                    await self._add_gap(tp, before.offset + 1, after.offset)

    def ack_batch(self, records: list[Any]) -> None:
        """Faust's `ack` for a whole batch of one topic: the same bookkeeping (the offsets its
        commit logic reads), without its per-message lock, checks and notification."""
        if not records or not self.app.topics.acks_enabled_for(records[0].topic):
            return
        assigned = self.assignment()
        by_tp: dict[TP, list[int]] = {}
        for record in records:
            offsets = by_tp.get(record.partition)
            if offsets is None:
                offsets = by_tp[record.partition] = []
            offsets.append(record.offset)
        topic = records[0].topic
        with ack_lock:
            for partition, offsets in by_tp.items():
                tp = TP(topic, partition)
                if tp not in assigned:  # revoked meanwhile: its new owner reads them again
                    continue
                committed = self._committed_offset[tp]
                index = self._acked_index[tp]
                fresh = [offset for offset in offsets
                         if (committed is None or offset >= committed) and offset not in index]
                index.update(fresh)
                self._acked[tp].extend(fresh)
                self._n_acked += len(fresh)
            notify(self._waiting_for_ack)


class BatchingTransport(faust_aiokafka.Transport):
    Consumer = BatchingConsumer


class BatchApp(faust.App):
    """A Faust app whose consumer hands `batch_handlers` topics over in batches."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batch_handlers: dict[str, BatchHandler] = {}

    def _new_transport(self) -> BatchingTransport:
        return BatchingTransport(self.conf.broker_consumer, self)

    def kafka_producer(self) -> Any:
        """aiokafka's producer under Faust's wrapper (which has no batch API)."""
        return self.producer._ensure_producer()

    def assigned(self, topic: str) -> set[int]:
        """The partitions of `topic` assigned to this worker."""
        return {tp.partition for tp in self.assignor.assigned_actives() if tp.topic == topic}

    def records_behind(self, topics: set[str]) -> list[tuple[str, int, int]]:
        """(topic, partition, records behind) of the assigned partitions of `topics`: the end
        offset last seen by the consumer less the next offset to read."""
        consumer = self.consumer
        read = consumer._read_offset
        behind = []
        for tp in sorted(self.assignor.assigned_actives()):
            if tp.topic in topics:
                end, last = consumer.highwater(tp), read.get(tp)
                if end is not None and last is not None:
                    behind.append((tp.topic, tp.partition, max(0, end - last - 1)))
        return behind

