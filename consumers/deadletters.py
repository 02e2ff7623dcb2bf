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

from ccmon.security import KafkaOptions

log = logging.getLogger("ccmon.worker")

READ_BACK_SECONDS = 10.0

# The contacts-table unit holding a partition's last acknowledged dead-letter offset (never a
# contact's, an agent's or a read mark's key).
DEAD_LETTER_MARK = "\x1fdeadletters"


def dead_letter_partition(partition: int, partitions: int) -> int:
    return partition % partitions


def source_of(header: bytes) -> tuple[str, int] | None:
    """`ccmon-source` (`topic:partition:offset`) -> (`topic:partition`, offset)."""
    source, _, offset = header.decode(errors="replace").rpartition(":")
    return (source, int(offset)) if source and offset.isdigit() else None


async def written_since(bootstrap: str, topic: str, partitions: int, partition: int,
                        mark: int | None, security: KafkaOptions) -> set[tuple[str, int]]:
    """The (source, offset) of the dead letters of input partition number `partition` written
    to its dead-letter partition after offset `mark` (from its start if None). Empty, with a
    warning, if the topic cannot be read within READ_BACK_SECONDS: then a crash's last dead
    letters may be written twice, as before this existed."""
    tp = TopicPartition(topic, dead_letter_partition(partition, partitions))
    suffix = f":{partition}"
    found: set[tuple[str, int]] = set()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                **security)
    try:
        async with asyncio.timeout(READ_BACK_SECONDS):
            await consumer.start()
            consumer.assign([tp])
            end = (await consumer.end_offsets([tp]))[tp]
            start = 0 if mark is None else mark + 1
            if start >= end:
                return found
            consumer.seek(tp, start)
            while await consumer.position(tp) < end:
                for record in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, []):
                    header = dict(record.headers).get("ccmon-source")
                    located = source_of(header) if header else None
                    if located is not None and located[0].endswith(suffix):
                        found.add(located)
    except Exception as exc:  # a failed read-back must not stop the recovery
        log.warning("could not read back %s: %s; the last dead letters of a crash may be "
                    "written again", tp, exc)
        return set()
    finally:
        await consumer.stop()
    return found
