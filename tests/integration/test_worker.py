"""The worker on a real Apache Kafka: what it exports equals the pure engine's figures for the
same events, through bad input, duplicates, SIGKILL restarts and several workers."""

from __future__ import annotations

import asyncio
import random
import signal
import time

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from ccmon.figures import describe_difference, engine_figures, matches, queue_series
from ccmon.kafka import ensure_topics, new_producer
from ccmon.launch import Samples, total, try_scrape, wait_until
from ccmon.stream.engine import EngineConfig, Pipeline, Record
from ccmon.stream.events import parse_ts
from ccmon.stream.kpis import CASE_METRICS, QUEUE_METRICS, queue_metrics
from ccmon.stream.simulate import Simulation
from tests.support.deployment import DEADLINE, Deployment

pytestmark = pytest.mark.kafka

START = 1_763_802_000.0  # 2025-11-22T09:00:00Z


def simulated(seed: int, hours: float) -> list[bytes]:
    return [orjson.dumps(e) for e in Simulation(seed, START).run(hours * 3600)]


def bad_lines(rng: random.Random) -> list[bytes]:
    """One of each kind of bad input events.md lists (lifecycle ones included)."""
    return [
        b"\xff\xfe not UTF-8",
        b'{"event_id": "broken",',
        b'["an", "array"]',
        b'"a string"',
        orjson.dumps({"type": "contact.queued", "ts": START, "contact_id": "x", "queue": "q"}),
        orjson.dumps({"event_id": "w1", "type": "contact.queued", "ts": START,
                      "contact_id": 5, "queue": "billing"}),
        orjson.dumps({"event_id": "u1", "type": "contact.exploded", "ts": START}),
        orjson.dumps({"event_id": "t1", "type": "contact.queued", "ts": "noon",
                      "contact_id": "y", "queue": "billing"}),
        orjson.dumps({"event_id": "v1", "type": "survey.submitted", "ts": START,
                      "contact_id": "y", "kind": "csat", "score": 11}),
        orjson.dumps({"event_id": "l1", "type": "contact.answered", "ts": START + 60,
                      "contact_id": f"never-{rng.random()}"}),
        orjson.dumps({"event_id": "l2", "type": "survey.submitted", "ts": START + 60,
                      "contact_id": "nobody", "kind": "nps", "score": 3}),
    ]


def mixed(lines: list[bytes], seed: int) -> tuple[list[bytes], list[bytes]]:
    """Lines with bad input and repeats (at-least-once delivery) put in; returns (all, bad)."""
    rng = random.Random(seed)
    out = list(lines)
    bad = bad_lines(rng)
    for line in bad:
        out.insert(rng.randrange(len(out)), line)
    for _ in range(len(lines) // 50):  # a repeat arrives after the original
        i = rng.randrange(len(out) - 1)
        out.insert(rng.randrange(i + 1, len(out) + 1), out[i])
    return out, bad


def wait_for_figures(urls: list[str], wanted: Samples, deployment: Deployment,
                     shared: bool = False) -> dict[str, Samples]:
    """Wait until the workers' series together are `wanted`; with `shared`, also until every
    worker exports some of them (the group has spread the partitions) and none twice."""
    latest: dict[str, Samples] = {}

    def union() -> Samples:
        merged: Samples = {}
        for url in urls:
            latest[url] = queue_series(try_scrape(url))
            merged.update(latest[url])
        return merged

    def spread() -> bool:
        return all(latest.values()) and sum(map(len, latest.values())) == len(wanted)

    try:
        wait_until(lambda: matches(union(), wanted) and (not shared or spread()), DEADLINE,
                   "the engine's figures")
    except TimeoutError:
        pytest.fail(f"{describe_difference(union(), wanted)}\n{lag_of(urls)}\n"
                    f"{deployment.log_tail()}")
    return latest


def lag_of(urls: list[str]) -> str:
    """Each worker's records behind per partition it consumes, for a failure's text: a
    partition left unread shows there."""
    lines = []
    for url in urls:
        samples = try_scrape(url) or {}
        lag = sorted((dict(labels)["topic"], int(dict(labels)["partition"]), value)
                     for (name, labels), value in samples.items()
                     if name == "ccmon_consumer_lag_records")
        lines.append(f"{url} lag (topic, partition, records behind): {lag}")
    return "\n".join(lines)


def test_worker_exports_exactly_the_engines_figures(deployment: Deployment):
    lines, bad = mixed(simulated(seed=5, hours=3), seed=5)
    wanted = engine_figures(lines, deployment.settings)
    worker = deployment.start_worker()
    deployment.send(lines)
    wait_for_figures([worker.metrics_url], wanted, deployment)

    health = try_scrape(worker.metrics_url)
    assert total(health, "ccmon_events_invalid_total") == len(bad)
    assert total(health, "ccmon_events_duplicate_total") == len(lines) - len(set(lines))
    assert total(health, "ccmon_events_total") == len(set(lines)) - len(bad)
    latest_ms = max(parse_ts(orjson.loads(line)["ts"]) for line in set(lines) - set(bad))
    assert health[("ccmon_clock_timestamp_seconds", frozenset())] == latest_ms / 1000

    def lag() -> dict:
        return {labels: value for (name, labels), value in try_scrape(worker.metrics_url).items()
                if name == "ccmon_consumer_lag_records"}

    # Everything read: the lag of every partition read so far is 0, the facts' included.
    wait_until(lambda: (current := lag()) and not any(current.values()), DEADLINE,
               "no consumer lag")
    topics = {dict(labels)["topic"] for labels in lag()}
    assert {f"{deployment.settings.app_id}-facts", deployment.settings.agents_topic} <= topics

    letters = asyncio.run(read_topic(deployment.settings.bootstrap(),
                                     deployment.settings.deadletter_topic, len(bad)))
    assert sorted(value for value, _ in letters) == sorted(bad)
    assert all(headers.get("ccmon-reason") for _, headers in letters)
    reasons = {value: headers["ccmon-reason"] for value, headers in letters}
    assert reasons[b"\xff\xfe not UTF-8"] == "not_utf8"
    assert reasons[b'["an", "array"]'] == "not_object"


async def read_topic(bootstrap: str, topic: str, count: int) -> list[tuple[bytes, dict]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest")
    await consumer.start()
    out = []
    try:
        async with asyncio.timeout(DEADLINE):
            while len(out) < count:
                for messages in (await consumer.getmany(timeout_ms=1000)).values():
                    out += [(m.value, {k: v.decode() for k, v in m.headers}) for m in messages]
    finally:
        await consumer.stop()
    return out


def test_sigkill_and_restart_lose_and_double_count_nothing(deployment: Deployment):
    lines, _ = mixed(simulated(seed=9, hours=4), seed=9)
    half = len(lines) // 2
    first, second = lines[:half], lines[half:]

    worker = deployment.start_worker()
    deployment.send(first)
    # Killed once the first half is applied: offsets are not all committed yet, so the next
    # worker reads some events again that the logged state already holds.
    wait_until(lambda: total(try_scrape(worker.metrics_url) or {}, "ccmon_events_total")
               + total(try_scrape(worker.metrics_url) or {}, "ccmon_events_invalid_total")
               + total(try_scrape(worker.metrics_url) or {}, "ccmon_events_duplicate_total")
               >= len(first), DEADLINE, "the first half applied")
    worker.send_signal(signal.SIGKILL)
    worker.wait()

    deployment.send(second)
    worker = deployment.start_worker()
    # Killed again as soon as it makes progress: in the middle of the second half.
    wait_until(lambda: total(try_scrape(worker.metrics_url) or {}, "ccmon_events_total") > 0,
               DEADLINE, "the restarted worker to make progress", interval=0.02)
    worker.send_signal(signal.SIGKILL)
    worker.wait()

    worker = deployment.start_worker()
    wait_for_figures([worker.metrics_url], engine_figures(lines, deployment.settings), deployment)


def poison_pairs() -> list[tuple[bytes, bytes, str]]:
    """(poison message, the next event on its key, the reason) for each message that once
    stopped the worker for good (or would now stall it), as events.md 1.1 lists them."""
    def queued(contact: str, **fields: object) -> dict:
        return {"event_id": f"q-{contact}", "type": "contact.queued", "ts": START + 30,
                "contact_id": contact, "queue": "billing", **fields}

    poison = [
        (b'{"event_id":"p1","type":"contact.queued","ts":1e308,"contact_id":"k1","queue":"q"}',
         "bad_ts"),
        (orjson.dumps({**queued("k2"), "event_id": "p2", "type": {"an": "object"}}),
         "wrong_type"),
        (orjson.dumps({**queued("k3"), "event_id": "p3", "type": ["a", "list"]}), "wrong_type"),
        (orjson.dumps({"event_id": "p4", "type": "survey.submitted", "ts": START + 20,
                       "contact_id": "k4", "kind": ["csat"], "score": 3, "queue": "billing"}),
         "wrong_type"),
        (orjson.dumps({"event_id": "p5", "type": "contact.ended", "ts": START + 20,
                       "contact_id": "k5", "wrap_seconds": 1e308}), "bad_value"),
        (orjson.dumps({**queued("k6"), "event_id": "p6", "junk": "x" * 1_000_000}), None),
    ]
    # The ~1 MB message is valid JSON with an unknown field: invalid only by its id below.
    poison[-1] = (poison[-1][0].replace(b'"p6"', b'""'), "bad_value")
    pairs = [(raw, orjson.dumps(queued(f"k{i}")), reason)
             for i, (raw, reason) in enumerate(poison, 1)]
    agent = {"event_id": "a-k7", "type": "agent.state", "ts": START + 30, "agent_id": "k7",
             "state": "available", "queues": ["billing"]}
    pairs.insert(0, (orjson.dumps({**agent, "event_id": "p7", "state": ["busy"]}),
                     orjson.dumps(agent), "wrong_type"))
    return pairs


def test_poison_messages_are_dead_lettered_once_and_the_next_event_applied(
        deployment: Deployment):
    lines = simulated(seed=21, hours=1)
    pairs = poison_pairs()
    for raw, follower, _ in pairs:  # last, so the kill below finds them not yet committed
        lines += [raw, follower]
    wanted = engine_figures(lines, deployment.settings)
    worker = deployment.start_worker()
    deployment.send(lines)
    wait_for_figures([worker.metrics_url], wanted, deployment)
    assert total(try_scrape(worker.metrics_url), "ccmon_events_invalid_total") == len(pairs)

    worker.send_signal(signal.SIGKILL)
    worker.wait()
    # As after a crash before any commit (or an operator's offset reset): the next worker
    # reads every input again. It must account for none of it a second time.
    settings = deployment.settings
    inputs = [*settings.channel_topics.values(), settings.agents_topic]
    wait_until(lambda: asyncio.run(rewind(settings.bootstrap(), settings.app_id, inputs)),
               DEADLINE, "the group's offsets rewound (the killed member gone)", interval=0.5)
    worker = deployment.start_worker()
    wait_for_figures([worker.metrics_url], wanted, deployment)
    wait_until(lambda: not any(value for (name, _), value in try_scrape(
        worker.metrics_url).items() if name == "ccmon_consumer_lag_records"), DEADLINE,
        "everything read again")
    again = try_scrape(worker.metrics_url)
    for name in ("ccmon_events_invalid_total", "ccmon_events_duplicate_total",
                 "ccmon_events_total"):
        assert total(again, name) == 0, name

    letters = asyncio.run(read_topic(deployment.settings.bootstrap(),
                                     deployment.settings.deadletter_topic, len(pairs)))
    assert len(letters) == len(pairs)
    assert asyncio.run(topic_size(deployment.settings.bootstrap(),
                                  deployment.settings.deadletter_topic)) == len(pairs)
    by_reason = sorted((headers["ccmon-reason"], value[:40]) for value, headers in letters)
    assert by_reason == sorted((reason, raw[:40]) for raw, _, reason in pairs)
    huge = next(headers for value, headers in letters if len(value) > 100_000)
    assert huge["ccmon-original-size"] == str(len(pairs[-1][0]))


def test_dead_letters_a_crashed_owner_wrote_are_not_written_again(deployment: Deployment):
    """The gap between a batch's dead letters acknowledged and its state logged: a previous
    owner wrote the dead letter of offset 0 and died before logging it. Reading offset 0
    again, the worker finds that dead letter in the topic and does not write a second."""
    settings = deployment.settings
    voice, dead_topic = settings.channel_topics["voice"], settings.deadletter_topic
    bad = [b'{"event_id": "cut', b'{"event_id": "cut too']
    valid = orjson.dumps({"event_id": "v1", "type": "contact.queued", "ts": START,
                          "contact_id": "c1", "queue": "billing"})

    async def crashed_owner() -> None:
        await ensure_topics(settings.bootstrap(), [*settings.channel_topics.values(),
                                                   settings.agents_topic, dead_topic], 4)
        producer = new_producer(settings.bootstrap())
        await producer.start()
        try:
            for value in [*bad, valid]:
                await producer.send_and_wait(voice, value, partition=1)
            await producer.send_and_wait(dead_topic, bad[0], partition=1, headers=[
                ("ccmon-reason", b"invalid_json"), ("ccmon-source", f"{voice}:1:0".encode())])
        finally:
            await producer.stop()

    asyncio.run(crashed_owner())
    worker = deployment.start_worker()
    wait_until(lambda: total(try_scrape(worker.metrics_url) or {}, "ccmon_events_total") == 1,
               DEADLINE, "the valid event applied")
    assert total(try_scrape(worker.metrics_url), "ccmon_events_invalid_total") == 1
    letters = asyncio.run(read_topic(settings.bootstrap(), dead_topic, 2))
    assert sorted(headers["ccmon-source"] for _, headers in letters) == [
        f"{voice}:1:0", f"{voice}:1:1"]
    assert asyncio.run(topic_size(settings.bootstrap(), dead_topic)) == 2


async def rewind(bootstrap: str, group: str, topics: list[str]) -> bool:
    """Commit offset 0 for every partition of `topics` in `group`; False while the group
    still has members (Kafka refuses commits from outside a live group)."""
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    partitions = [TopicPartition(topic, p) for topic in topics
                  for p in consumer.partitions_for_topic(topic)]
    await consumer.stop()
    committer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                 enable_auto_commit=False)
    await committer.start()
    try:
        committer.assign(partitions)
        await committer.commit({tp: 0 for tp in partitions})
        return True
    except KafkaError:
        return False
    finally:
        await committer.stop()


async def topic_size(bootstrap: str, topic: str) -> int:
    """Records in a topic: the sum of its partitions' end offsets."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()  # subscribed: the topic's metadata is loaded
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()


def test_the_worker_honours_its_windows_and_thresholds(kafka, tmp_path):
    """Non-default windows and thresholds, in the worker and in the oracle alike."""
    deployment = Deployment(kafka, tmp_path, windows="2m,45m,2h", service_level_seconds=30,
                            short_abandon_seconds=12, service_level_by_queue="billing=10")
    try:
        lines, _ = mixed(simulated(seed=17, hours=2), seed=17)
        wanted = engine_figures(lines, deployment.settings)
        assert {dict(labels).get("window") for _, labels in wanted} >= {"2m", "45m", "2h"}
        worker = deployment.start_worker()
        deployment.send(lines)
        wait_for_figures([worker.metrics_url], wanted, deployment)
    finally:
        deployment.stop_all()


def test_two_workers_export_each_series_once(deployment: Deployment):
    lines, _ = mixed(simulated(seed=13, hours=2), seed=13)
    wanted = engine_figures(lines, deployment.settings)
    workers = [deployment.start_worker(), deployment.start_worker()]
    deployment.send(lines)
    latest = wait_for_figures([w.metrics_url for w in workers], wanted, deployment, shared=True)
    first, second = (latest[w.metrics_url] for w in workers)
    assert first and second
    assert not first.keys() & second.keys()


def test_cases_drop_on_the_event_clock_exactly_once_through_a_kill(kafka, tmp_path):
    """R = 5 min. Twenty customers each abandon one contact within the first 250 s (so no
    order of arrival among them can matter: nothing is due yet, no entry is R behind the
    clock); once they are read, one event at 20 min moves the event clock past their drop
    moments (abandon + 300 s). The worker drops exactly the engine's cases, and after kill -9
    and a restart none twice."""
    deployment = Deployment(kafka, tmp_path, case_timeout="5m")

    def line(event_id: str, kind: str, seconds: float, contact: str, **fields) -> bytes:
        return orjson.dumps({"event_id": event_id, "type": kind, "ts": START + seconds,
                             "channel": "voice", "contact_id": contact, **fields})

    first = [item for n in range(20) for item in (
        line(f"q{n}", "contact.queued", n * 10, f"c{n}", queue="billing", customer_id=f"k{n}"),
        line(f"x{n}", "contact.abandoned", n * 10 + 5, f"c{n}"))]
    late = [line("late", "contact.queued", 1200, "c-late", queue="sales", customer_id="k-late")]
    pipeline = Pipeline(EngineConfig.from_settings(deployment.settings))
    pipeline.feed(Record("file:0", offset, "voice", value)
                  for offset, value in enumerate(first + late))
    now = pipeline.intake.latest_ts
    pipeline.advance(now)
    wanted = {(name, frozenset(zip(spec_labels(name), labels, strict=True))): float(value)
              for name, labels, value in queue_metrics(pipeline.board, now)
              if name in CASE_METRICS}
    # 20 drops, in billing/voice, at 305..495 s: in the 15m and 1h windows, not in 5m.
    billing = {"queue": "billing", "channel": "voice"}
    assert wanted[("ccmon_dropped_cases", frozenset({**billing, "window": "1h"}.items()))] == 20
    assert wanted[("ccmon_dropped_cases", frozenset({**billing, "window": "5m"}.items()))] == 0

    def cases(url: str) -> Samples:
        return {key: value for key, value in (try_scrape(url) or {}).items()
                if key[0] in CASE_METRICS}

    try:
        worker = deployment.start_worker()
        deployment.send(first)
        # All read before the late event: with clock = event the cases' clock is the latest
        # event seen, so an input partition read after it would find its cases dropped.
        opened = ("ccmon_opened_cases", frozenset({**billing, "window": "1h"}.items()))
        wait_until(lambda: cases(worker.metrics_url).get(opened) == 20, DEADLINE,
                   "the twenty cases opened")
        deployment.send(late)
        wait_until(lambda: cases(worker.metrics_url) == wanted, DEADLINE, "the engine's cases")
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        worker = deployment.start_worker()
        wait_until(lambda: cases(worker.metrics_url) == wanted, DEADLINE,
                   "the same cases after a restart")
    except TimeoutError:
        pytest.fail(f"{describe_difference(cases(worker.metrics_url), wanted)}\n"
                    f"{deployment.log_tail()}")
    finally:
        deployment.stop_all()


def spec_labels(name: str) -> tuple[str, ...]:
    return next(spec.labels for spec in QUEUE_METRICS if spec.name == name)


def test_cases_drop_on_the_wall_clock(kafka, tmp_path):
    """clock = wall, R = 30 s: cases whose contacts left a minute ago are dropped by the
    worker's own second ticks: no event is later than their drop moments."""
    deployment = Deployment(kafka, tmp_path, clock="wall", case_timeout="30s")
    now = time.time()

    def line(event_id: str, kind: str, ago: float, contact: str, **fields) -> bytes:
        return orjson.dumps({"event_id": event_id, "type": kind, "ts": now - ago,
                             "channel": "voice", "contact_id": contact, **fields})

    lines = [item for n in range(5) for item in (
        line(f"q{n}", "contact.queued", 90 - n, f"c{n}", queue="billing", customer_id=f"k{n}"),
        line(f"x{n}", "contact.abandoned", 70 - n, f"c{n}"))]
    billing = {"queue": "billing", "channel": "voice"}
    # Left 66..70 s ago: dropped 36..40 s ago (+ R), inside the 5m window; none open.
    wanted = {("ccmon_dropped_cases", frozenset({**billing, "window": "5m"}.items())): 5.0,
              ("ccmon_opened_cases", frozenset({**billing, "window": "5m"}.items())): 5.0,
              ("ccmon_open_cases", frozenset(billing.items())): 0.0}

    def figures() -> Samples:
        scraped = try_scrape(worker.metrics_url) or {}
        return {key: scraped.get(key) for key in wanted}

    try:
        worker = deployment.start_worker()
        deployment.send(lines)
        wait_until(lambda: figures() == wanted, DEADLINE, "the cases dropped on the wall clock")
    except TimeoutError:
        pytest.fail(f"{figures()} != {wanted}\n{deployment.log_tail()}")
    finally:
        deployment.stop_all()
