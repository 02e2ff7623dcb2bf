"""The pure engine's figures for a list of event lines, and comparing them with a worker's.

How tests and benchmarks know that a worker is done, and right: its queue series equal what
the KPI engine computes for the same lines in one process, at the event clock (the cases
series as far as the order of arrival leaves them: `order_free`).
"""

from __future__ import annotations

import orjson

from ccmon.launch import Samples
from ccmon.produce import route
from ccmon.settings import Settings
from ccmon.stream.engine import EngineConfig, Pipeline, Record
from ccmon.stream.kpis import CASE_METRICS, QUEUE_METRICS, queue_metrics

QUEUE_NAMES = {spec.name for spec in QUEUE_METRICS}
_LABELS = {spec.name: spec.labels for spec in QUEUE_METRICS}


def engine_figures(lines: list[bytes], settings: Settings) -> Samples:
    """The queue series the pure engine computes for `lines` (in order), at the event clock,
    with the settings' windows, thresholds and retention."""
    pipeline = engine_pipeline(lines, settings)
    now = pipeline.intake.latest_ts
    return order_free({(name, frozenset(zip(_LABELS[name], labels, strict=True))): float(value)
                       for name, labels, value in queue_metrics(pipeline.board, now)})


def engine_pipeline(lines: list[bytes], settings: Settings) -> Pipeline:
    """The pure engine fed `lines` (in order, each to its topic's channel as `ccmon replay`
    sends it), moved to its event clock."""
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
    pipeline.advance(pipeline.intake.latest_ts)  # the cases dropped by the event clock
    return pipeline


def queue_series(samples: Samples | None) -> Samples:
    return order_free({key: value for key, value in (samples or {}).items()
                       if key[0] in QUEUE_NAMES})


OPENED, REPEAT = "ccmon_opened_cases", "ccmon_repeat_contacts"


def order_free(samples: Samples) -> Samples:
    """The series as far as the order of arrival leaves them. Cases take a customer's contacts
    as they come (metrics.md 1.1), and across input topics and partitions a worker gets them
    in another order than the lines: which contact opened a case, whether a `resolved` finds
    it open, depend on it. What no order changes: which case series exist, and per series the
    contacts with a customer that entered it (opened + repeat), kept as `ccmon_opened_cases`;
    every other case value is 0 here."""
    out = {}
    for key, value in samples.items():
        name, labels = key
        if name == OPENED:
            out[key] = value + samples.get((REPEAT, labels), 0.0)
        elif name in CASE_METRICS:
            out[key] = 0.0
        else:
            out[key] = value
    return out


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 + 1e-9 * abs(b)


def matches(actual: Samples, wanted: Samples) -> bool:
    return actual.keys() == wanted.keys() and all(
        _close(actual[key], value) for key, value in wanted.items())


def describe_difference(actual: Samples, wanted: Samples) -> str:
    """The first few differing samples of each kind, their counts, and every series (labels
    but the window and quantile) with a difference: which partition went wrong shows there."""
    missing = sorted(map(str, wanted.keys() - actual.keys()))
    extra = sorted(map(str, actual.keys() - wanted.keys()))
    wrong_keys = [key for key, value in wanted.items()
                  if key in actual and not _close(actual[key], value)]
    wrong = [f"{key}: {actual[key]} != {wanted[key]}" for key in wrong_keys]
    differing = {key for key in (wanted.keys() ^ actual.keys())} | set(wrong_keys)
    series = sorted({tuple(sorted((name, value) for name, value in labels
                                  if name not in ("window", "quantile")))
                     for _, labels in differing})
    return (f"{len(missing)} missing {missing[:5]}; {len(extra)} extra {extra[:5]}; "
            f"{len(wrong)} wrong {wrong[:5]}; series differing: {series}")
