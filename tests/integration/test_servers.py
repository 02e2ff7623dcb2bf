"""The real-server fixtures work: Kafka and tansu carry messages through a consumer group,
`ccmon.kafka.ensure_topics` creates topics on both, Redis answers.

Also pins down what tansu (the demo's embedded broker) does not do, so a change shows.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from ccmon.embedded import start_tansu
from ccmon.kafka import ensure_topics, new_producer, wait_for_brokers


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def produce_and_consume(bootstrap: str, partitions: int, count: int = 30) -> None:
    topic = unique("roundtrip")
    counts = await ensure_topics(bootstrap, [topic], partitions)
    assert counts == {topic: partitions}

    producer = new_producer(bootstrap)
    await producer.start()
    try:
        sent = [(f"key-{i % 7}".encode(), f"value-{i}".encode()) for i in range(count)]
        await asyncio.gather(*[producer.send_and_wait(topic, v, key=k) for k, v in sent])
    finally:
        await producer.stop()

    group = unique("group")
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
        enable_auto_commit=False)
    await consumer.start()
    received: list[tuple[bytes, bytes]] = []
    try:
        deadline = time.monotonic() + 30
        while len(received) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                received += [(r.key, r.value) for r in records]
        assert sorted(received) == sorted(sent)
        assert {tp.partition for tp in consumer.assignment()} == set(range(partitions))
        await consumer.commit()
        committed = {tp.partition: await consumer.committed(tp) for tp in consumer.assignment()}
    finally:
        await consumer.stop()
    assert sum(committed.values()) == count

    # The group's offsets are kept by the broker: a fresh client of the group reads them back.
    # (Not a second subscribing member: on tansu the group's first generation is 0, so aiokafka
    # sends no LeaveGroup on stop and a new member waits out the old one's session timeout.)
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                              enable_auto_commit=False)
    await reader.start()
    try:
        partitions_ = [TopicPartition(topic, p) for p in range(partitions)]
        reader.assign(partitions_)
        assert {tp.partition: await reader.committed(tp) for tp in partitions_} == committed
        for tp in partitions_:
            assert await reader.position(tp) == committed[tp.partition]
    finally:
        await reader.stop()


async def check_ensure_topics(bootstrap: str) -> None:
    first, second = unique("ensure-a"), unique("ensure-b")
    assert await ensure_topics(bootstrap, [first, second], 3) == {first: 3, second: 3}
    # Idempotent, and an existing topic keeps its own partition count.
    assert await ensure_topics(bootstrap, [first, second], 5) == {first: 3, second: 3}
    third = unique("ensure-c")
    assert await ensure_topics(bootstrap, [first, third], 2) == {first: 3, third: 2}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        assert {first, second, third} <= set(await admin.list_topics())
    finally:
        await admin.close()


# --- Apache Kafka -----------------------------------------------------------------------------


@pytest.mark.kafka
async def test_kafka_round_trip_through_a_consumer_group(kafka):
    await wait_for_brokers(kafka.address)
    await produce_and_consume(kafka.address, partitions=3)


@pytest.mark.kafka
async def test_kafka_ensure_topics(kafka):
    await check_ensure_topics(kafka.address)


@pytest.mark.kafka
async def test_kafka_ensure_topics_reports_a_refusal(kafka):
    with pytest.raises(KafkaError, match="cannot create topic"):
        await ensure_topics(kafka.address, [unique("bad")], 0)


@pytest.mark.kafka
async def test_kafka_idempotent_producer(kafka):
    topic = unique("idem")
    await ensure_topics(kafka.address, [topic], 1)
    producer = new_producer(kafka.address, enable_idempotence=True)
    await producer.start()
    try:
        written = await producer.send_and_wait(topic, b"once")
    finally:
        await producer.stop()
    assert written.offset == 0
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka.address, group_id=None,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=10_000)
    finally:
        await consumer.stop()
    assert [m.value for messages in batch.values() for m in messages] == [b"once"]


# --- tansu ------------------------------------------------------------------------------------


async def test_tansu_round_trip_through_a_consumer_group(tansu):
    await wait_for_brokers(tansu.address)
    await produce_and_consume(tansu.address, partitions=3)


async def test_tansu_ensure_topics(tansu):
    await check_ensure_topics(tansu.address)


async def test_tansu_has_no_idempotent_producer(tansu):
    """tansu answers InitProducerId with an error: ccmon must not enable idempotence on it."""
    producer = AIOKafkaProducer(bootstrap_servers=tansu.address, enable_idempotence=True)
    with pytest.raises(KafkaError):
        await producer.start()
    await producer.stop()


def test_embedded_broker_starts_and_stops(tmp_path):
    with start_tansu(log_path=tmp_path / "tansu.log") as broker:
        assert broker.alive()
        host, port = broker.bootstrap.rsplit(":", 1)
        assert host == "127.0.0.1" and int(port) == broker.port
    assert not broker.alive()
    broker.stop()  # idempotent
    assert (tmp_path / "tansu.log").read_text()


# --- Redis ------------------------------------------------------------------------------------


async def test_redis_ping_set_get(redis_server):
    client = aioredis.from_url(redis_server.url)
    try:
        assert await client.ping()
        key = unique("key")
        await client.set(key, "value")
        assert await client.get(key) == b"value"
    finally:
        await client.aclose()
