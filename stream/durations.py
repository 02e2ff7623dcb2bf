"""Durations as the settings and the rules file write them (`90s`, `5m`, `1.5h`, `1d`), pure:
the settings (a shell) and the alert rules (pure) both read them, from here."""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|[smhd])\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """`250ms`, `90s`, `5m`, `1.5h`, `1d` -> seconds."""
    match = _DURATION.match(text)
    # A number too long for a double reads as inf: no duration either.
    if not match or not 0 < float(match.group(1)) < 1e15:
        raise ValueError(f"{text[:64]!r} is not a duration like 250ms, 30s, 5m, 1h or 1d")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
