"""The house's rule, checked on the source: the functional core (every module of `stream/` and
the pure modules of `alerts/`) imports nothing from the shells (settings, CLI, Kafka, Faust,
Redis, WebSockets, asyncio, the exporter), so it stays deterministic and testable without a
server, and no folder imports one that imports it back."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support import ROOT

PURE_ALERTS = ("agents_view", "rules", "session", "state", "throttle", "tokens", "watch")
PURE = sorted([*(ROOT / "stream").glob("*.py"),
               *(ROOT / "alerts" / f"{name}.py" for name in PURE_ALERTS)])
SHELL_PACKAGES = ("asyncio", "faust", "mode", "aiokafka", "redis", "websockets",
                  "prometheus_client", "aiohttp")
FOLDERS = ("stream", "alerts", "consumers")


def imports(path: Path) -> list[str]:
    """Absolute names of the modules `path` imports (relative ones resolved in its folder)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            if node.level:
                names.append(f"ccmon.{path.parent.name}.{node.module or ''}".rstrip("."))
            else:
                names.append(node.module or "")
    return names


@pytest.mark.parametrize("path", PURE, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_the_core_imports_no_shell(path: Path):
    allowed_ccmon = ("ccmon.stream", *(f"ccmon.alerts.{name}" for name in PURE_ALERTS))
    wrong = [name for name in imports(path)
             if name.split(".")[0] in SHELL_PACKAGES
             or (name.startswith("ccmon") and not name.startswith(allowed_ccmon))]
    assert not wrong, f"{path.relative_to(ROOT)} imports shells: {wrong}"


def test_no_folder_imports_one_that_imports_it_back():
    edges = set()
    for folder in FOLDERS:
        for path in (ROOT / folder).glob("*.py"):
            for name in imports(path):
                parts = name.split(".")
                if parts[0] == "ccmon" and len(parts) > 1 and parts[1] in FOLDERS:
                    edges.add((folder, parts[1]))
    edges -= {(folder, folder) for folder in FOLDERS}
    cycles = [(a, b) for a, b in edges if (b, a) in edges]
    assert not cycles, f"folders importing each other: {sorted(cycles)}"
    assert ("stream", "alerts") not in edges and ("stream", "consumers") not in edges
