"""The dashboards as files: the committed JSON is what `grafana/generate.py` makes, well formed
for Grafana (ids, grid, datasource, variables), and the recording rules they use are valid
and unit-tested with the real promtool. That every panel's query returns data from a real
Prometheus scraping real workers is test_dashboards.py."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess

import pytest

from tests.support import ROOT

DASHBOARDS = ROOT / "grafana" / "dashboards"
RECORDING = ROOT / "prometheus" / "ccmon-recording.rules.yml"
BUILTINS = {"__rate_interval", "__interval", "__range", "__all"}


def generator():
    spec = importlib.util.spec_from_file_location("generate", ROOT / "grafana" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def panels_of(dashboard: dict) -> list[dict]:
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found += panel.get("panels", [])
    return found


def test_committed_dashboards_are_the_generators_output():
    rendered = generator().rendered()
    assert sorted(rendered) == sorted(p.name for p in DASHBOARDS.glob("*.json"))
    for name, text in rendered.items():
        assert (DASHBOARDS / name).read_text() == text, (
            f"{name} differs from grafana/generate.py's output: run python grafana/generate.py")


@pytest.mark.parametrize("name", ["wallboard", "queue-trends", "sre"])
def test_a_dashboard_is_well_formed(name):
    dashboard = json.loads((DASHBOARDS / f"{name}.json").read_text())
    panels = panels_of(dashboard)
    assert dashboard["uid"] == f"ccmon-{name}" and len(dashboard["uid"]) <= 40
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    variables = {variable["name"] for variable in dashboard["templating"]["list"]}
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        mine = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "prometheus" and panel["targets"], panel["title"]
        text = json.dumps(panel)
        used = set(re.findall(r"\$\{?(\w+)", text))
        assert used <= variables | BUILTINS, (panel["title"], used - variables)
        if panel["type"] == "stat":  # absent ratios must read "no data", never 0 %
            assert panel["fieldConfig"]["defaults"]["noValue"] == "no data"
            assert "or vector(0)" not in text


def test_the_wallboard_has_a_row_per_queue_and_the_tiles_of_the_issue():
    dashboard = json.loads((DASHBOARDS / "wallboard.json").read_text())
    rows = [panel for panel in dashboard["panels"] if panel["type"] == "row"]
    assert [row.get("repeat") for row in rows] == ["queue"]
    titles = {panel["title"] for panel in dashboard["panels"]}
    assert {"Waiting now", "Oldest wait", "Service level · $window", "Abandon rate · $window",
            "ASA · $window", "Agents", "Data age"} <= titles


def test_recording_rules_pass_promtool():
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: scripts/test installs Debian's prometheus package"
    check = subprocess.run([promtool, "check", "rules", str(RECORDING)], capture_output=True,
                           text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    unit = subprocess.run([promtool, "test", "rules", "ccmon-recording.rules.test.yml"],
                          cwd=RECORDING.parent, capture_output=True, text=True, timeout=60)
    assert unit.returncode == 0 and "SUCCESS" in unit.stdout, unit.stdout + unit.stderr
    used = set()
    for path in DASHBOARDS.glob("*.json"):
        used |= set(re.findall(r"ccmon:[a-z_:0-9]+", path.read_text()))
    recorded = set(re.findall(r"record: (\S+)", RECORDING.read_text()))
    assert used and used <= recorded, used - recorded
