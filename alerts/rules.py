"""Alert rules (alerts.md): read and check a rules file; refuse a bad one naming rule and field.

Rules apply to the queue metrics of metrics.md (state gauges, `ccmon_agents`, windowed
figures): those are exported by exactly one worker each, so each alert is evaluated once.
The health metrics are per worker process and cumulative; the SRE alerts on them are the
Prometheus rules in `alerts/prometheus/`.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from ccmon.stream.durations import parse_duration
from ccmon.stream.kpis import QUEUE_METRICS

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
SEVERITIES = ("info", "warning", "critical")
METRIC_LABELS = {spec.name: spec.labels for spec in QUEUE_METRICS}
FIELDS = ("name", "metric", "where", "window", "op", "threshold", "for", "clear", "severity",
          "summary")


class RulesError(ValueError):
    """A rules file that cannot be used; the message names the rule and the field."""


@dataclass(frozen=True)
class Rule:
    name: str
    metric: str
    op: str
    threshold: float
    where: Mapping[str, str] = field(default_factory=dict)
    window: str | None = None
    for_ms: int = 0
    clear: float | None = None
    severity: str = "warning"
    summary: str = ""

    def holds(self, value: float) -> bool:
        """The condition: the alert goes pending (then firing) while this is true."""
        return OPERATORS[self.op](value, self.threshold)

    def keeps_firing(self, value: float) -> bool:
        """While firing: still on the alerting side of `clear` (hysteresis), or of the
        threshold when there is no `clear`."""
        return OPERATORS[self.op](value, self.threshold if self.clear is None else self.clear)

    def matches(self, name: str, labels: Mapping[str, str]) -> bool:
        return name == self.metric and labels.get("window") == self.window and all(
            labels.get(key) == value for key, value in self.where.items())


def load_rules(path: str, windows: tuple[str, ...]) -> list[Rule]:
    """The rules of a YAML file; `windows` are the configured window labels."""
    try:
        with open(path, encoding="utf-8") as file:
            document = yaml.safe_load(file)
    except OSError as exc:
        raise RulesError(f"cannot read the rules file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise RulesError(f"the rules file {path} is not valid YAML: {exc}") from None
    return parse_rules(document, windows)


def parse_rules(document: Any, windows: tuple[str, ...]) -> list[Rule]:
    if not isinstance(document, dict) or not isinstance(document.get("rules"), list):
        raise RulesError("the rules file must be a mapping with a list under `rules`")
    rules: list[Rule] = []
    names: set[str] = set()
    for index, entry in enumerate(document["rules"], start=1):
        rule = _rule(entry, index, windows)
        if rule.name in names:
            raise RulesError(f"rule {rule.name!r}: field `name`: used by another rule")
        names.add(rule.name)
        rules.append(rule)
    return rules


def _rule(entry: Any, index: int, windows: tuple[str, ...]) -> Rule:
    if not isinstance(entry, dict):
        raise RulesError(f"rule #{index}: must be a mapping of fields")
    name = entry.get("name")
    who = f"rule {name!r}" if isinstance(name, str) and name else f"rule #{index}"

    def bad(field_name: str, why: str) -> RulesError:
        return RulesError(f"{who}: field `{field_name}`: {why}")

    unknown = sorted(set(entry) - set(FIELDS))
    if unknown:
        raise bad(unknown[0], f"unknown field (known: {', '.join(FIELDS)})")
    if not isinstance(name, str) or not name:
        raise bad("name", "required, a non-empty string")
    metric = entry.get("metric")
    if metric not in METRIC_LABELS:
        raise bad("metric", f"{metric!r} is not a queue metric of metrics.md")
    labels = METRIC_LABELS[metric]
    windowed = "window" in labels
    window = entry.get("window")
    if windowed and window not in windows:
        raise bad("window", f"required for {metric}: one of {', '.join(windows)}")
    if not windowed and window is not None:
        raise bad("window", f"{metric} is not windowed")
    where = entry.get("where") or {}
    if not isinstance(where, dict):
        raise bad("where", "a mapping of label: value")
    for key, value in where.items():
        if key not in labels or key == "window":
            allowed = ", ".join(label for label in labels if label != "window")
            raise bad("where", f"{key!r} is not a label of {metric} ({allowed})")
        if not isinstance(value, str):
            raise bad("where", f"the value of {key!r} must be a string")
    op = entry.get("op")
    if op not in OPERATORS:
        raise bad("op", f"{op!r} is not one of {' '.join(OPERATORS)}")
    threshold = _number(entry.get("threshold"), lambda why: bad("threshold", why))
    clear = entry.get("clear")
    if clear is not None:
        clear = _number(clear, lambda why: bad("clear", why))
        if OPERATORS[op](clear, threshold):
            raise bad("clear", f"must be on the other side of the threshold from `{op}` "
                               f"(or equal to it): {clear:g} vs {threshold:g}")
    for_ms = _for_ms(entry.get("for", "0s"), lambda why: bad("for", why))
    severity = entry.get("severity", "warning")
    if severity not in SEVERITIES:
        raise bad("severity", f"{severity!r} is not one of {', '.join(SEVERITIES)}")
    summary = entry.get("summary", "")
    if not isinstance(summary, str):
        raise bad("summary", "must be a string")
    return Rule(name=name, metric=metric, op=op, threshold=threshold, where=dict(where),
                window=window if windowed else None, for_ms=for_ms, clear=clear,
                severity=severity, summary=summary)


def _number(value: Any, bad: Callable[[str], RulesError]) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise bad(f"{value!r} is not a number")
    return float(value)


def _for_ms(value: Any, bad: Callable[[str], RulesError]) -> int:
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return round(value * 1000)  # plain seconds
    if isinstance(value, str):
        if value.strip() in ("0", "0s"):
            return 0
        try:
            return round(parse_duration(value) * 1000)
        except ValueError as exc:
            raise bad(str(exc)) from None
    raise bad(f"{value!r} is not a duration like 0s, 60s, 5m")
