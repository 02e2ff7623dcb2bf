"""Late changelog writes of a worker that lost its partitions (a zombie: stalled past its
session, it finishes a batch after the new owner moved on) change nothing: recovery keeps each
key's record of the newest writer, and the new owner writes the overwritten keys again
(consumers/changelog.py). On a real Apache Kafka."""

from __future__ import annotations

import asyncio
import itertools
import signal
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from ccmon.consumers.changelog import WRITER, stamp_of, writer_stamp
from ccmon.consumers.worker import TABLES
from ccmon.figures import engine_figures
from tests.integration.test_worker import simulated, wait_for_figures
from tests.support.deployment import DEADLINE, Deployment

pytestmark = pytest.mark.kafka
PARTITIONS = 4  # the test deployment's

Record = tuple[int, bytes | None, bytes]  # offset, value, writer stamp


async def read_changelog(bootstrap: str, topic: str, count: int
                         ) -> dict[tuple[int, bytes], list[Record]]:
    """Every record of a changelog of `count` partitions, per (partition, key), in log
    order."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    records: dict[tuple[int, bytes], list[Record]] = defaultdict(list)
    try:
        partitions = [TopicPartition(topic, p) for p in range(count)]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await consumer.seek_to_beginning(*partitions)
        async with asyncio.timeout(DEADLINE):
            while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
                for tp, messages in (await consumer.getmany(timeout_ms=1000)).items():
                    for m in messages:
                        records[tp.partition, m.key].append(
                            (m.offset, m.value, stamp_of(m.headers)))
    finally:
        await consumer.stop()
    return records


def older(stamp: bytes) -> bytes:
    """A writer older than `stamp`'s: the generation before it."""
    generation = int.from_bytes(stamp[:8]) - 2**63
    return writer_stamp(generation - 1, int.from_bytes(stamp[8:]))


async def write_late(bootstrap: str, topic: str,
                     records: dict[tuple[int, bytes], list[Record]]) -> dict:
    """A zombie's late writes: for each key logged more than once, its first value appended
    again by a writer older than the key's last; returns {(partition, key): the stamp}."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    forged = {}
    try:
        for (partition, key), history in records.items():
            first, last = history[0], history[-1]
            if first[1] == last[1] or not last[2]:
                continue
            forged[partition, key] = older(last[2])
            await producer.send_and_wait(topic, first[1], key=key, partition=partition,
                                         headers=[(WRITER, forged[partition, key])])
    finally:
        await producer.stop()
    return forged


def test_late_writes_of_an_older_writer_change_no_figure(deployment: Deployment):
    lines = simulated(seed=21, hours=3)
    half = len(lines) // 2
    bootstrap = deployment.settings.bootstrap()
    topics = [f"{deployment.settings.app_id}-{table}-changelog" for table in TABLES]

    worker = deployment.start_worker()
    parts = [0, half // 3, 2 * half // 3, half]
    for start, end in itertools.pairwise(parts):  # each applied before the next: contacts,
        deployment.send(lines[start:end])  # agents and cases are logged more than once
        wait_for_figures([worker.metrics_url], engine_figures(lines[:end], deployment.settings),
                         deployment)
    worker.send_signal(signal.SIGKILL)
    worker.wait()

    # Each state unit logged more than once gets a stale value back as its last record, as
    # a zombie's batch begun before it lost the partitions would write it.
    forged = {}
    for topic in topics:
        logged = asyncio.run(read_changelog(bootstrap, topic, PARTITIONS))
        forged[topic] = asyncio.run(write_late(bootstrap, topic, logged))
    assert all(forged.values()), {topic: len(keys) for topic, keys in forged.items()}

    # Recovered, the worker carries on from the newest writer's state: the second half
    # counts on top of exactly the first.
    worker = deployment.start_worker()
    deployment.send(lines[half:])
    wait_for_figures([worker.metrics_url], engine_figures(lines, deployment.settings),
                     deployment)

    # And the log agrees: no late record is a key's last any more (compaction keeps those).
    for topic in topics:
        records = asyncio.run(read_changelog(bootstrap, topic, PARTITIONS))
        late = [key for key, stamp in forged[topic].items() if records[key][-1][2] == stamp]
        assert not late, f"{topic}: {len(late)} keys still end with the late record"
