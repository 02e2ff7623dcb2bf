"""The dead-letter topic, as the worker writes and reads it back.

Each input partition number writes its dead letters to one dead-letter partition (its number
modulo the topic's partitions), and its logged state remembers the offset of the last one
Kafka acknowledged. A worker that takes a partition over reads that dead-letter partition
from there to its end: what it finds were written by a previous owner that crashed before
logging them, and must not be written again when their input is re-read (events.md 1.1:
each input dead-lettered exactly once, also across restarts).
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition

log = logging.getLogger("ccmon.worker")

READ_BACK_SECONDS = 30.0

# The contacts-table unit holding a partition's last acknowledged dead-letter offset (never a
# contact's, an agent's or a read mark's key).
DEAD_LETTER_MARK = "\x1fdeadletters"


def dead_letter_partition(partition: int, partitions: int) -> int:
    return partition % partitions


def source_of(header: bytes) -> tuple[str, int] | None:
    """`ccmon-source` (`topic:partition:offset`) -> (`topic:partition`, offset)."""
    source, _, offset = header.decode(errors="replace").rpartition(":")
    return (source, int(offset)) if source and offset.isdigit() else None


async def written_since(bootstrap: str, topic: str, partitions: int,
                        marks: dict[int, int | None]) -> dict[int, set[tuple[str, int]]]:
    """For each input partition number of `marks`: the (source, offset) of its dead letters
    written to its dead-letter partition after its mark (from the start if None). One
    consumer reads them all. Empty sets, with a warning, if the topic cannot be read within
    READ_BACK_SECONDS: then a crash's last dead letters may be written twice."""
    found: dict[int, set[tuple[str, int]]] = {partition: set() for partition in marks}
    starts: dict[TopicPartition, int] = {}
    for partition, mark in marks.items():
        tp = TopicPartition(topic, dead_letter_partition(partition, partitions))
        start = 0 if mark is None else mark + 1
        starts[tp] = min(start, starts.get(tp, start))
    if not starts:
        return found
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    try:
        async with asyncio.timeout(READ_BACK_SECONDS):
            await consumer.start()
            consumer.assign(list(starts))
            ends = await consumer.end_offsets(list(starts))
            reading = {tp for tp, start in starts.items() if start < ends[tp]}
            for tp in reading:
                consumer.seek(tp, starts[tp])
            while reading:
                for records in (await consumer.getmany(*reading, timeout_ms=1000)).values():
                    for record in records:
                        _note(found, dict(record.headers).get("ccmon-source"))
                for tp in list(reading):
                    if await consumer.position(tp) >= ends[tp]:
                        reading.discard(tp)
    except Exception as exc:  # a failed read-back must not stop the recovery
        log.warning("could not read back %s: %s; the last dead letters of a crash may be "
                    "written again", topic, exc)
        return {partition: set() for partition in marks}
    finally:
        await consumer.stop()
    return found


def _note(found: dict[int, set[tuple[str, int]]], header: bytes | None) -> None:
    """Add a dead letter's origin to its input partition's set, if that is one of ours."""
    located = source_of(header) if header else None
    if located is not None:
        partition = located[0].rpartition(":")[2]
        if partition.isdigit() and int(partition) in found:
            found[int(partition)].add(located)
