"""`ccmon ingest connect --from TOPIC` as a real subprocess on Apache Kafka, read by a real worker:
the morning of tests/data/connect.jsonl on a source topic gives the figures worked out by hand
(test_connect.py) on the worker's /metrics, through a `kill -9` of the adapter halfway."""

from __future__ import annotations

import asyncio
import json
import signal

import pytest

from ccmon.kafka import ensure_topics, new_producer
from ccmon.launch import stop, total, try_scrape, wait_until
from tests.integration.test_worker import read_topic
from tests.support.adapters import by_reason, wait_for_figures
from tests.support.deployment import DEADLINE, Deployment
from tests.unit.test_connect import (
    MORNING_MALFORMED,
    MORNING_SKIPPED,
    hand_figures_hold,
    morning,
    run,
)

pytestmark = pytest.mark.kafka


async def publish(bootstrap: str, topic: str, messages: list[bytes]) -> None:
    """As an ordered bridge from EventBridge and Kinesis would: in order, on one partition."""
    await ensure_topics(bootstrap, [topic], 1)
    producer = new_producer(bootstrap)
    await producer.start()
    try:
        for message in messages:
            await (await producer.send(topic, message))
    finally:
        await producer.stop()


def test_connect_events_through_ingest_and_a_kill_9_give_the_hand_figures(
        day_deployment: Deployment):
    deployment = day_deployment
    messages = morning()
    topic = f"{deployment.settings.topic_prefix}.connect-source"
    bootstrap = deployment.settings.bootstrap()
    half = len(messages) // 2
    asyncio.run(publish(bootstrap, topic, messages[:half]))
    worker = deployment.start_worker()
    state = deployment.tmp_path / "connect.position"
    ingest = deployment.start_ingest("connect", "--from", topic, "--state", str(state))

    def records() -> float:
        assert ingest.poll() is None, deployment.ingest_log()
        return total(try_scrape(ingest.metrics_url) or {}, "ccmon_adapter_records_total")

    def saved() -> int:
        return sum(json.loads(state.read_bytes())["offsets"].values()) if state.exists() else 0

    wait_until(lambda: records() == half and saved() == half, DEADLINE, "the first half saved")
    ingest.send_signal(signal.SIGKILL)
    ingest.wait()

    asyncio.run(publish(bootstrap, topic, messages[half:]))
    ingest = deployment.start_ingest("connect", "--from", topic, "--state", str(state))
    wait_until(lambda: records() == len(messages) - half, DEADLINE, "the second half")

    wait_for_figures(deployment, worker, run(messages)[0], hand_figures_hold)
    assert total(try_scrape(worker.metrics_url), "ccmon_events_invalid_total") == 0

    metrics = try_scrape(ingest.metrics_url)  # the second run's: every skip is in that half
    assert by_reason(metrics, "ccmon_adapter_skipped_total") == MORNING_SKIPPED
    letters = asyncio.run(read_topic(bootstrap, deployment.settings.deadletter_topic,
                                     len(MORNING_MALFORMED)))
    assert sorted(h["ccmon-reason"] for _, h in letters) == sorted(MORNING_MALFORMED)
    assert all(h["ccmon-source"].startswith(f"connect:{topic}:") for _, h in letters)
    assert stop(ingest) == 0
