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

from ccmon.launch import scrape, total, try_scrape, wait_until
from ccmon.stream.facts import apply as apply_facts
from tests.support.alerting import (
    LONG_QUEUE,
    LOW_SL,
    AlertStack,
    Client,
    Gateway,
    Scenario,
    is_alert,
    long_queue_day,
    ticks,
    wait_for,
    watch_for,
    write_tokens,
)
from tests.support.deployment import DEADLINE, Deployment
from tests.support.servers import http_ok, start_redis

pytestmark = pytest.mark.kafka


def expected_messages(scenario: Scenario, *rules: dict, interval: float = 0.25) -> list[dict]:
    """What the pure evaluator publishes for these events, in order, evaluating every
    `interval` seconds (E; the worker's default: 250 ms, alerts.md 1.1)."""
    watch = watch_for(*(rules or (LONG_QUEUE, LOW_SL)), interval_ms=round(interval * 1000))
    apply_facts(watch.board, scenario.facts(), watch)
    return [entry.message for entry in watch.outbox]


@pytest.fixture
def eval_interval() -> str:
    return "250ms"  # the default; a test may parametrize it


@pytest.fixture
async def live(kafka, redis_server, tmp_path: Path, eval_interval: str
               ) -> AsyncIterator[tuple[Deployment, Client]]:
    """A deployment whose worker evaluates the rules every `eval_interval`, a gateway, and
    carol (every queue)."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"rules": [LONG_QUEUE, LOW_SL]}))
    # One input partition: the facts reach the evaluator in event-time order, so the replay
    # is exact (docs/alerts.md: backtests).
    deployment = Deployment(kafka, tmp_path, partitions=1, rules=rules,
                            redis_url=redis_server.url, eval_interval=eval_interval)
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


@pytest.mark.parametrize(("eval_interval", "moments"), [
    ("1s", [("long-queue", "firing", "09:00:13Z", ""),
            ("low-sl", "firing", "09:00:21Z", ""),  # the answers at 20.2 s and 25.7 s were late
            ("long-queue", "resolved", "09:00:13Z", "09:00:26Z"),
            ("low-sl", "resolved", "09:00:21Z", "09:05:45Z")]),  # the abandon at 45 s has left
    # Every 250 ms (the default): the same story, each transition at the first quarter second
    # after its cause (see test_alert_watch.py for the long queue's).
    ("250ms", [("long-queue", "firing", "0:12.250Z", ""),
               ("low-sl", "firing", "0:20.250Z", ""),
               ("long-queue", "resolved", "0:12.250Z", "0:25.750Z"),
               ("low-sl", "resolved", "0:20.250Z", "09:05:45Z")])])
async def test_a_replay_on_the_event_clock_fires_what_the_evaluator_says(live, moments):
    deployment, client = live
    scenario = with_abandons(long_queue_day())
    wanted = expected_messages(scenario, interval=deployment.settings.eval_interval)
    assert [(m["rule"], m["status"], m["starts_at"][-9:], (m["ends_at"] or "")[-9:])
            for m in wanted] == moments
    worker = await asyncio.to_thread(deployment.start_worker)
    await deployment.send_async(lines(scenario))
    await client.until(lambda m: m.get("id") == wanted[-1]["id"] and m["status"] == "resolved",
                       "the last transition", DEADLINE)
    assert alert_messages(client) == wanted
    metrics = scrape(worker.metrics_url)
    assert total(metrics, "ccmon_alert_transitions_total", rule="low-sl") == 2
    # Exported and zero (a total of absent series would be 0 too).
    assert {name for name, _ in metrics} >= {"ccmon_alerts_firing", "ccmon_alerts_unpublished"}
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


WAITING = {"name": "waiting", "metric": "ccmon_queue_waiting_contacts", "op": ">",
           "threshold": 0, "severity": "warning", "summary": "Someone is waiting"}


def six_queues_waiting() -> Scenario:
    """A contact waits in each of six queues, for good: six alerts firing."""
    scenario = Scenario()
    for n in range(6):
        scenario.queued(n, f"c{n}", queue=f"q{n}")
    scenario.queued(10, "late", queue="q0")  # moves the event clock past their firing
    return scenario


def worker_health(worker) -> tuple[bool, float]:
    """(/healthz answers 200, ccmon_alert_store_up) of a worker."""
    samples = try_scrape(worker.metrics_url)
    up = total(samples, "ccmon_alert_store_up") if samples is not None else -1
    return http_ok(worker.metrics_url.replace("/metrics", "/healthz")), up


async def test_after_redis_loses_its_data_the_worker_tells_every_firing_alert_again(
        kafka, tmp_path):
    redis = start_redis(tmp_path / "redis-a")
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"rules": [WAITING]}))
    deployment = Deployment(kafka, tmp_path, partitions=1, rules=rules, redis_url=redis.url)
    stack = AlertStack(redis.url, tmp_path, app_id=deployment.values["app_id"])
    scenario = six_queues_waiting()
    wanted = expected_messages(scenario, WAITING)
    assert [m["status"] for m in wanted] == ["firing"] * 6
    first, second = wanted[0]["id"], wanted[1]["id"]
    try:
        worker = await asyncio.to_thread(deployment.start_worker)
        carol = await stack.client(stack.gateway(), "carol")
        await deployment.send_async(lines(scenario))
        await carol.until(is_alert(wanted[-1]["id"]), "the sixth alert", DEADLINE)
        await carol.connection.send(f'{{"type":"ack","id":"{first}"}}')
        await carol.until(is_alert(first, acked_by="carol"), "carol's ack")
        assert await asyncio.to_thread(worker_health, worker) == (True, 1)

        redis.stop()
        await asyncio.to_thread(wait_until, lambda: worker_health(worker) == (False, 0),
                                DEADLINE, "the worker's /healthz to say Redis is away")
        redis = start_redis(tmp_path / "redis-b", port=redis.port)  # empty: nothing persisted
        await asyncio.to_thread(wait_until, lambda: worker_health(worker) == (True, 1),
                                DEADLINE, "the worker's /healthz to be well again")

        async def whole_again() -> bool:
            firing, _, _ = await stack.store.load()
            return len(firing) == 6 and firing[first]["acked_by"] == "carol"

        await wait_for(whole_again, "six alerts firing in Redis again, carol's ack back")
        late = await stack.client(stack.gateway(), "carol")
        assert sorted((a["id"], a["acked_by"]) for a in late.messages[0]["alerts"]) == sorted(
            (m["id"], "carol" if m["id"] == first else None) for m in wanted)
        await late.connection.send(f'{{"type":"ack","id":"{second}"}}')
        for client in (late, carol):
            await client.until(is_alert(second, acked_by="carol"), "the ack after the wipe")
        # The supervisor connected all along got each transition once.
        assert [(m["id"], m["acked_by"]) for m in carol.alerts()] == [
            *((m["id"], None) for m in wanted), (first, "carol"), (second, "carol")]
        said = "ccmon: the alert store had lost 6 firing alerts: published them again"
        assert said in (tmp_path / "worker-0.log").read_text()
    finally:
        await stack.close()
        deployment.stop_all()
        redis.stop()
