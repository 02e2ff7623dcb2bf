"""Alerts end to end on real servers: events into Kafka, the worker evaluating the rules on the
event clock, Redis, a gateway, a supervisor's WebSocket. The alerts must be those the pure
evaluator gives for the same events: same ids, same moments, same values, each once, also
across a worker killed and restarted."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
import yaml
from alerting import (
    LONG_QUEUE,
    LOW_SL,
    Client,
    Gateway,
    Scenario,
    long_queue_day,
    ticks,
    watch_for,
    write_tokens,
)
from deployment import DEADLINE, Deployment

from ccmon.alerts.watch import apply_facts
from ccmon.launch import scrape, total, wait_until

pytestmark = pytest.mark.kafka


def expected_messages(scenario: Scenario) -> list[dict]:
    """What the pure evaluator publishes for these events, in order."""
    watch = watch_for(LONG_QUEUE, LOW_SL)
    apply_facts(watch.board, scenario.facts(), watch)
    return [entry.message for entry in watch.outbox]


@pytest.fixture
async def live(kafka, redis_server, tmp_path: Path) -> AsyncIterator[tuple[Deployment, Client]]:
    """A deployment whose worker evaluates the rules, a gateway, and carol (every queue)."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"rules": [LONG_QUEUE, LOW_SL]}))
    # One input partition: the facts reach the evaluator in event-time order, so the replay
    # is exact (docs/alerts.md: backtests).
    deployment = Deployment(kafka, tmp_path, partitions=1, rules=rules,
                            redis_url=redis_server.url)
    gateway = Gateway({"redis_url": redis_server.url, "app_id": deployment.values["app_id"],
                       "tokens": write_tokens(tmp_path / "tokens.yaml")},
                      tmp_path / "gateway.log")
    client = await Client.open(gateway.ws_url, "carol")
    await client.until(lambda m: m["type"] == "snapshot", "the snapshot")
    yield deployment, client
    await client.close()
    gateway.stop()
    deployment.stop_all()


def lines(scenario: Scenario) -> list[bytes]:
    return [orjson.dumps(line) for line in scenario.lines]


def with_abandons(scenario: Scenario) -> Scenario:
    """The long-queue day, plus an abandon that sinks billing's service level for 5 minutes."""
    scenario.queued(30, "late")
    scenario.event(45, "contact.abandoned", "late")
    ticks(scenario, 400, first=41)
    scenario.lines.sort(key=lambda line: line["ts"])
    return scenario


def alert_messages(client: Client) -> list[dict]:
    return [{k: v for k, v in m.items()} for m in client.alerts()]


async def test_a_replay_on_the_event_clock_fires_what_the_evaluator_says(live):
    deployment, client = live
    scenario = with_abandons(long_queue_day())
    wanted = expected_messages(scenario)
    assert [(m["rule"], m["status"], m["starts_at"][-9:], (m["ends_at"] or "")[-9:])
            for m in wanted] == [
        ("long-queue", "firing", "09:00:13Z", ""),
        ("low-sl", "firing", "09:00:21Z", ""),  # the answers at 20.2 s and 25.7 s were late
        ("long-queue", "resolved", "09:00:13Z", "09:00:26Z"),
        ("low-sl", "resolved", "09:00:21Z", "09:05:45Z")]  # the abandon at 45 s has left
    worker = await asyncio.to_thread(deployment.start_worker)
    await deployment.send_async(lines(scenario))
    await client.until(lambda m: m.get("id") == wanted[-1]["id"] and m["status"] == "resolved",
                       "the last transition", DEADLINE)
    assert alert_messages(client) == wanted
    metrics = scrape(worker.metrics_url)
    assert total(metrics, "ccmon_alert_transitions_total", rule="low-sl") == 2
    assert total(metrics, "ccmon_alerts_firing") == 0
    assert total(metrics, "ccmon_alerts_unpublished") == 0


async def test_a_worker_killed_and_restarted_tells_each_transition_once(live):
    deployment, client = live
    scenario = with_abandons(long_queue_day())
    wanted = expected_messages(scenario)
    cut = next(i for i, line in enumerate(scenario.lines) if line["ts"] >= scenario.lines[0]["ts"]
               + 200)  # long-queue has fired and resolved, low-sl is firing
    worker = await asyncio.to_thread(deployment.start_worker)
    await deployment.send_async(lines(scenario)[:cut])
    await client.until(lambda m: m == wanted[2], "long-queue resolved", DEADLINE)
    await asyncio.to_thread(
        wait_until, lambda: total(scrape(worker.metrics_url), "ccmon_alerts_firing",
                                  severity="critical") == 1, DEADLINE, "low-sl firing in /metrics")

    worker.send_signal(signal.SIGKILL)
    worker.wait()
    restarted = await asyncio.to_thread(deployment.start_worker)
    await deployment.send_async(lines(scenario)[cut:])
    await client.until(lambda m: m.get("id") == wanted[-1]["id"] and m["status"] == "resolved",
                       "the last transition", DEADLINE)
    assert alert_messages(client) == wanted
    await asyncio.to_thread(
        wait_until, lambda: total(scrape(restarted.metrics_url), "ccmon_alerts_firing") == 0,
        DEADLINE, "no alert firing in the restarted worker's /metrics")


async def test_alerts_wait_for_redis_while_it_is_down_and_arrive_once_it_is_back(kafka, tmp_path):
    from servers import start_redis

    from ccmon.alerts.store import RedisStore

    redis = start_redis(tmp_path / "redis-a")
    port = redis.port
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"rules": [LONG_QUEUE, LOW_SL]}))
    deployment = Deployment(kafka, tmp_path, partitions=1, rules=rules, redis_url=redis.url)
    scenario = with_abandons(long_queue_day())
    wanted = expected_messages(scenario)
    try:
        worker = await asyncio.to_thread(deployment.start_worker)
        redis.stop()
        await deployment.send_async(lines(scenario))

        def waiting_transitions() -> float:
            return total(scrape(worker.metrics_url), "ccmon_alerts_unpublished")

        seen: list[float] = []
        try:
            await asyncio.to_thread(
                wait_until, lambda: seen.append(waiting_transitions()) or seen[-1] == len(wanted),
                DEADLINE, "every transition held for Redis")
        except TimeoutError:
            pytest.fail(f"transitions held: {sorted(set(seen))}, wanted {len(wanted)}")
        said = f"ccmon: cannot reach Redis at redis://127.0.0.1:{port}/0"
        log = tmp_path / "worker-0.log"
        await asyncio.to_thread(wait_until, lambda: said in log.read_text(), DEADLINE,
                                "the worker to say Redis is away")

        redis = start_redis(tmp_path / "redis-b", port=port)  # empty: nothing was persisted
        await asyncio.to_thread(wait_until, lambda: waiting_transitions() == 0, DEADLINE,
                                "the held transitions published")
        store = RedisStore(redis.url, deployment.values["app_id"])
        try:
            _, cursor, generation = await store.load()
            _, _, entries = await store.follow(generation, "0-0", 1000)
        finally:
            await store.close()
        assert [message for _, message in entries] == wanted and cursor != "0-0"
        text = log.read_text()
        assert text.count(said) == 1 and "ccmon: the alert store is reachable again" in text
    finally:
        deployment.stop_all()
        redis.stop()
