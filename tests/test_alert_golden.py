"""alerts.md's lifecycle rules, each worked out by hand on a small history: the comparison
operators at equality, `for` counted on the monitor clock, and a series that disappears
while pending or firing."""

from __future__ import annotations

import pytest

from ccmon.alerts.rules import parse_rules
from ccmon.alerts.state import FIRING, RESOLVED, Evaluator

T0 = 1_763_802_000_000  # ms
SL = {"queue": "billing", "channel": "voice", "window": "15m"}


def evaluator(op: str, threshold: float, for_: str = "0s", **extra) -> Evaluator:
    rule = {"name": "r", "metric": "ccmon_service_level_ratio", "window": "15m", "op": op,
            "threshold": threshold, "for": for_, "severity": "info", **extra}
    return Evaluator(parse_rules({"rules": [rule]}, ("15m",)))


def sl(value: float) -> list[tuple]:
    return [("ccmon_service_level_ratio", SL, value)]


@pytest.mark.parametrize(("op", "value", "fires"), [
    (">=", 0.8, True), (">", 0.8, False), ("<=", 0.8, True), ("<", 0.8, False),
    (">=", 0.79, False), (">", 0.81, True), ("<=", 0.81, False), ("<", 0.79, True),
])
def test_each_operator_at_and_around_equality(op, value, fires):
    transitions = evaluator(op, 0.8).evaluate(T0, sl(value))
    assert [a.status for a in transitions] == ([FIRING] if fires else [])


def test_for_is_measured_from_the_first_evaluation_that_holds():
    alerts = evaluator("<", 0.8, "10s")
    assert alerts.evaluate(T0 + 1_000, sl(0.7)) == []  # pending since T0 + 1 s
    assert alerts.evaluate(T0 + 10_999, sl(0.6)) == []  # 9.999 s held
    [fired] = alerts.evaluate(T0 + 11_000, sl(0.5))  # 10 s held
    assert (fired.status, fired.starts_at, fired.value) == (FIRING, T0 + 11_000, 0.5)


def test_a_series_that_disappears_while_pending_is_forgotten_silently():
    alerts = evaluator("<", 0.8, "10s")
    assert alerts.evaluate(T0, sl(0.5)) == []  # pending
    assert alerts.evaluate(T0 + 5_000, []) == []  # no samples: absent, back to inactive
    assert alerts.evaluate(T0 + 6_000, sl(0.5)) == []  # pending again, from 6 s
    assert alerts.evaluate(T0 + 15_000, sl(0.5)) == []  # 9 s: the first 5 s do not count
    [fired] = alerts.evaluate(T0 + 16_000, sl(0.5))
    assert fired.starts_at == T0 + 16_000


def test_a_firing_series_that_disappears_resolves_and_a_return_is_a_new_cycle():
    alerts = evaluator("<", 0.8)
    [fired] = alerts.evaluate(T0, sl(0.5))
    [resolved] = alerts.evaluate(T0 + 1_000, [])
    assert (resolved.id, resolved.status, resolved.ends_at) == (fired.id, RESOLVED, T0 + 1_000)
    [again] = alerts.evaluate(T0 + 2_000, sl(0.5))
    assert again.status == FIRING and again.id != fired.id


def test_clear_holds_the_alert_until_the_value_passes_it():
    alerts = evaluator("<", 0.8, clear=0.9)
    [fired] = alerts.evaluate(T0, sl(0.7))
    assert alerts.evaluate(T0 + 1_000, sl(0.85)) == []  # above the threshold, under clear
    [resolved] = alerts.evaluate(T0 + 2_000, sl(0.95))
    assert resolved.id == fired.id and resolved.value == 0.95
