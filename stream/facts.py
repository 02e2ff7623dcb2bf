"""The facts between the stages, all about them in one place, pure: their layout, their
encoding on the facts topic, the clock fact, the partition of a series, and the one loop that
applies them to a board (the worker's stage two and the in-memory `Pipeline` both use it).

A located fact is a flat tuple, made for every fact and sent as is:
`(queue, channel, kind, ts, contact, value, source, position)`: a `lifecycle.Fact` and its
origin, the input partition (`source`, "topic:partition") and a position there that grows
with the input offset, so that each board unit applies a fact once (see `queues.py`).
On the facts topic a message is a JSON array of them; read back, each is a list.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import orjson

from .lifecycle import SURVEY
from .queues import CLOCK, SEP, Board

Located = tuple
FACTS_PER_MESSAGE = 2000  # ~200 kB: well under Kafka's default 1 MB message limit


class Ticker(Protocol):
    """What evaluates at the ticks the facts' ts pass (the alert rules, clock = event)."""

    @property
    def due(self) -> int | None: ...  # the next tick; None before the first

    def pass_to(self, ts: int) -> list: ...  # evaluate every tick up to `ts`; what it made


def apply(board: Board, facts: Iterable[Located], ticker: Ticker | None = None) -> list:
    """Apply located facts (as `Intake` makes them, or read back from the facts topic) to the
    board, in order; with a `ticker`, pass each of its ticks just before the first fact at or
    after it. Returns what the ticker made (the alert transitions)."""
    board_apply = board.apply
    made: list = []
    due = float("inf") if ticker is None else (ticker.due or 0)
    for queue, channel, kind, ts, contact, value, source, position in facts:
        if ts >= due:
            made += ticker.pass_to(ts)
            due = ticker.due
        if kind == SURVEY and type(value) is list:  # JSON made the score pair a list
            value = tuple(value)
        board_apply((queue, channel, kind, ts, contact, value), source, position)
    return made


def clock_fact(ts: int) -> Located:
    """Tells a facts partition how far event time has got (see `queues.CLOCK`)."""
    return ("", "", CLOCK, ts, "", None, "", 0)


def encode(value: object) -> bytes:
    """A message of the internal topics: facts, or journey steps (namedtuples, as arrays)."""
    return orjson.dumps(value, default=tuple)


decode = orjson.loads


def series_partition(queue: str, channel: str, partitions: int) -> int:
    """The facts partition of a (queue, channel): Kafka's default partitioning of the key
    `queue<US>channel` (murmur2), so the owner of a series never changes with this code."""
    return key_partition(f"{queue}{SEP}{channel}".encode(), partitions)


def key_partition(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner (Java client's `Utils.murmur2`, positive, modulo)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def murmur2(data: bytes) -> int:
    """32-bit MurmurHash2 as Kafka's Java client computes it (seed 0x9747b28c)."""
    m, mask = 0x5BD1E995, 0xFFFFFFFF
    length = len(data)
    h = (0x9747B28C ^ length) & mask
    whole = length & ~3
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i:i + 4], "little") * m & mask
        k = (k ^ k >> 24) * m & mask
        h = (h * m & mask) ^ k
    tail = length - whole
    if tail:
        if tail == 3:
            h ^= data[whole + 2] << 16
        if tail >= 2:
            h ^= data[whole + 1] << 8
        h = (h ^ data[whole]) * m & mask
    h = (h ^ h >> 13) * m & mask
    return h ^ h >> 15
