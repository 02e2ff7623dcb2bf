"""A batch path through Faust's consumer for the high-volume input topics.

Faust hands each fetched message to its stream through two new tasks (`wait_first` on the
callback and on the flow-suspension event), an `Event` and a queue: about 150 µs a message
here, which caps a worker near 5k events/s however cheap the processing is. For topics that
have a batch handler, this consumer instead hands every `getmany` round to the handler as
one list and acknowledges the messages once the handler's writes are acknowledged by Kafka,
so Faust's own commit logic (only acked offsets are committed, after a producer flush)
applies unchanged. Batches are pipelined: the next one is processed while Kafka acknowledges
the writes of the previous ones. Every other
topic (changelogs during recovery, the facts topic) takes Faust's usual path.

The topics must still be subscribed by an agent: that is what makes Faust subscribe to them,
assign them co-partitioned with the tables, and treat them as acking topics.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, cast

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message
from faust.types.tuples import ack_lock
from mode import Service
from mode.utils.futures import notify

# A handler processes a batch and returns what is left to wait for (e.g. broker acks) before
# the batch may be acknowledged, or None. The consumer fetches and hands over the next batches
# meanwhile, keeping at most IN_FLIGHT batches unacknowledged.
BatchHandler = Callable[[list[Message]], Awaitable[Awaitable[None] | None]]
IN_FLIGHT = 3


class BatchingConsumer(faust_aiokafka.Consumer):
    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        """Faust's `getmany` less its per-record work (end-offset tracking, round-robin
        across partitions): per partition here, once per fetch."""
        records, active = await self._wait_next_records(timeout)
        if records is None or self.should_stop:
            return
        generation = self.app.consumer_generation_id
        to_message = self._to_message
        for tp, tp_records in records.items():
            if not self.flow_active or self.app.consumer_generation_id != generation:
                break  # a rebalance began: what is not yet yielded is fetched again later
            if active is None or tp in active or tp in self._buffered_partitions:
                self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                for record in tp_records:
                    yield tp, to_message(tp, record)

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - Faust loop
        handlers: Mapping[str, BatchHandler] = getattr(self.app, "batch_handlers", {})
        callback = self.callback
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
        read_offset = self._read_offset
        acks_enabled_for = self.app.topics.acks_enabled_for
        in_flight: deque[tuple[asyncio.Task | None, list[Message]]] = deque()
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                batches: dict[str, list[Message]] = {}
                await self.sleep(0)
                if self.should_stop:
                    break
                async for tp, message in self.getmany(timeout=1.0):
                    offset = message.offset
                    last = read_offset[tp]
                    if last is not None and offset < last:
                        continue  # re-delivered after a seek: already handled
                    if last and offset - last > 1 and acks_enabled_for(message.topic):
                        await self._add_gap(tp, last + 1, offset)  # so commits pass the gap
                    if message.topic in handlers:
                        batches.setdefault(message.topic, []).append(message)
                    else:
                        await self.wait_first(callback(message), self.suspend_flow.wait())
                    read_offset[tp] = offset
                for topic, messages in batches.items():
                    if not self.flow_active or \
                            messages[0].generation_id != self.app.consumer_generation_id:
                        break  # a rebalance began: these are fetched again once it is done
                    rest = await handlers[topic](messages)
                    in_flight.append((rest and asyncio.ensure_future(rest), messages))
                while in_flight and (len(in_flight) > IN_FLIGHT or not in_flight[0][0]
                                     or in_flight[0][0].done()):
                    rest, messages = in_flight.popleft()
                    if rest is not None:
                        await rest  # raises if the batch's writes failed: never ack those
                    self.ack_batch(messages)
                if self._commit_every is not None and self._n_acked >= self._commit_every:
                    self._n_acked = 0
                    await self.commit()
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise


    def ack_batch(self, messages: list[Message]) -> None:
        """Faust's `ack` for a whole batch of one topic: the same bookkeeping (the offsets its
        commit logic reads), without its per-message lock, checks and notification."""
        if not messages or not self.app.topics.acks_enabled_for(messages[0].topic):
            return
        by_tp: dict[TP, list[int]] = {}
        for message in messages:
            by_tp.setdefault(message.tp, []).append(message.offset)
        with ack_lock:
            for tp, offsets in by_tp.items():
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

