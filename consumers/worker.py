"""`ccmon worker`: the Faust shell around the KPI engine, wired here; each job has its module.

Two stages, both batch-first:

1. `intake` (consumers/intake.py) consumes the input topics (keyed by contact or agent) and
   runs each batch through the partition's `Ledger` (stage one). Facts go to the internal
   `<app_id>-facts` topic keyed by `queue<US>channel`; bad events go to the dead-letter topic
   with their reason.
2. `aggregate` (consumers/aggregate.py) consumes the facts and updates the partition's `Board`
   (stage two), with the alert rules. Whoever owns a facts partition owns its (queue, channel)
   series and is the only one to export them.

Between them, the cases (consumers/cases.py, metrics.md 1.1): stage one sends the journey
steps of contacts with a customer to `<app_id>-journeys`, partitioned by customer id.

State lives in three Faust tables whose changelogs are written once per batch and per changed
unit (contact, agent, queue live state, minute of samples, customer), never once per event,
by consumers/changelog.py (which also fences late writers). The engine objects are the working
copy; the tables are their durable log, replayed at assignment.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Iterable

import faust
from faust.auth import Credentials

from ccmon.security import KafkaOptions, kafka_options
from ccmon.settings import Settings
from ccmon.stream.engine import EngineConfig, Intake
from ccmon.stream.queues import Board

from .aggregate import AggregateStage
from .alerting import Alerting
from .cases import CaseStage
from .changelog import ChangelogWriter, FencedTable
from .facts_out import FactSender
from .fastpath import BATCH_MAX, BatchApp
from .intake import IntakeStage

TABLES = ("contacts", "queues", "cases")
COMPACTED = {"cleanup.policy": "compact"}  # what Faust gives its changelog topics


def facts_topic(settings: Settings) -> str:
    return f"{settings.app_id}-facts"


def journeys_topic(settings: Settings) -> str:
    return f"{settings.app_id}-journeys"


def changelog_topics(settings: Settings) -> list[str]:
    return [f"{settings.app_id}-{table}-changelog" for table in TABLES]


def faust_credentials(security: KafkaOptions) -> Credentials | None:
    """`ccmon.security`'s client options as Faust's `broker_credentials`, which Faust turns
    back into the same aiokafka arguments for its consumer, producers and topic creation."""
    protocol = security["security_protocol"]
    if protocol == "SSL":
        return faust.SSLCredentials(security["ssl_context"])
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        return faust.SASLCredentials(
            username=security["sasl_plain_username"], password=security["sasl_plain_password"],
            ssl_context=security.get("ssl_context"), mechanism=security["sasl_mechanism"])
    return None


class Worker:
    """The Faust app, its topics and tables, and the stages of the partitions it owns."""

    def __init__(self, settings: Settings, partitions: int, alerting: Alerting | None = None,
                 **faust_options: object) -> None:
        self.settings = settings
        self.alerting = alerting
        self.config = config = EngineConfig.from_settings(settings)
        self.intake = Intake(config)
        self.partitions = partitions
        kafka_security = kafka_options(settings)
        options: dict[str, object] = {
            "broker": [f"kafka://{server}" for server in settings.bootstrap().split(",")],
            "broker_credentials": faust_credentials(kafka_security),
            "store": "memory://",
            "topic_partitions": partitions,
            "processing_guarantee": "at_least_once",
            "consumer_auto_offset_reset": "earliest",
            "stream_buffer_maxsize": 4 * BATCH_MAX,
            "web_enabled": True,
            "web_port": settings.metrics_port,
            "web_bind": settings.bind,
            "web_host": settings.bind,
            "table_standby_replicas": 0,
            "producer_acks": -1,
            "producer_linger_ms": 1,
            "producer_max_batch_size": 512 * 1024,  # changelog writes go as whole batches
            "broker_max_poll_records": BATCH_MAX,
            "consumer_max_fetch_size": 4 * 1024 * 1024,  # per partition: room for big batches
            "broker_session_timeout": settings.session_timeout,
            "consumer_group_instance_id": settings.group_instance_id(),
            "broker_heartbeat_interval": max(0.5, settings.session_timeout / 10),
        }
        options.update(faust_options)
        self.app = app = BatchApp(settings.app_id, **options)
        changelog = ChangelogWriter(app)
        channel_topics = settings.channel_topics
        self.topic_channels = {topic: channel for channel, topic in channel_topics.items()}
        self.topic_channels[settings.agents_topic] = None
        inputs = app.topic(*self.topic_channels, key_type=bytes, value_type=bytes,
                           key_serializer="raw", value_serializer="raw")
        facts = app.topic(facts_topic(settings), key_serializer="raw",
                          value_serializer="raw", internal=True, partitions=partitions)
        journeys = app.topic(journeys_topic(settings), key_serializer="raw",
                             value_serializer="raw", internal=True, partitions=partitions)
        self.facts_topic, self.journeys_topic = facts.get_topic_name(), journeys.get_topic_name()
        self.tables = [self._raw_table(name, partitions) for name in TABLES]
        contacts, queues, case_table = self.tables
        sender = FactSender(app, self.facts_topic, partitions)
        self.stage_one = IntakeStage(app, settings, self.intake, contacts, changelog, sender,
                                     self.journeys_topic, self.topic_channels, kafka_security)
        self.stage_two = AggregateStage(app, config, queues, changelog, self.facts_topic,
                                        alerting, settings.windows[0][0])
        self.case_stage = CaseStage(app, case_table, changelog, sender, self.journeys_topic,
                                    config.case_timeout_ms, settings.clock == "event")
        self.changelog = changelog

        # Every topic the worker consumes but the changelogs takes the batch path: Faust's
        # stream path loses events (see `_no_events`).
        app.agent(inputs, name="intake")(_no_events)
        app.agent(facts, name="aggregate")(_no_events)
        app.agent(journeys, name="cases")(_no_events)
        for topic in self.topic_channels:
            app.batch_handlers[topic] = self.stage_one.take
        app.batch_handlers[self.facts_topic] = self.stage_two.take
        app.batch_handlers[self.journeys_topic] = self.case_stage.take
        if settings.clock == "wall":
            app.task(self.case_stage.drop_every_second)
        app.on_partitions_revoked.connect(self._on_revoked)
        contacts.on_recover(self._recovered(contacts))
        queues.on_recover(self._recovered(queues, self.stage_two.rebuild))
        case_table.on_recover(self._recovered(case_table, self.case_stage.drop))
        if alerting is not None:
            app.task(self.stage_two.every_tick)
            app.task(alerting.publish_forever)

    def _raw_table(self, name: str, partitions: int) -> FencedTable:
        """A table of bytes: the engine encodes its own state (orjson), Faust only logs it."""
        app = self.app
        table = FencedTable(app, name=name, beacon=app.tables.beacon, key_type=bytes,
                            value_type=bytes, partitions=partitions)
        table.key_serializer = table.value_serializer = "raw"  # before its changelog is made
        app.tables.add(table)
        return table

    # -- rebalances --------------------------------------------------------------------------
    async def _on_revoked(self, app: faust.App, revoked: set, **_: object) -> None:
        """Rebalancing is eager: every partition is revoked, also those we get back. Let the
        pending changelog writes finish, so that the tables hold everything the engine objects
        do, then drop those objects: they are rebuilt from the tables after recovery."""
        await self.stage_one.settle(self.settings.session_timeout / 2)
        await self.case_stage.settle(self.settings.session_timeout / 2)
        self.stage_two.drop()
        self.case_stage.drop()
        self.stage_one.drop()

    def _recovered(self, table: FencedTable, then: Callable[[], None] | None = None
                   ) -> Callable[[], Awaitable[None]]:
        """A table's recovery callback. No await in it: an await there stalls Faust's
        resumption of the input partitions now and then (see consumers/intake.py)."""

        async def recovered() -> None:
            topic = table.changelog_topic.get_topic_name()
            assigned = self.app.assigned(topic)
            # Drop the keys of partitions that went to another worker: if one comes back, its
            # recovery replays the whole changelog, but the tombstones in it may be compacted.
            data = table.data
            for key in [key for key in data if int(key.partition(b"/")[0]) not in assigned]:
                del data[key]
            # The keys whose last record recovery skipped as a zombie's (see `changelog`),
            # logged again with the value recovered, so that the log's last record says it too.
            self.changelog.rewrite(table, assigned)
            if then is not None:
                then()

        return recovered

    # -- for /metrics ------------------------------------------------------------------------
    def owned_boards(self) -> Iterable[Board]:
        return self.stage_two.owned_boards()

    def consumer_lag(self) -> list[tuple[str, int, int]]:
        """(topic, partition, records behind) for the input, facts and journeys partitions
        assigned here."""
        return self.app.records_behind({*self.topic_channels, self.facts_topic,
                                        self.journeys_topic})

    def alerting_figures(self) -> tuple[list, Counter, int]:
        """(alerts firing in the owned partitions, transitions by (rule, status) in this
        process, transitions not yet in the store) for /metrics."""
        if self.alerting is None:
            return [], Counter(), 0
        owned = self.app.assigned(self.facts_topic)
        return (list(self.alerting.firing(owned)), self.alerting.transitions,
                self.alerting.unpublished())

    def event_clock(self) -> int:
        """The largest event ts this worker has seen, in ms (metrics.md, clock = event)."""
        return max([self.intake.latest_ts,
                    *(b.latest_ts for b in self.stage_two.boards.values())])


async def _no_events(stream: faust.StreamT) -> None:
    """The agent of topics that take the batch path: it subscribes them (Faust then assigns
    them with the tables and commits their acknowledged offsets); no event reaches it.

    Not Faust's stream path: events it has put in a stream's queue are lost when its recovery
    resumes the flow after seeking the partitions (`flow_control.resume()` clears every
    stream queue), and its fetcher hands events over while that seek runs. Facts lost so left
    a restarted worker's figures short now and then (docs/design.md, "Faust's stream path
    loses events")."""
    async for _ in stream:
        pass
