"""The pure engine's figures for a list of event lines, and comparing them with a worker's.

How tests and benchmarks know that a worker is done, and right: its queue series equal what
the KPI engine computes for the same lines in one process, at the event clock.
"""

from __future__ import annotations

import orjson

from ccmon.launch import Samples
from ccmon.produce import route
from ccmon.settings import Settings
from ccmon.stream.engine import EngineConfig, Pipeline, Record
from ccmon.stream.kpis import QUEUE_METRICS, queue_metrics

QUEUE_NAMES = {spec.name for spec in QUEUE_METRICS}
_LABELS = {spec.name: spec.labels for spec in QUEUE_METRICS}


def engine_figures(lines: list[bytes], settings: Settings) -> Samples:
    """The queue series the pure engine computes for `lines` (in order), at the event clock,
    with the settings' windows, thresholds and retention."""
    pipeline = Pipeline(EngineConfig.from_settings(settings))
    records = []
    for offset, line in enumerate(lines):
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            event = None
        topic, _ = route(settings, event)
        channel = None if topic == settings.agents_topic else topic.rsplit(".", 1)[1]
        records.append(Record("file:0", offset, channel, line))
    pipeline.feed(records)
    now = pipeline.intake.latest_ts
    pipeline.advance(now)  # the cases dropped by the event clock
    return {(name, frozenset(zip(_LABELS[name], labels, strict=True))): float(value)
            for name, labels, value in queue_metrics(pipeline.board, now)}


def queue_series(samples: Samples | None) -> Samples:
    return {key: value for key, value in (samples or {}).items() if key[0] in QUEUE_NAMES}


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 + 1e-9 * abs(b)


def matches(actual: Samples, wanted: Samples) -> bool:
    return actual.keys() == wanted.keys() and all(
        _close(actual[key], value) for key, value in wanted.items())


def describe_difference(actual: Samples, wanted: Samples) -> str:
    missing = sorted(map(str, wanted.keys() - actual.keys()))[:5]
    extra = sorted(map(str, actual.keys() - wanted.keys()))[:5]
    wrong = [f"{key}: {actual[key]} != {value}" for key, value in wanted.items()
             if key in actual and not _close(actual[key], value)][:5]
    return f"missing {missing}; extra {extra}; wrong {wrong}"
