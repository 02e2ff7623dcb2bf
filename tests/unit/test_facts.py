"""The facts between the stages (stream/facts.py), pure: the partition of a series is Kafka's
default partitioner's (so a series' owner is the same whoever computes it), and facts read
back from the topic apply as the ones made in memory."""

from __future__ import annotations

from aiokafka.partitioner import murmur2 as kafka_murmur2
from hypothesis import given
from hypothesis import strategies as st

from ccmon.stream.facts import (
    apply,
    clock_fact,
    decode,
    encode,
    key_partition,
    murmur2,
    series_partition,
)
from ccmon.stream.queues import Board, Thresholds


@given(st.binary(max_size=64))
def test_murmur2_is_the_kafka_clients_own(data: bytes):
    assert murmur2(data) == kafka_murmur2(data)


def test_a_series_partition_is_its_keys_default_partition():
    # Kafka's Java client: toPositive(murmur2(key)) % partitions, key "billing<US>voice".
    key = b"billing\x1fvoice"
    for partitions in (1, 4, 7, 12):
        assert series_partition("billing", "voice", partitions) == (
            kafka_murmur2(key) & 0x7FFFFFFF) % partitions == key_partition(key, partitions)


def test_facts_read_back_from_the_topic_apply_as_the_ones_made():
    made = [("billing", "voice", "entered", 1_000, "c1", None, "cc.voice:0", 0),
            ("billing", "voice", "survey", 2_000, "c1", ("csat", 5), "cc.voice:0", 1024),
            clock_fact(5_000)]
    boards = [Board((("5m", 300_000),), Thresholds()) for _ in range(2)]
    apply(boards[0], made)
    apply(boards[1], decode(encode(made)))  # the score pair comes back as a list
    assert boards[0].take_dirty() == boards[1].take_dirty()
    assert boards[1].latest_ts == 5_000  # the clock fact moved the board's clock


class Ticks:
    """A ticker every second: records the ticks passed and what stood on the board then."""

    def __init__(self, board: Board) -> None:
        self.board = board
        self.due: int | None = None
        self.seen: list[tuple[int, int]] = []

    def pass_to(self, ts: int) -> list:
        first = ts // 1000 * 1000 if self.due is None else self.due
        for tick in range(first, ts // 1000 * 1000 + 1, 1000):
            self.seen.append((tick, len(self.board.stats("billing", "voice").waiting)))
        self.due = ts // 1000 * 1000 + 1000
        return [tick for tick, _ in self.seen[-1:]]


def test_a_ticker_passes_each_tick_just_before_the_first_fact_at_or_after_it():
    board = Board((("5m", 300_000),), Thresholds())
    ticks = Ticks(board)
    facts = [("billing", "voice", "entered", ms, f"c{ms}", None, "s:0", ms)
             for ms in (1_000, 1_500, 2_000, 4_200)]
    made = apply(board, facts, ticks)
    # 1 s: before c1000; 2 s: before c2000 (two waiting); 3 s and 4 s: before c4200.
    assert ticks.seen == [(1_000, 0), (2_000, 2), (3_000, 3), (4_000, 3)]
    assert made == [1_000, 2_000, 4_000]
