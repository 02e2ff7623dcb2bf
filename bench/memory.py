"""Bytes per contact and per window sample, in the pure engine (no Kafka), with tracemalloc.

    for f in /work/shared/data/anonymous-bank-1999/*.gz; do python -m ccmon.stream.bank "$f"
    done > /tmp/bank-1999.jsonl                         # Jan-Oct 1999: 961,041 events
    python -m bench.memory /tmp/bank-1999.jsonl
    python -m bench.memory /tmp/bank-1999.jsonl --windows 5m,15m,1h,7300h

1. Stage one: the events through one `Ledger` (one partition), 20,000 at a time as the worker
   takes them; the memory it holds at the end, with the retention of `--retention` and with
   a retention longer than the data (every contact kept: bytes per contact).
2. Stage two: the facts of those events into one `Board` with `--windows`, the clock moved
   to each batch's last ts (as a scrape would); the memory it holds at the end, per sample
   held. A dense series follows (one queue, 200 samples a second, for an hour), where a
   minute's block holds 12,000 samples: the cost of a sample itself.

Memory is what tracemalloc counts as allocated by Python at the end, minus the start; the
events and facts being fed are allocated before it starts.
"""

from __future__ import annotations

import argparse
import gc
import platform
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

from ccmon.settings import parse_duration, parse_windows
from ccmon.stream.engine import EngineConfig, Intake, Record
from ccmon.stream.facts import Located
from ccmon.stream.facts import apply as apply_facts
from ccmon.stream.lifecycle import ENDED
from ccmon.stream.queues import Board, Thresholds

BATCH = 20_000
SOURCE = "bench.voice:0"
FOREVER_MS = 100 * 365 * 86_400_000


def batches(path: Path) -> Iterator[list[Record]]:
    lines = path.read_bytes().splitlines()
    for first in range(0, len(lines), BATCH):
        yield [Record(SOURCE, offset, "voice", line)
               for offset, line in enumerate(lines[first:first + BATCH], first)]


def traced(work: Callable[[], object]) -> tuple[int, object]:
    """(bytes still allocated once `work` returned, its result)."""
    gc.collect()
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    result = work()
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - start
    tracemalloc.stop()
    return held, result


def stage_one(inputs: list[list[Record]], retention_ms: int) -> None:
    intake = Intake(EngineConfig(retention_ms=retention_ms))

    def run() -> Intake:
        for records in inputs:
            intake.take_run(0, SOURCE, "voice", records)
            intake.ledger(0).take_dirty()  # as the worker does after each batch
        return intake

    held, _ = traced(run)
    contacts = len(intake.ledger(0).contacts)
    label = "every contact" if retention_ms == FOREVER_MS else f"retention {retention_ms} ms"
    print(f"stage one, {label}: {contacts:,} contacts held, {held / 2**20:,.1f} MiB, "
          f"{held / max(contacts, 1):,.0f} B per contact")


def stage_two(facts: list[list[Located]], windows: tuple[tuple[str, int], ...], what: str
              ) -> None:
    board = Board(windows, Thresholds())

    def run() -> Board:
        for batch in facts:
            apply_facts(board, batch)
            board.advance(max(located[3] for located in batch))
            board.take_dirty()
        return board

    held, _ = traced(run)
    samples = sum(1 for stats in board.queues.values() for _ in stats.windows.samples())
    blocks = sum(len(stats.windows.blocks) for stats in board.queues.values())
    print(f"stage two, {what}, windows {','.join(label for label, _ in windows)}: "
          f"{samples:,} samples in {blocks:,} minute blocks, {held / 2**20:,.1f} MiB, "
          f"{held / max(samples, 1):,.1f} B per sample")


def dense_facts(per_second: int = 200, seconds: int = 3600) -> list[list[Located]]:
    """One queue, `per_second` segments ending a second (samples, no live state): full
    minute blocks."""
    start = 1_763_802_000_000
    facts = [("dense", "voice", ENDED, start + i * 1000 // per_second, f"c{i}", i % 90_000,
              SOURCE, i) for i in range(per_second * seconds)]
    return [facts[i:i + BATCH] for i in range(0, len(facts), BATCH)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", type=Path, help="events, JSON lines (e.g. the bank's Jan-Oct)")
    parser.add_argument("--windows", default="5m,15m,1h")
    parser.add_argument("--retention", default="1d")
    args = parser.parse_args()
    windows = tuple((label, round(seconds * 1000))
                    for label, seconds in parse_windows(args.windows))
    inputs = list(batches(args.file))
    print(f"{sum(map(len, inputs)):,} events from {args.file}; Python "
          f"{platform.python_version()}")
    stage_one(inputs, round(parse_duration(args.retention) * 1000))
    stage_one(inputs, FOREVER_MS)
    intake = Intake(EngineConfig(retention_ms=FOREVER_MS))
    facts = [intake.take_run(0, SOURCE, "voice", records)[0] for records in inputs]
    del inputs
    stage_two(facts, windows, str(args.file.name))
    stage_two(dense_facts(), windows, "dense (200 samples/s, 1 h)")


if __name__ == "__main__":
    main()
