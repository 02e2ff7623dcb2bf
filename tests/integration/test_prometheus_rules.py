"""The SRE alerting rules of alerts/prometheus: valid for Prometheus and unit-tested with the
real promtool (Debian's `prometheus` package, installed by scripts/test)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.support import ROOT

RULES_DIR = ROOT / "alerts" / "prometheus"
RULES = RULES_DIR / "ccmon-sre.rules.yml"
EXPORTED = {"ccmon_events_total", "ccmon_events_invalid_total", "ccmon_events_duplicate_total",
            "ccmon_clock_timestamp_seconds", "ccmon_last_event_timestamp_seconds",
            "ccmon_consumer_lag_records", "ccmon_alerts_firing", "ccmon_alert_transitions_total",
            "ccmon_alerts_unpublished", "ccmon_alert_store_up"}


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is missing: scripts/test installs Debian's prometheus package"
    return path


def test_rules_pass_promtool_check(promtool):
    result = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 6 rules found" in result.stdout


def test_rules_pass_their_promtool_unit_tests(promtool):
    result = subprocess.run([promtool, "test", "rules", "ccmon-sre.rules.test.yml"],
                            cwd=RULES_DIR, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rules_use_only_metrics_a_worker_exports():
    # ccmon_alert_store_up: gateways export it too (alerts/health.py)
    used = set(re.findall(r"\bccmon_[a-z_]+", RULES.read_text()))
    assert used and used <= EXPORTED, used - EXPORTED
