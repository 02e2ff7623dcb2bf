"""Alert rules and the alert lifecycle (alerts.md), on the pure evaluator."""

from __future__ import annotations

import pytest
import yaml

from ccmon.alerts.rules import RulesError, load_rules, parse_rules
from ccmon.alerts.state import FIRING, RESOLVED, Evaluator

WINDOWS = ("5m", "15m", "1h")
LONG_QUEUE = {"name": "long-queue", "metric": "ccmon_queue_waiting_contacts",
              "where": {"queue": "billing"}, "op": ">", "threshold": 10, "for": "60s",
              "clear": 8, "severity": "warning", "summary": "Billing queue above 10 waiting"}
LOW_SL = {"name": "low-sl", "metric": "ccmon_service_level_ratio", "window": "15m",
          "op": "<", "threshold": 0.8, "severity": "critical"}
T0 = 1_763_802_000_000  # 2025-11-22T09:00:00Z, ms


def rules(*entries: dict) -> list:
    return parse_rules({"rules": list(entries)}, WINDOWS)


def waiting(value: float, queue: str = "billing", channel: str = "voice") -> tuple:
    return ("ccmon_queue_waiting_contacts", {"queue": queue, "channel": channel}, value)


def test_the_example_of_alerts_md_loads(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"rules": [LONG_QUEUE, LOW_SL]}))
    long_queue, low_sl = load_rules(str(path), WINDOWS)
    assert (long_queue.for_ms, long_queue.clear, long_queue.window) == (60_000, 8.0, None)
    assert (low_sl.window, low_sl.for_ms, low_sl.clear) == ("15m", 0, None)


@pytest.mark.parametrize(("change", "named"), [
    ({"metric": "ccmon_events_total"}, "`metric`"),
    ({"op": "=="}, "`op`"),
    ({"threshold": "ten"}, "`threshold`"),
    ({"clear": 12}, "`clear`"),  # on the alerting side of `> 10`
    ({"for": "a minute"}, "`for`"),
    ({"severity": "page"}, "`severity`"),
    ({"window": "15m"}, "`window`"),  # a state gauge has no window
    ({"where": {"agent": "x"}}, "`where`"),
    ({"colour": "red"}, "`colour`"),
])
def test_a_bad_rule_is_refused_naming_rule_and_field(change, named):
    with pytest.raises(RulesError) as refused:
        rules({**LONG_QUEUE, **change})
    assert str(refused.value).startswith("rule 'long-queue': field ") and named in str(
        refused.value)


def test_windowed_metric_needs_a_configured_window_and_names_are_unique():
    with pytest.raises(RulesError, match="rule 'low-sl': field `window`"):
        rules({**LOW_SL, "window": "2h"})
    with pytest.raises(RulesError, match="field `name`: used by another rule"):
        rules(LONG_QUEUE, {**LONG_QUEUE})
    with pytest.raises(RulesError, match="rule #1: field `name`"):
        rules({**LONG_QUEUE, "name": ""})


def test_fires_after_for_not_before_and_resolves_past_clear():
    evaluator = Evaluator(rules(LONG_QUEUE))
    assert evaluator.evaluate(T0, [waiting(11)]) == []  # pending
    assert evaluator.evaluate(T0 + 59_000, [waiting(12)]) == []  # 59 s < for
    [fired] = evaluator.evaluate(T0 + 60_000, [waiting(12)])
    assert (fired.status, fired.value, fired.starts_at) == (FIRING, 12, T0 + 60_000)
    message = fired.message()
    assert message["labels"] == {"queue": "billing", "channel": "voice"}
    assert (message["starts_at"], message["ends_at"]) == ("2025-11-22T09:01:00Z", None)
    assert evaluator.evaluate(T0 + 61_000, [waiting(9)]) == []  # under 10, above clear 8
    [resolved] = evaluator.evaluate(T0 + 62_000, [waiting(8)])
    assert (resolved.id, resolved.status, resolved.ends_at) == (fired.id, RESOLVED, T0 + 62_000)


def test_pending_that_fails_goes_back_silently_and_restarts_its_for():
    evaluator = Evaluator(rules(LONG_QUEUE))
    evaluator.evaluate(T0, [waiting(11)])
    assert evaluator.evaluate(T0 + 30_000, [waiting(10)]) == []  # condition false: inactive
    assert evaluator.evaluate(T0 + 70_000, [waiting(11)]) == []  # pending again from here
    assert evaluator.evaluate(T0 + 129_000, [waiting(11)]) == []
    assert [a.status for a in evaluator.evaluate(T0 + 130_000, [waiting(11)])] == [FIRING]


def test_each_label_set_is_its_own_alert_and_each_cycle_its_own_id():
    evaluator = Evaluator(rules({**LONG_QUEUE, "where": {}, "for": "0s", "clear": None}))
    first = evaluator.evaluate(T0, [waiting(11), waiting(12, queue="sales")])
    assert sorted(a.labels["queue"] for a in first) == ["billing", "sales"]
    evaluator.evaluate(T0 + 1000, [waiting(1), waiting(12, queue="sales")])
    [again] = evaluator.evaluate(T0 + 2000, [waiting(11), waiting(12, queue="sales")])
    assert again.labels["queue"] == "billing" and again.id not in {a.id for a in first}


def test_a_series_that_disappears_resolves_its_alert():
    evaluator = Evaluator(rules(LOW_SL))
    ratio = ("ccmon_service_level_ratio", {"queue": "q", "channel": "chat", "window": "15m"},
             0.5)
    other_window = ("ccmon_service_level_ratio",
                    {"queue": "q", "channel": "chat", "window": "5m"}, 0.1)
    [fired] = evaluator.evaluate(T0, [ratio, other_window])
    assert fired.labels == {"queue": "q", "channel": "chat"}  # the 5m series is not watched
    [resolved] = evaluator.evaluate(T0 + 1000, [other_window])  # no samples in 15m: absent
    assert (resolved.status, resolved.value) == (RESOLVED, 0.5)


def test_the_same_history_gives_the_same_ids():
    history = [(T0 + i * 1000, [waiting(v)]) for i, v in enumerate([11, 12, 3, 14, 15, 1])]

    def ids() -> list[str]:
        evaluator = Evaluator(rules({**LONG_QUEUE, "for": "1s", "clear": None}))
        return [a.id for now, series in history for a in evaluator.evaluate(now, series)]

    assert ids() == ids() and len(set(ids())) == 2


@pytest.mark.parametrize(("for_", "ms"), [
    (30, 30_000), (0.25, 250), (0, 0), ("0", 0), ("0s", 0), ("90s", 90_000), ("1.5m", 90_000)])
def test_for_takes_plain_seconds_or_a_duration(for_, ms):
    [rule] = rules({**LONG_QUEUE, "for": for_})
    assert rule.for_ms == ms


@pytest.mark.parametrize("for_", [-1, -0.5, True, None, [60], "-5s", "soon"])
def test_a_bad_for_is_refused(for_):
    with pytest.raises(RulesError, match="rule 'long-queue': field `for`"):
        rules({**LONG_QUEUE, "for": for_})


def test_a_rule_matches_its_metric_window_and_labels_exactly():
    [long_queue] = rules(LONG_QUEUE)  # where queue: billing, no window
    [low_sl] = rules(LOW_SL)  # 15m, every queue
    billing = {"queue": "billing", "channel": "voice"}
    assert long_queue.matches("ccmon_queue_waiting_contacts", billing)
    for name, labels in [("ccmon_queue_waiting_contacts", {**billing, "queue": "a"}),
                         ("ccmon_queue_waiting_contacts", {**billing, "queue": "z"}),
                         ("ccmon_queue_oldest_wait_seconds", billing),
                         ("ccmon_contacts_on_hold", billing),
                         ("ccmon_queue_waiting_contacts", {"channel": "voice"})]:
        assert not long_queue.matches(name, labels), (name, labels)
    assert low_sl.matches("ccmon_service_level_ratio", {**billing, "window": "15m"})
    assert not low_sl.matches("ccmon_service_level_ratio", {**billing, "window": "1h"})
    assert not low_sl.matches("ccmon_service_level_ratio", {**billing, "window": "5m"})
    assert not low_sl.matches("ccmon_abandon_ratio", {**billing, "window": "15m"})
    assert not low_sl.matches("ccmon_answered_contacts", {**billing, "window": "15m"})
    assert not low_sl.matches("ccmon_short_abandoned_contacts", {**billing, "window": "15m"})
    # Labels made at run time (as the engine makes them), not the same objects as the rule's.
    made = {"".join(["q", "ueue"]): "billing", "channel": "voice", "window": "".join("15m")}
    assert low_sl.matches("".join(["ccmon_service_level", "_ratio"]), made)


def test_where_names_the_labels_it_may_use():
    with pytest.raises(RulesError) as refused:  # a key made at run time, as YAML makes it
        rules({**LOW_SL, "where": {"".join(["win", "dow"]): "5m"}})
    assert str(refused.value).endswith("'window' is not a label of ccmon_service_level_ratio "
                                       "(queue, channel)")
    with pytest.raises(RulesError, match="the value of 'queue' must be a string"):
        rules({**LONG_QUEUE, "where": {"queue": 7}})
    with pytest.raises(RulesError, match="field `where`: a mapping"):
        rules({**LONG_QUEUE, "where": ["queue"]})


def test_unknown_fields_are_named_first_in_order():
    with pytest.raises(RulesError, match="field `alpha`: unknown field"):
        rules({**LONG_QUEUE, "zulu": 1, "alpha": 2})


@pytest.mark.parametrize("document", [None, [], {"rules": {}}, {"rules": "x"}, {"other": []}])
def test_a_file_without_a_list_of_rules_is_refused(document):
    with pytest.raises(RulesError, match="a mapping with a list under `rules`"):
        parse_rules(document, WINDOWS)


def test_unreadable_or_broken_files_are_one_line(tmp_path):
    with pytest.raises(RulesError, match=r"cannot read the rules file .*missing\.yaml"):
        load_rules(str(tmp_path / "missing.yaml"), WINDOWS)
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules: [\n  - name: x\n")
    with pytest.raises(RulesError, match="is not valid YAML"):
        load_rules(str(broken), WINDOWS)
