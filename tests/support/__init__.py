"""Helpers the tests and the benchmarks share: real servers (`servers`), ccmon deployments
(`deployment`), alert stacks (`alerting`), adapters' processes (`adapters`), Chromium
(`browser`), TLS and SASL (`tls`, `secured`). Imported as `tests.support.<module>` from the
repository root; ROOT is the repository, DATA the tests' files (tests/data)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
