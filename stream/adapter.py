"""What every platform mapping returns for one source record (adapters.md), pure.

A record becomes v1 events, or is skipped (it carries nothing v1 can say: counted by reason),
or is malformed (dead-lettered unchanged with the reason). A record can also release events
that an earlier one left pending (an Asterisk transfer waiting for its `ENTERQUEUE`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from .events import NAME_CHARS

Event = dict[str, Any]


@dataclass(slots=True)
class Outcome:
    events: list[Event] = field(default_factory=list)
    skipped: str | None = None  # reason label of ccmon_adapter_skipped_total
    malformed: tuple[str, str] | None = None  # (reason, detail) of the dead letter


def skipped(reason: str) -> Outcome:
    return Outcome(skipped=reason)


def malformed(reason: str, detail: str) -> Outcome:
    return Outcome(malformed=(reason, detail))


def digest(record: bytes) -> str:
    """A short stable name of a source record: the stem of the event ids derived from it, so
    reading the same record again gives the same ids (duplicates the monitor ignores)."""
    return hashlib.blake2b(record, digest_size=12).hexdigest()


def fits(name: str) -> bool:
    """An id or queue name v1 accepts (events.md 1.1: 1 to 256 characters)."""
    return 1 <= len(name) <= NAME_CHARS
