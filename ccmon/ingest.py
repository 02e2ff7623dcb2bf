"""The shell every `ccmon ingest …` adapter shares (adapters.md): Kafka out, counters, /metrics.

An adapter maps its platform's records with a pure mapper of `ccmon.stream` and hands each
record's `Outcome` here. v1 events go to the input topics exactly as `ccmon replay` sends
them (`produce.event_message`: topic per channel, key = contact or agent id); malformed
records go to the dead-letter topic unchanged with the worker's headers
(`stream/deadletter.py`), their `ccmon-source` being `<adapter>:<where>:<offset>`. `send`
returns once Kafka acknowledged everything, so an adapter saves its position only after.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, Metric

from ccmon.console import cannot_listen, say
from ccmon.consumers.exporter import registry_for
from ccmon.kafka import ensure_topics, wait_for_brokers
from ccmon.produce import SETTINGS_USED as PRODUCE_SETTINGS
from ccmon.produce import _connect, _run, event_message
from ccmon.security import kafka_options
from ccmon.settings import Settings
from ccmon.stream.adapter import Outcome
from ccmon.stream.deadletter import dead_letter_message
from ccmon.stream.engine import DeadLetter, Record

SETTINGS_USED = (*PRODUCE_SETTINGS, "metrics_port", "bind")

Headers = list[tuple[str, bytes]]
Message = tuple[str, bytes | None, bytes | None, Headers | None]  # topic, key, value, headers


class Counts:
    """What one adapter process did; exported on /metrics as `ccmon_adapter_*_total`."""

    def __init__(self, adapter: str) -> None:
        self.adapter = adapter
        self.records = 0
        self.events = 0
        self.refused = 0  # requests that failed authentication (TaskRouter's signature)
        self.skipped: Counter[str] = Counter()
        self.dead: Counter[str] = Counter()
        self.banner = ""  # what runs, said once connected: a refusal is the only line then

    def collect(self) -> Iterator[Metric]:
        label = [self.adapter]
        yield _single("ccmon_adapter_records_total", "Source records read", label, self.records)
        yield _single("ccmon_adapter_events_total", "v1 events sent", label, self.events)
        yield _single("ccmon_adapter_refused_total", "Requests refused: signature not verified",
                      label, self.refused)
        yield _by_reason("ccmon_adapter_skipped_total",
                         "Source records that carry nothing v1 can say", label, self.skipped)
        yield _by_reason("ccmon_adapter_deadlettered_total",
                         "Malformed source records written to the dead-letter topic", label,
                         self.dead)


def _single(name: str, text: str, label: list[str], value: float) -> Metric:
    family = CounterMetricFamily(name, text, labels=("adapter",))
    family.add_metric(label, value)
    return family


def _by_reason(name: str, text: str, label: list[str], counts: Counter[str]) -> Metric:
    family = CounterMetricFamily(name, text, labels=("adapter", "reason"))
    for reason, count in sorted(counts.items()):
        family.add_metric([*label, reason], count)
    return family


def run_adapter(settings: Settings, adapter: str, doing: str,
                main: Callable[[Counts, asyncio.Event], Awaitable[object]]) -> int:
    """Serve /metrics on CCMON_METRICS_PORT (a thread of its own) and run `main` until it
    ends or Ctrl-C / SIGTERM (`connect` says what runs); returns the exit code."""
    counts = Counts(adapter)
    try:
        start_http_server(settings.metrics_port, settings.bind, registry_for(counts))
    except OSError as exc:
        raise cannot_listen(settings.bind, settings.metrics_port, "CCMON_METRICS_PORT",
                            exc) from None
    counts.banner = f"{doing}; metrics on http://{settings.bind}:{settings.metrics_port}/metrics"
    return _run(lambda stop: main(counts, stop))


class Outbox:
    """One batch of records' messages: `add` each record's outcome, `send` them all."""

    def __init__(self, settings: Settings, counts: Counts) -> None:
        self.settings = settings
        self.counts = counts
        self.messages: list[Message] = []

    def add(self, outcome: Outcome, record: bytes, source: str, offset: int,
            key: bytes | None = None, counted: bool = True) -> None:
        """A record's outcome; `source` and `offset` say where it was (`ccmon-source` of its
        dead letter); `counted` False for events released without a record (an end)."""
        self.counts.records += counted
        for event in outcome.events:
            topic, event_key, value = event_message(self.settings, event)
            self.messages.append((topic, event_key, value, None))
        self.counts.events += len(outcome.events)
        if outcome.skipped:
            self.counts.skipped[outcome.skipped] += 1
        if outcome.malformed:
            reason, detail = outcome.malformed
            letter = dead_letter_message(DeadLetter(
                source, Record(source, offset, None, record, key), reason, detail))
            self.messages.append((self.settings.deadletter_topic, *letter))
            self.counts.dead[reason] += 1

    async def send(self, producer: AIOKafkaProducer) -> None:
        """Send and await every ack; on failure wait for the brokers and send the lot again
        (duplicates are harmless: the event ids are the same)."""
        while True:
            try:
                futures = [await producer.send(topic, value, key=key, headers=headers)
                           for topic, key, value, headers in self.messages]
                for future in futures:
                    await future
                self.messages = []
                return
            except KafkaError as exc:
                say(f"sending to Kafka at {self.settings.bootstrap()} failed ({exc!r}); "
                    "resending")
                await wait_for_brokers(self.settings.bootstrap(),
                                       security=kafka_options(self.settings))


async def connect(settings: Settings, counts: Counts) -> AIOKafkaProducer:
    """`ccmon replay`'s producer, once the input and dead-letter topics exist; then the
    adapter says what it runs."""
    producer = await _connect(settings)
    await ensure_topics(settings.bootstrap(), [settings.deadletter_topic], settings.partitions,
                        security=kafka_options(settings))
    say(counts.banner)
    return producer
