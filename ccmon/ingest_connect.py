"""`ccmon ingest connect --from TOPIC`: Amazon Connect's events on a Kafka topic into v1 events.

The bridge from EventBridge (contact events) and Kinesis (the agent event stream) to Kafka is
the user's; this reads every partition of that topic (no consumer group: the offsets live in
the position file with the mapper's state, so they always agree), maps each message
(`stream/connect.py`), sends the events and dead letters, awaits Kafka's acks, then saves
offsets and state atomically. Without a position file (the first run of an app id) it reads
the topic from its beginning.
"""

from __future__ import annotations

import argparse
import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition

from ccmon import settings as settings_module
from ccmon.console import Outage
from ccmon.follow import load_json, save_json
from ccmon.ingest import SETTINGS_USED, Counts, Outbox, connect, run_adapter
from ccmon.kafka import new_consumer, partition_count
from ccmon.produce import _settings, _sleep_or_stop, _stopped
from ccmon.security import kafka_options
from ccmon.settings import Settings
from ccmon.stream.connect import Connect

CHUNK = 2000  # records per batch: one send, one ack wait, one position write
TOPIC_WAIT_SECONDS = 2.0


async def ingest(settings: Settings, topic: str, state_path: str, counts: Counts,
                 stop_event: asyncio.Event | None = None) -> None:
    saved = load_json(state_path) or {}
    offsets: dict[str, int] = saved.get("offsets", {})
    mapper = Connect(saved.get("state"))
    producer = await connect(settings, counts)
    consumer = new_consumer(settings.bootstrap(), security=kafka_options(settings))
    outbox = Outbox(settings, counts)
    try:
        await consumer.start()
        if not await _assign(consumer, settings, topic, offsets, stop_event):
            return
        while not _stopped(stop_event):
            batch = await consumer.getmany(timeout_ms=500, max_records=CHUNK)
            for tp, records in batch.items():
                for record in records:
                    outbox.add(mapper.feed(record.value or b""), record.value or b"",
                               f"connect:{tp.topic}:{tp.partition}", record.offset, record.key)
                    offsets[str(tp.partition)] = record.offset + 1
            if batch:
                await outbox.send(producer)
                save_json(state_path, {"offsets": offsets, "state": mapper.to_json()})
    finally:
        await consumer.stop()
        await producer.stop()


async def _assign(consumer: AIOKafkaConsumer, settings: Settings, topic: str,
                  offsets: dict[str, int], stop_event: asyncio.Event | None) -> bool:
    """Every partition of `topic`, each at its saved offset (else its beginning); waits for
    the topic to exist. False if stopped first."""
    missing = Outage()
    while not _stopped(stop_event):
        count = await partition_count(settings.bootstrap(), topic,
                                      security=kafka_options(settings))
        if count:
            break
        missing.failed(f"topic {topic} does not exist yet; waiting for it")
        await _sleep_or_stop(stop_event, TOPIC_WAIT_SECONDS)
    else:
        return False
    assigned = [TopicPartition(topic, n) for n in range(count)]
    consumer.assign(assigned)
    for tp in assigned:
        if str(tp.partition) in offsets:
            consumer.seek(tp, offsets[str(tp.partition)])
        else:
            await consumer.seek_to_beginning(tp)
    return True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="topic", required=True, metavar="TOPIC",
                        help="the Kafka topic the contact events and the agent event stream "
                             "are bridged to (JSON messages)")
    parser.add_argument("--state", default=None, metavar="FILE",
                        help="position file: offsets and mapping state, written after Kafka "
                             "acknowledged the events (default: "
                             "<CCMON_APP_ID>-connect-<TOPIC>.ccmon-position here)")
    settings_module.add_arguments(parser, (*SETTINGS_USED, "app_id"))


def run(args: argparse.Namespace) -> int:
    """Entry point of `ccmon ingest connect`; returns the exit code."""
    settings = _settings(args)
    state_path = args.state or f"{settings.app_id}-connect-{args.topic}.ccmon-position"
    return run_adapter(settings, "connect", f"ingesting Amazon Connect events from "
                       f"{args.topic} at {settings.bootstrap()}; position in {state_path}",
                       lambda counts, stop: ingest(settings, args.topic, state_path, counts,
                                                   stop))
