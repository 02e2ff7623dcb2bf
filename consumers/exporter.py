"""The worker's Prometheus collector: every value computed at scrape time, at the monitor clock.

It reads the engine state of the partitions this worker owns, so a scrape of all workers never
counts a (queue, channel) series twice. Its own registry: nothing of Faust's or the process
collector's global state leaks in.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ccmon.alerts.rules import SEVERITIES
from ccmon.settings import CHANNELS
from ccmon.stream.engine import Intake
from ccmon.stream.events import REASONS
from ccmon.stream.kpis import QUEUE_METRICS, queue_metrics
from ccmon.stream.queues import Board


class MonitorClock:
    """`now` in Unix ms: wall time, or the largest event ts seen (clock = event).

    It never goes back, so windows only ever slide forward.
    """

    def __init__(self, mode: str, event_clock: Callable[[], int]) -> None:
        self.mode = mode
        self.event_clock = event_clock
        self.last = 0

    def now(self) -> int:
        current = self.event_clock() if self.mode == "event" else round(time.time() * 1000)
        self.last = max(self.last, current)
        return self.last


class KpiCollector:
    def __init__(self, intake: Intake, boards: Callable[[], Iterator[Board]],
                 clock: MonitorClock,
                 lag: Callable[[], Iterable[tuple[str, int, int]]] = tuple,
                 alerting: Callable[[], tuple[list, Counter, int]] | None = None) -> None:
        self.intake = intake
        self.alerting = alerting
        self.boards = boards
        self.clock = clock
        self.lag = lag  # (topic, partition, records behind) of what this worker consumes

    def collect(self) -> Iterator[Metric]:
        now = self.clock.now()
        families = {spec.name: GaugeMetricFamily(spec.name, spec.help, labels=spec.labels)
                    for spec in QUEUE_METRICS}
        event_clock = self.clock.mode == "event"
        for board in self.boards():
            # clock = event: a board is read at its own clock, the facts its partition has
            # applied, never ahead of them: the rules evaluate it second by second at that
            # clock (alerts/watch.py), and a scrape must not slide its windows ahead.
            at = board.latest_ts if event_clock else now
            if not at:
                continue  # clock = event, no fact yet: nothing to export, no clock to use
            for name, labels, value in queue_metrics(board, at):
                families[name].add_metric(labels, value)
        yield from families.values()
        yield from self._health(now)
        if self.alerting is not None:
            yield from self._alerting()

    def _alerting(self) -> Iterator[Metric]:
        firing, transitions, unpublished = self.alerting()
        by_severity = Counter(alert.rule.severity for alert in firing)
        gauge = GaugeMetricFamily("ccmon_alerts_firing",
                                  "Alerts firing now, of the queues this worker owns",
                                  labels=("severity",))
        for severity in SEVERITIES:
            gauge.add_metric((severity,), by_severity[severity])
        yield gauge
        counter = CounterMetricFamily("ccmon_alert_transitions_total",
                                      "Alerts that began firing or resolved, in this process",
                                      labels=("rule", "status"))
        for (rule, status), count in sorted(transitions.items()):
            counter.add_metric((rule, status), count)
        yield counter
        yield GaugeMetricFamily("ccmon_alerts_unpublished",
                                "Transitions not yet confirmed by the alert store",
                                value=unpublished)

    def _health(self, now: int) -> Iterator[Metric]:
        intake = self.intake
        events = CounterMetricFamily("ccmon_events_total", "Valid events applied",
                                     labels=("channel", "type"))
        for (channel, kind), count in sorted(intake.events.items()):
            events.add_metric((channel, kind), count)
        yield events
        invalid = CounterMetricFamily("ccmon_events_invalid_total",
                                      "Events dead-lettered, by reason", labels=("reason",))
        for reason in REASONS:
            invalid.add_metric((reason,), intake.invalid.get(reason, 0))
        yield invalid
        yield CounterMetricFamily("ccmon_events_duplicate_total", "Duplicates ignored",
                                  value=intake.duplicates)
        yield GaugeMetricFamily("ccmon_clock_timestamp_seconds",
                                "The monitor clock now, Unix seconds", value=now / 1000)
        last = GaugeMetricFamily("ccmon_last_event_timestamp_seconds",
                                 "Largest event ts seen per channel", labels=("channel",))
        for channel in CHANNELS:
            if channel in intake.last_event_ts:
                last.add_metric((channel,), intake.last_event_ts[channel] / 1000)
        yield last
        lag = GaugeMetricFamily("ccmon_consumer_lag_records",
                                "Records of an assigned partition not yet read by this worker",
                                labels=("topic", "partition"))
        for topic, partition, behind in self.lag():
            lag.add_metric((topic, str(partition)), behind)
        yield lag


def registry_for(*collectors: Collector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    for collector in collectors:
        registry.register(collector)
    return registry
