"""`ccmon ingest asterisk FILE [--follow]`: an Asterisk queue_log into v1 events (adapters.md).

The loop: read a chunk of complete lines, map them (`stream/asterisk.py`), send the events and
dead letters and await Kafka's acks, then save the position (file, offset, the mapper's
state) atomically. A `kill -9` at any point resumes from the last saved position: what was
sent after it is sent again with the same event ids, duplicates the monitor ignores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from ccmon import settings as settings_module
from ccmon.follow import Follower, Position, load_position, save_position
from ccmon.ingest import SETTINGS_USED, Counts, Outbox, connect, run_adapter
from ccmon.produce import _positive, _settings, _sleep_or_stop, _stopped, check_readable
from ccmon.settings import Settings
from ccmon.stream.adapter import Outcome
from ccmon.stream.asterisk import QueueLog

CHUNK = 2000  # lines per batch: one send, one ack wait, one position write
POLL_SECONDS = 0.2  # how often a followed file is looked at when nothing new came


async def ingest(settings: Settings, path: str, state_path: str, *, follow: bool,
                 rate: float | None, counts: Counts,
                 stop_event: asyncio.Event | None = None) -> None:
    position = load_position(state_path)
    mapper = QueueLog(position.state)
    follower = Follower(path, position, follow)
    producer = await connect(settings, counts)
    outbox = Outbox(settings, counts)
    source = f"asterisk:{os.path.abspath(path)}"
    chunk = CHUNK if rate is None else max(1, min(CHUNK, int(rate / 10)))
    started, done = time.monotonic(), 0
    try:
        while not _stopped(stop_event):
            lines = follower.lines(chunk)
            for start, _, raw in lines:
                outbox.add(mapper.feed(raw), raw.rstrip(b"\r\n"), source, start)
            if not lines and not follow:  # the end: a transfer still open ended there
                outbox.add(Outcome(events=mapper.finish()), b"", source, follower.offset,
                           counted=False)
            if outbox.messages or lines:
                await outbox.send(producer)
                save_position(state_path, Position(follower.inode, follower.offset,
                                                   mapper.to_json()))
            if not lines and not follow:
                break
            done += len(lines)
            if not lines:
                await _sleep_or_stop(stop_event, POLL_SECONDS)
            elif rate:  # keep to `rate` lines/s on average
                await _sleep_or_stop(stop_event, started + done / rate - time.monotonic())
    finally:
        follower.close()
        await producer.stop()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="the queue_log app_queue writes, e.g. "
                                     "/var/log/asterisk/queue_log")
    parser.add_argument("--follow", action="store_true",
                        help="keep reading what is appended, like tail -F (rotation and "
                             "truncation included); without it, stop at the end")
    parser.add_argument("--state", default=None, metavar="FILE",
                        help="position file, written after Kafka acknowledged the events "
                             "up to it (default: FILE.ccmon-position)")
    parser.add_argument("--rate", type=_positive, default=None,
                        help="at most this many lines per second (default: as fast as possible)")
    settings_module.add_arguments(parser, SETTINGS_USED)


def run(args: argparse.Namespace) -> int:
    """Entry point of `ccmon ingest asterisk`; returns the exit code."""
    settings = _settings(args)
    waited_for = args.follow and not os.path.exists(args.file)  # followed: may come later
    if not waited_for:
        check_readable(args.file)
    state_path = args.state or f"{args.file}.ccmon-position"
    return run_adapter(settings, "asterisk", f"ingesting {args.file} "
                       f"({'following' if args.follow else 'to its end'}) into Kafka at "
                       f"{settings.bootstrap()}; position in {state_path}",
                       lambda counts, stop: ingest(
                           settings, args.file, state_path, follow=args.follow,
                           rate=args.rate, counts=counts, stop_event=stop))
