"""Kafka plumbing shared by every ccmon process: reaching the brokers, creating topics, producing.

Unreachable brokers are reported in one line naming the address, then retried (running.md);
brokers that refuse us (credentials, certificates, protocol) end the process with one line.
Every helper takes `security`: `ccmon.security.kafka_options(settings)`, the client's TLS and
SASL keyword arguments (plaintext when left out).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Iterator

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    TopicAlreadyExistsError,
    for_code,
)

from ccmon.console import Outage
from ccmon.errors import KafkaRefused
from ccmon.refusal import kafka_refusal
from ccmon.security import PLAINTEXT, KafkaOptions

log = logging.getLogger("ccmon.kafka")

RETRY_SECONDS = 2.0


async def wait_for_brokers(bootstrap: str, *, retry_seconds: float = RETRY_SECONDS,
                           security: KafkaOptions = PLAINTEXT) -> None:
    """Return once the cluster answers metadata; say once per outage that it cannot be reached.
    Raises `KafkaRefused` if a broker refuses our credentials, certificate or protocol."""
    with quiet_aiokafka():  # it would log every failed attempt
        await _wait_for_brokers(bootstrap, retry_seconds, security)


@contextlib.contextmanager
def quiet_aiokafka() -> Iterator[None]:
    client_log = logging.getLogger("aiokafka")
    level = client_log.level
    client_log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        client_log.setLevel(level)


async def _wait_for_brokers(bootstrap: str, retry_seconds: float, security: KafkaOptions
                            ) -> None:
    outage = Outage()
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000,
                                    **security)
        try:
            await admin.start()
            await admin.describe_cluster()
            outage.answered(f"Kafka at {bootstrap} is reachable again")
            return
        except (KafkaError, OSError, ValueError):
            reason = await kafka_refusal(bootstrap, security)
            if reason is not None:
                raise KafkaRefused(reason) from None
            outage.failed(f"cannot reach Kafka at {bootstrap}; retrying every {retry_seconds:g}s")
        finally:
            await admin.close()
        await asyncio.sleep(retry_seconds)


async def ensure_topics(bootstrap: str, topics: Iterable[str], partitions: int,
                        config: dict[str, str] | None = None, *,
                        security: KafkaOptions = PLAINTEXT) -> dict[str, int]:
    """Create the topics that do not exist yet (with `config`, e.g. compaction); return every
    topic's partition count.

    Raises the broker's `KafkaError` when it refuses to create a topic (other than "exists").
    """
    topics = list(topics)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000,
                                **security)
    await admin.start()
    try:
        existing = await _partition_counts(admin, topics)
        missing = [t for t in topics if t not in existing]
        if missing:
            response = await admin.create_topics(
                [NewTopic(t, num_partitions=partitions, replication_factor=1,
                          topic_configs=config or {}) for t in missing])
            # The broker answers per topic rather than failing the request: "already exists"
            # means another process created it between our look and our request.
            for topic, code, *rest in getattr(response, "topic_errors", ()):
                if code not in (0, TopicAlreadyExistsError.errno):
                    detail = f": {rest[0]}" if rest and rest[0] else ""
                    raise for_code(code)(f"cannot create topic {topic!r}{detail}")
            for _ in range(50):  # creation is asynchronous on the broker side
                existing = await _partition_counts(admin, topics)
                if all(t in existing for t in topics):
                    break
                await asyncio.sleep(0.1)
        return existing
    finally:
        await admin.close()


async def _partition_counts(admin: AIOKafkaAdminClient, topics: list[str]) -> dict[str, int]:
    """Partition counts of those of `topics` that exist.

    Only topics seen in a list of all topics are described: describing a missing topic by name
    sends a metadata request that lets the broker auto-create it (aiokafka always asks for that),
    with the broker's default partition count instead of ours. Tansu does; so does Apache Kafka
    with `auto.create.topics.enable=true`, its default.
    """
    counts: dict[str, int] = {}
    try:
        present = set(await admin.list_topics())
        wanted = [t for t in topics if t in present]
        described = await admin.describe_topics(wanted) if wanted else []
    except KafkaError:
        return counts
    for topic in described:
        if topic.get("error_code", 0) == 0 and topic.get("partitions"):
            counts[topic["topic"]] = len(topic["partitions"])
    return counts


async def partition_count(bootstrap: str, topic: str, *,
                          security: KafkaOptions = PLAINTEXT) -> int | None:
    """The partition count of `topic`, or None if it does not exist; never creates it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000,
                                **security)
    await admin.start()
    try:
        return (await _partition_counts(admin, [topic])).get(topic)
    finally:
        await admin.close()


def new_producer(bootstrap: str, *, security: KafkaOptions = PLAINTEXT,
                 **options: object) -> AIOKafkaProducer:
    """A producer tuned for throughput; `acks=all` so nothing acked is lost."""
    settings: dict[str, object] = {
        **security,
        "bootstrap_servers": bootstrap,
        "acks": "all",
        "linger_ms": 5,
        "max_batch_size": 256 * 1024,
        "compression_type": None,
    }
    settings.update(options)
    return AIOKafkaProducer(**settings)


def new_consumer(bootstrap: str, *, security: KafkaOptions = PLAINTEXT,
                 **options: object) -> AIOKafkaConsumer:
    """A consumer outside any group (partitions assigned by the caller, offsets kept by the
    caller), from the earliest record when it has no position."""
    settings: dict[str, object] = {
        **security,
        "bootstrap_servers": bootstrap,
        "group_id": None,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
    }
    settings.update(options)
    return AIOKafkaConsumer(**settings)


__all__ = [
    "KafkaConnectionError",
    "ensure_topics",
    "new_consumer",
    "new_producer",
    "partition_count",
    "wait_for_brokers",
]
