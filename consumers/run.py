"""Starting a worker process: reach Kafka, check the topics, run Faust with the /metrics page."""

from __future__ import annotations

import asyncio
import gc
import logging
from http import HTTPStatus

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ccmon.alerts.gateway import Gateway
from ccmon.alerts.rules import RulesError, load_rules
from ccmon.alerts.store import AlertStore, RedisStore, open_store
from ccmon.alerts.tokens import TokensError, load_tokens
from ccmon.console import check_port_free, say
from ccmon.errors import SettingsError
from ccmon.kafka import ensure_topics, wait_for_brokers
from ccmon.security import kafka_options, redis_options
from ccmon.settings import Settings

from .alerting import Alerting
from .exporter import KpiCollector, MonitorClock, registry_for
from .worker import COMPACTED, Worker, changelog_topics, facts_topic, journeys_topic

GC_YOUNG = 100_000  # allocations between young collections (CPython's default: 700)

# aiohttp sets the charset itself and refuses one inside content_type.
EXPOSITION_TYPE = CONTENT_TYPE_LATEST.split("; charset")[0]


async def input_partitions(settings: Settings) -> int:
    """Partitions of the input topics (created if missing); they must all be equal, because a
    contact's state and its events must meet in the same partition number."""
    bootstrap, security = settings.bootstrap(), kafka_options(settings)
    await wait_for_brokers(bootstrap, security=security)
    topics = [*settings.channel_topics.values(), settings.agents_topic]
    counts = await ensure_topics(bootstrap, [*topics, settings.deadletter_topic],
                                 settings.partitions, security=security)
    inputs = {topic: counts.get(topic) for topic in topics}
    if len(set(inputs.values())) != 1 or None in inputs.values():
        listed = ", ".join(f"{topic}={count}" for topic, count in inputs.items())
        raise SettingsError(f"input topics must have equal partition counts, found {listed}")
    partitions = next(iter(inputs.values()))
    # The internal topics must exist before the first group assignment, or Faust assigns none
    # of their partitions until a second rebalance, in the middle of the first work.
    internal = [facts_topic(settings), journeys_topic(settings)]
    changelogs = changelog_topics(settings)
    counts = await ensure_topics(bootstrap, internal, partitions, security=security)
    counts |= await ensure_topics(bootstrap, changelogs, partitions, COMPACTED,
                                  security=security)
    for topic in (*internal, *changelogs):
        if counts.get(topic) != partitions:
            raise SettingsError(f"topic {topic} has {counts.get(topic)} partitions, the input "
                                f"topics {partitions}: delete it or use another CCMON_APP_ID")
    return partitions


def load_alerting(settings: Settings, store: AlertStore | None) -> Alerting | None:
    """The worker's alerting, or None without rules; a bad rules file is one line."""
    if not settings.rules:
        return None
    try:
        rules = load_rules(settings.rules, tuple(label for label, _ in settings.windows))
    except RulesError as exc:
        raise SettingsError(str(exc)) from None
    if store is None:
        say("no CCMON_REDIS_URL: alerts are evaluated and counted in /metrics, not delivered")
    return Alerting(rules, store, settings.clock, settings.eval_interval)


def build_worker(settings: Settings, partitions: int, alerting: Alerting | None = None,
                 **faust_options: object) -> Worker:
    worker = Worker(settings, partitions, alerting, **faust_options)
    clock = MonitorClock(settings.clock, worker.event_clock)
    # The alert outbox's health, where alerts are delivered (to Redis, or in memory).
    health = alerting.health if alerting is not None and alerting.store is not None else None
    registry = registry_for(KpiCollector(worker.intake, worker.owned_boards, clock,
                                         worker.consumer_lag, worker.alerting_figures),
                            *([health] if health is not None else []))

    @worker.app.page("/metrics")
    async def metrics(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        return web.bytes(generate_latest(registry), content_type=EXPOSITION_TYPE)

    @worker.app.page("/healthz")
    async def healthz(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        status, body = health.healthz() if health is not None else (HTTPStatus.OK, b"ok\n")
        return web.bytes(body, content_type="text/plain", status=status.value)

    return worker


def tune_gc() -> None:
    """The worker keeps a day of contacts: millions of long-lived objects that CPython's
    default collector rescans over and over (30 % of the engine's time, pauses of 0.5 s
    measured in bench). Collect young objects far less often, and leave what exists at
    start-up out of every collection."""
    gc.set_threshold(GC_YOUNG, 50, 100)
    gc.freeze()


def run_worker(settings: Settings, loglevel: str = "WARNING", with_gateway: bool = False
               ) -> int:
    """A worker; `with_gateway` also serves the gateway in this process (`ccmon demo`), with
    the alerts in memory unless CCMON_REDIS_URL is set."""
    check_port_free(settings.bind, settings.metrics_port, "CCMON_METRICS_PORT")
    if with_gateway:
        check_port_free(settings.bind, settings.ws_port, "CCMON_WS_PORT")
        try:
            tokens = load_tokens(settings.tokens)
        except TokensError as exc:
            raise SettingsError(str(exc)) from None
    store = open_store(settings.redis_url, settings.app_id, redis_options(settings)) if (
        settings.redis_url or with_gateway) else None
    alerting = load_alerting(settings, store)
    if alerting is None and store is not None:
        # no rules: the page still has tiles
        alerting = Alerting([], store, settings.clock, settings.eval_interval)
    tune_gc()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)  # Faust runs on this loop too
    try:
        if isinstance(store, RedisStore):
            loop.run_until_complete(store.check())
        partitions = loop.run_until_complete(input_partitions(settings))
    except KeyboardInterrupt:
        return 130
    worker = build_worker(settings, partitions, alerting)
    if with_gateway:
        gateway = Gateway(store, tokens, settings.agents_window)

        @worker.app.task
        async def serve_gateway() -> None:
            await gateway.start(settings.bind, settings.ws_port)

        say(f"gateway: supervisor page http://{settings.bind}:{settings.ws_port}/ · WebSocket "
            f"ws://{settings.bind}:{settings.ws_port}/ws")
    say(f"worker {settings.app_id}: consuming {settings.bootstrap()}, {partitions} partitions, "
        f"metrics on http://{settings.bind}:{settings.metrics_port}/metrics")
    logging.getLogger("faust").setLevel(loglevel)
    process = faust.Worker(worker.app, loglevel=loglevel, quiet=True, loop=loop)
    process.spinner = None  # it writes terminal codes even to files and pipes
    process.execute_from_commandline()
    return 0
