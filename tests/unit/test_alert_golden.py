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


def test_the_first_evaluation_past_for_fires_not_only_one_exactly_at_it():
    alerts = evaluator("<", 0.8, "10s")
    assert alerts.evaluate(T0 + 1_000, sl(0.5)) == []
    assert alerts.evaluate(T0 + 4_000, sl(0.5)) == []
    [fired] = alerts.evaluate(T0 + 12_500, sl(0.5))  # 11.5 s held: past 10 s
    assert fired.starts_at == T0 + 12_500


def test_the_clock_never_goes_back_but_may_stand_still():
    alerts = evaluator("<", 0.8)
    assert alerts.evaluate(T0 + 1_000, sl(0.9)) == []
    [fired] = alerts.evaluate(T0 + 1_000, sl(0.5))  # the same moment, newer values
    assert fired.starts_at == T0 + 1_000
    assert alerts.evaluate(T0, []) == []  # earlier: ignored, the alert stays firing
    assert [alert.id for alert in alerts.firing.values()] == [fired.id]


def test_messages_carry_times_to_the_millisecond_and_plain_numbers():
    alerts = evaluator("<", 0.8)
    [fired] = alerts.evaluate(T0 + 1_500, sl(0.5))
    [resolved] = alerts.evaluate(T0 + 3_000, sl(1.0))
    first, last = fired.message(), resolved.message()
    assert first["starts_at"] == "2025-11-22T09:00:01.500Z"
    assert last["ends_at"] == "2025-11-22T09:00:03Z"
    assert (last["value"], type(last["value"])) == (1, int)  # 1.0 written as 1
    assert (first["value"], type(first["value"])) == (0.5, float)
    assert len(fired.id) == 20 and int(fired.id, 16) >= 0  # 20 hex digits


def test_changes_to_persist_are_told_once_each():
    alerts = evaluator("<", 0.8, "10s")
    assert alerts.take_changed() is False
    alerts.evaluate(T0, sl(0.5))
    assert alerts.take_changed() is True  # a pending alert came
    assert alerts.take_changed() is False
    alerts.evaluate(T0 + 1_000, sl(0.5))
    assert alerts.take_changed() is False  # still pending: nothing to log
    alerts.evaluate(T0 + 2_000, sl(0.9))
    assert alerts.take_changed() is True  # the pending one went
    alerts.evaluate(T0 + 3_000, sl(0.5))
    alerts.take_changed()
    alerts.evaluate(T0 + 4_000, [])
    assert alerts.take_changed() is True  # gone with its series
    alerts.evaluate(T0 + 5_000, sl(0.5))
    alerts.take_changed()
    alerts.evaluate(T0 + 15_000, sl(0.5))
    assert alerts.take_changed() is True  # fired
    alerts.evaluate(T0 + 16_000, sl(0.9))
    assert alerts.take_changed() is True  # resolved


def test_a_restored_evaluator_goes_on_from_its_state():
    """A pending alert keeps its start, a firing one its id, the clock its time; a rule gone
    from the file resolves its alert at the next evaluation."""
    other = {"queue": "sales", "channel": "voice", "window": "15m"}

    def both(billing: float, sales: float) -> list[tuple]:
        return [*sl(billing), ("ccmon_service_level_ratio", other, sales)]

    alerts = evaluator("<", 0.8, "10s")
    alerts.evaluate(T0, both(0.5, 0.5))
    [fired] = alerts.evaluate(T0 + 10_000, sl(0.5))  # billing fires; sales disappears
    alerts.evaluate(T0 + 12_000, both(0.5, 0.4))
    state = alerts.state()

    restored = evaluator("<", 0.8, "10s")
    restored.restore(state)
    assert restored.evaluate(T0 + 11_000, []) == []  # before its clock: ignored
    assert restored.evaluate(T0 + 21_000, both(0.5, 0.4)) == []
    [late] = restored.evaluate(T0 + 22_000, both(0.5, 0.4))  # pending since 12 s
    assert late.labels["queue"] == "sales" and late.starts_at == T0 + 22_000
    [resolved] = restored.evaluate(T0 + 23_000, both(0.9, 0.4))
    assert (resolved.id, resolved.starts_at) == (fired.id, fired.starts_at)

    renamed = Evaluator(parse_rules({"rules": [{
        "name": "other", "metric": "ccmon_service_level_ratio", "window": "15m", "op": "<",
        "threshold": 0.8, "severity": "info"}]}, ("15m",)))
    renamed.restore(state)
    assert renamed.pending == {}  # its rule is gone: nothing pending
    [gone] = renamed.evaluate(T0 + 13_000, [])
    assert (gone.id, gone.status, gone.rule.threshold) == (fired.id, RESOLVED, 0.8)


def test_for_counts_the_same_at_any_epoch():
    """Held-for is a difference of times, also right after 1970 (ts may be that early)."""
    alerts = evaluator("<", 0.8, "10s")
    assert alerts.evaluate(1_000, sl(0.5)) == []
    [fired] = alerts.evaluate(12_500, sl(0.5))
    assert fired.starts_at == 12_500
