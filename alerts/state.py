"""The lifecycle of alerts (alerts.md), pure: no clock, no I/O, no asyncio.

One alert is one rule and one label set (the series' labels less `window`):
`inactive → pending` (condition true) `→ firing` (true for at least `for` on the monitor
clock) `→ resolved` (condition false, or past `clear`, or the series gone). A pending alert
whose condition fails goes back to inactive and is never told. Each firing → resolved cycle
has its own id, derived from the rule, the labels and the moment it fired, so that a
restarted or replaying evaluator gives the same alert the same id.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .rules import Rule

FIRING = "firing"
RESOLVED = "resolved"

Series = tuple[str, Mapping[str, str], float]  # (metric, labels, value)
AlertKey = tuple[str, frozenset]  # (rule name, labels less window)


def rfc3339(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    text = moment.isoformat(timespec="milliseconds" if ms % 1000 else "seconds")
    return text.replace("+00:00", "Z")


def plain(value: float) -> float | int:
    """12.0 -> 12: numbers in messages as a person would write them."""
    return int(value) if float(value).is_integer() else value


def alert_id(rule: str, labels: Mapping[str, str], starts_at: int) -> str:
    text = "\x1f".join([rule, *(f"{k}={v}" for k, v in sorted(labels.items())), str(starts_at)])
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass
class Alert:
    id: str
    rule: Rule
    labels: dict[str, str]
    status: str
    value: float
    starts_at: int  # Unix ms: when it began firing
    ends_at: int | None = None
    acked_by: str | None = None

    def message(self) -> dict[str, Any]:
        """The WebSocket message of alerts.md for this alert as it is now."""
        return {"type": "alert", "id": self.id, "rule": self.rule.name, "status": self.status,
                "severity": self.rule.severity, "labels": dict(self.labels),
                "value": plain(self.value), "threshold": plain(self.rule.threshold),
                "summary": self.rule.summary, "starts_at": rfc3339(self.starts_at),
                "ends_at": None if self.ends_at is None else rfc3339(self.ends_at),
                "acked_by": self.acked_by}


class Evaluator:
    """Every rule's alerts, moved along by `evaluate(now, series)` at the monitor clock."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.by_metric: dict[str, list[Rule]] = {}
        for rule in rules:
            self.by_metric.setdefault(rule.metric, []).append(rule)
        self.pending: dict[AlertKey, int] = {}  # since when the condition holds
        self.firing: dict[AlertKey, Alert] = {}
        self.now: int | None = None
        self.changed = False  # pending or firing alerts came or went since `take_changed`

    def evaluate(self, now: int, series: Iterable[Series]) -> list[Alert]:
        """The transitions (alerts that began firing or resolved) at `now`, given every series
        of the metrics the rules watch as they are at `now`."""
        if self.now is not None and now < self.now:
            return []  # the monitor clock never goes back
        self.now = now
        current: dict[AlertKey, tuple[Rule, dict[str, str], float]] = {}
        for name, labels, value in series:
            for rule in self.by_metric.get(name, ()):
                if rule.matches(name, labels):
                    alert_labels = {k: v for k, v in labels.items() if k != "window"}
                    current[(rule.name, frozenset(alert_labels.items()))] = (
                        rule, alert_labels, value)
        transitions = []
        for key, (rule, labels, value) in current.items():
            alert = self.firing.get(key)
            if alert is not None:
                alert.value = value
                if not rule.keeps_firing(value):
                    transitions.append(self._resolve(key, now))
            elif rule.holds(value):
                since = self.pending.get(key)
                if since is None:
                    since = self.pending[key] = now
                    self.changed = True
                if now - since >= rule.for_ms:
                    del self.pending[key]
                    alert = Alert(alert_id(rule.name, labels, now), rule, labels, FIRING, value,
                                  starts_at=now)
                    self.firing[key] = alert
                    transitions.append(dataclasses.replace(alert))
            elif self.pending.pop(key, None) is not None:
                self.changed = True
        for key in [key for key in self.firing if key not in current]:
            transitions.append(self._resolve(key, now))  # the series is gone: no data
        for key in [key for key in self.pending if key not in current]:
            del self.pending[key]
            self.changed = True
        if transitions:
            self.changed = True
        return transitions

    def _resolve(self, key: AlertKey, now: int) -> Alert:
        # A new object: a transition handed out stays as it was told.
        return dataclasses.replace(self.firing.pop(key), status=RESOLVED, ends_at=now)

    # -- persistence: the worker logs this state with its partition's board -------------------
    def take_changed(self) -> bool:
        changed, self.changed = self.changed, False
        return changed

    def state(self) -> dict[str, Any]:
        """JSON-able: what a restarted evaluator needs to go on (values come back at the next
        evaluation)."""
        return {
            "now": self.now,
            "pending": [[name, dict(labels), since]
                        for (name, labels), since in self.pending.items()],
            "firing": [[a.rule.name, a.labels, a.id, a.value, a.starts_at, a.rule.severity,
                        a.rule.threshold, a.rule.summary] for a in self.firing.values()],
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        rules = {rule.name: rule for watched in self.by_metric.values() for rule in watched}
        if state["now"] is not None:
            self.now = max(self.now or 0, state["now"])
        for name, labels, since in state["pending"]:
            if name in rules:  # a rule no longer in the file has nothing pending
                self.pending[(name, frozenset(labels.items()))] = since
        for name, labels, id_, value, starts_at, severity, threshold, summary in \
                state["firing"]:
            # A rule gone from the file watches nothing: its alert resolves at the next
            # evaluation, as a series that disappeared.
            rule = rules.get(name) or Rule(name=name, metric="", op=">", threshold=threshold,
                                           severity=severity, summary=summary)
            self.firing[(name, frozenset(labels.items()))] = Alert(
                id_, rule, dict(labels), FIRING, value, starts_at)
