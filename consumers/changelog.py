"""The tables' changelogs: written in whole record batches, each record naming its writer, and
recovered so that a late write of a worker that lost its partitions changes nothing.

The fence. A worker stalled past its session (a GC pause, a starved loop, SIGSTOP) learns it
lost its partitions only at its next heartbeat; meanwhile it may finish a batch and log state
built before the stall, after the new owner has logged newer state for the same units. Read
back in log order, the late records would win, and the facts the new owner applied in between
are committed past: never replayed. Kafka fences such a zombie only in transactions, so each
record carries its writer in a header: the consumer generation its batch began in, then the
writing process's start time (a static member replaced while its old process still runs
rejoins in the same generation). Recovery applies, per key, only records of a writer at least
as new as the newest it applied or wrote itself (a partition kept across a rebalance is read
only from where the last recovery stopped): a late record of an older writer is skipped. So
that the log
says the same (compaction keeps a key's last record, which may be the late one), the new
owner writes the keys whose last record was skipped again, before its own new writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from collections import defaultdict
from collections.abc import Coroutine, Iterable
from typing import Any

import faust
import orjson

log = logging.getLogger("ccmon.worker")
WRITER = "ccmon-writer"  # the header naming a record's writer
_STAMP = struct.Struct(">QQ")
UNSTAMPED = b""  # records of earlier versions: older than any writer


def partition_key(partition: int, name: str) -> bytes:
    # Table keys carry their partition so a partition's state is found again after recovery.
    return f"{partition}/{name}".encode()


def partition_units(table: faust.Table, partition: int) -> Iterable[tuple[str, object]]:
    """(unit name, decoded state) of one partition's keys in the table's store."""
    prefix = f"{partition}/".encode()
    for key, value in list(table.data.items()):
        if key.startswith(prefix) and value is not None:
            yield key[len(prefix):].decode(), orjson.loads(value)


def writer_stamp(generation: int, started_ms: int) -> bytes:
    """A writer as bytes that sort as (generation, start time) do: compared without decoding."""
    return _STAMP.pack(generation + 2**63, started_ms)


def stamp_of(headers: Iterable[tuple[str, bytes]] | None) -> bytes:
    for name, value in headers or ():
        if name == WRITER:
            return value
    return UNSTAMPED


class FencedTable(faust.Table):
    """A table of bytes whose recovery honours the writers' stamps (see the module's text).

    `stamps` holds the writer of each key's value in the store (or of its deletion): what
    recovery read, and what this worker logged since. Faust's recovery of a partition kept
    across a rebalance reads its changelog only from where the last one stopped, so a late
    record there must be weighed against the writes before, ours included.

    `overwritten` holds, per partition, the keys whose last record recovery skipped: the
    worker logs their recovered value again (`ChangelogWriter.rewrite`).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stamps: dict[bytes, bytes] = {}
        # One bytes object per writer, shared by its keys: 35 B a key instead of 84 (a stamp
        # read from a header is a fresh object per record).
        self._writers: dict[bytes, bytes] = {}
        self.overwritten: dict[int, set[bytes]] = defaultdict(set)

    def apply_changelog_batch(self, batch: Iterable[Any]) -> None:
        data = self.data.data  # the memory store's dict: records in log order, one at a time
        stamps, writers = self.stamps, self._writers
        for event in batch:
            message = event.message
            key, value = message.key, message.value
            stamp = stamp_of(message.headers)
            stamp = writers.setdefault(stamp, stamp)
            # An unstamped record (an earlier version's worker, in a rolling upgrade) applies
            # as it always did: only stamped writers are fenced.
            if stamp and stamp < stamps.get(key, UNSTAMPED):
                self.overwritten[message.partition].add(key)
                continue
            stamps[key] = stamp
            self.overwritten[message.partition].discard(key)
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value

    def take_overwritten(self, assigned: set[int]
                         ) -> dict[int, list[tuple[bytes, bytes | None]]]:
        """After recovery: per assigned partition, the keys to log again with their recovered
        values (None: deleted). Forgets the stamps of keys no longer in the store (deleted,
        or of partitions gone elsewhere, which are read afresh if they come back): they are
        bounded by the store, not by history. A late record for a key deleted before the
        recovery before last may then apply: that worker was stalled through two
        rebalances."""
        data = self.data.data
        overwritten = {partition: [(key, data.get(key)) for key in sorted(keys)]
                       for partition, keys in self.overwritten.items()
                       if keys and partition in assigned}
        self.overwritten.clear()
        self.stamps = {key: stamp for key, stamp in self.stamps.items() if key in data}
        self._writers = {stamp: stamp for stamp in self.stamps.values()}
        return overwritten


class InTurn:
    """Logging that must happen in the order its batches came, each piece after the one
    before (stage one's and the cases' changes, logged once the facts they refer to are
    acknowledged)."""

    def __init__(self) -> None:
        self.latest: asyncio.Future | None = None

    def then(self, work: Coroutine[Any, Any, None]) -> asyncio.Future:
        """Run `work` once the previous work is done; its future."""
        previous = self.latest

        async def in_turn() -> None:
            if previous is not None:
                try:
                    await previous
                except BaseException:
                    work.close()  # never started: nothing to wait for
                    raise
            await work

        self.latest = asyncio.ensure_future(in_turn())
        return self.latest

    async def settle(self, seconds: float) -> None:
        """Let the work handed in so far finish (a rebalance began), for at most `seconds`."""
        if self.latest is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self.latest), seconds)


class ChangelogWriter:
    """Writes tables' records straight to their changelogs, as whole record batches (Faust's
    per-message `send_changelog` costs more than the engine's work for an event), stamped."""

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self.started_ms = int(time.time() * 1000)
        self._rewriting: asyncio.Future | None = None

    def stamp(self) -> bytes:
        """The writer of a batch that begins now: stamp its records with this, taken before
        the batch's first await, not when they are written (by then it may be a zombie)."""
        return writer_stamp(self.app.consumer_generation_id, self.started_ms)

    def rewrite(self, table: FencedTable, assigned: set[int]) -> None:
        """Right after `table`'s recovery: log its overwritten keys of the `assigned` changelog
        partitions again, in the background (an await in a recovery callback stalls Faust),
        ahead of every later write."""
        overwritten = table.take_overwritten(assigned)
        if not overwritten:
            return
        stamp, previous = self.stamp(), self._rewriting
        for records in overwritten.values():
            for key, _ in records:
                table.stamps[key] = stamp
        topic = table.changelog_topic.get_topic_name()
        log.warning("%s: %d records written late by a worker that had lost their partitions"
                    " were skipped; their keys are logged again",
                    topic, sum(map(len, overwritten.values())))

        async def write() -> None:
            if previous is not None:
                await previous
            await asyncio.gather(*[sending for partition, records in overwritten.items()
                                   for sending in await self._send(topic, partition, records,
                                                                   stamp)])

        self._rewriting = asyncio.ensure_future(write())

    async def log_changes(self, table: FencedTable, partition: int, changes: dict,
                          stamp: bytes) -> None:
        """Write changed state units (name -> state, None: gone) to the table's changelog and
        wait until Kafka has them. `stamp`: the writer of the batch they come from. The
        table's store is kept equal to what was logged."""
        await asyncio.gather(*await self.send_changes(table, partition, changes, stamp))

    async def send_changes(self, table: FencedTable, partition: int, changes: dict,
                           stamp: bytes) -> list[asyncio.Future]:
        """`log_changes` up to the hand-over to the producer (so records keep the order of
        the calls); the futures of Kafka's acknowledgements."""
        data = table.data
        stamps = table.stamps
        records = []
        for name, state in changes.items():
            key = partition_key(partition, name)
            # Copied: orjson's bytes keep a ~4 KB allocation however short, and the store
            # keeps every value for as long as its unit lives (docs/benchmarks.md, memory).
            value = None if state is None else bytes(memoryview(orjson.dumps(state)))
            records.append((key, value))
            stamps[key] = stamp
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        if self._rewriting is not None:
            # Failed (a rebalance meanwhile): the keys stay overwritten, the next recovery
            # finds them again.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._rewriting)
            self._rewriting = None
        return await self._send(table.changelog_topic.get_topic_name(), partition, records,
                                stamp)

    async def _send(self, topic: str, partition: int,
                    records: list[tuple[bytes, bytes | None]], stamp: bytes
                    ) -> list[asyncio.Future]:
        """Hand records to the producer in as few record batches as they fit."""
        producer = self.app.kafka_producer()
        headers = [(WRITER, stamp)]
        pending = []
        batch = None
        for key, value in records:
            if batch is not None and batch.append(key=key, value=value, timestamp=None,
                                                  headers=headers):
                continue
            if batch is not None:
                pending.append(await producer.send_batch(batch, topic, partition=partition))
            batch = producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                raise ValueError(f"a record for {topic} is larger than a batch ({len(value)} B)")
        if batch is not None:
            pending.append(await producer.send_batch(batch, topic, partition=partition))
        return pending
