"""The imperative shells of `ccmon simulate` and `ccmon replay FILE` (running.md).

Both send to the topics of settings (`<prefix>.voice|chat|social` for contact and survey events,
`<prefix>.agents` for agent events), keyed by `contact_id` (agent events: `agent_id`) so that a
contact's events stay in order in one partition (events.md).

replay sends every non-blank line unchanged, invalid ones too, so that the monitor dead-letters
them. A line is routed by its `type` (`agent.*` -> agents topic) and its `channel`; a line that
is not a JSON object, or names no known channel, goes to the topic of `--default-channel`
(voice), which is also the channel the monitor then assumes. A failed batch is sent again once
the brokers are back: delivery is at least once and the monitor drops the duplicates.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from ccmon import settings as settings_module
from ccmon.console import on_stop_signals, say
from ccmon.errors import CcmonError
from ccmon.kafka import ensure_topics, new_producer, wait_for_brokers
from ccmon.security import kafka_options
from ccmon.settings import CHANNELS, KAFKA_SETTINGS, Settings
from ccmon.stream.simulate import OPENING_INCIDENT, SimConfig, Simulation

SETTINGS_USED = (*KAFKA_SETTINGS, "topic_prefix", "partitions")
CHUNK = 2000  # messages in flight before we await their acks
TICK_S = 0.1  # how often simulate looks at the clock
STOP_GRACE_S = 5.0

Message = tuple[str, bytes | None, bytes]  # topic, key, value


# -- routing (pure) ------------------------------------------------------------------------------

def route(settings: Settings, event: Any,
          default_channel: str = "voice") -> tuple[str, bytes | None]:
    """Topic and key of a decoded line (anything JSON can hold; non-objects go to the default)."""
    default_topic = settings.channel_topics[default_channel]
    if not isinstance(event, dict):
        return default_topic, None
    if isinstance(event.get("type"), str) and event["type"].startswith("agent."):
        topic = settings.agents_topic
        key = event.get("agent_id")
    else:
        channel = event.get("channel")
        topic = settings.channel_topics.get(channel, default_topic) if isinstance(
            channel, str) else default_topic
        key = event.get("contact_id")
    return topic, key.encode() if isinstance(key, str) else None


def line_message(settings: Settings, line: bytes, default_channel: str = "voice") -> Message:
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        event = None
    topic, key = route(settings, event, default_channel)
    return topic, key, line


def event_message(settings: Settings, event: dict[str, Any]) -> Message:
    topic, key = route(settings, event)
    return topic, key, orjson.dumps(event)


# -- Kafka plumbing ------------------------------------------------------------------------------

async def _connect(settings: Settings) -> AIOKafkaProducer:
    """Wait for the brokers, create the topics that are missing, start a producer."""
    bootstrap = settings.bootstrap()
    security = kafka_options(settings)
    topics = [*settings.channel_topics.values(), settings.agents_topic]
    while True:
        await wait_for_brokers(bootstrap, security=security)
        try:
            await ensure_topics(bootstrap, topics, settings.partitions, security=security)
            producer = new_producer(bootstrap, security=security)
            await producer.start()
            return producer
        except (KafkaError, OSError) as exc:
            say(f"Kafka at {bootstrap} failed: {exc!r}; retrying")
            await asyncio.sleep(1)


async def _send_all(producer: AIOKafkaProducer, settings: Settings,
                    messages: list[Message]) -> None:
    """Send and await the acks; on failure wait for the brokers and send the lot again."""
    while True:
        try:
            futures = [await producer.send(topic, value, key=key)
                       for topic, key, value in messages]
            await asyncio.gather(*futures)
            return
        except KafkaError as exc:
            say(f"sending to Kafka at {settings.bootstrap()} failed ({exc!r}); resending")
            await wait_for_brokers(settings.bootstrap(), security=kafka_options(settings))


async def _sleep_or_stop(stop_event: asyncio.Event | None, seconds: float) -> None:
    if stop_event is None:
        await asyncio.sleep(seconds)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop_event.wait(), timeout=max(0.0, seconds))


def _stopped(stop_event: asyncio.Event | None) -> bool:
    return stop_event is not None and stop_event.is_set()


# -- simulate ------------------------------------------------------------------------------------

def _simulation(seed: int, start: float | None, scale: float, incident: bool) -> Simulation:
    config = replace(SimConfig().scaled(scale), incident=OPENING_INCIDENT if incident else None)
    return Simulation(seed, start=time.time() if start is None else start, config=config)


async def simulate(settings: Settings, *, seed: int = 1, speed: float = 1.0, scale: float = 1.0,
                   duration: float | None = None, start: float | None = None,
                   incident: bool = False, stop_event: asyncio.Event | None = None,
                   banner: str | None = None) -> int:
    """Send simulated traffic, paced by the clock; return the number of events sent.

    Simulated time starts at `start` (default: now) and runs `speed` times faster than the
    wall clock: at speed 1 every event's ts is the moment it is sent. `scale` multiplies the
    centre's size (arrivals and staff); `incident` opens with `OPENING_INCIDENT`. Stops after
    `duration` simulated seconds or on `stop_event`. `banner` is said once connected.
    """
    producer = await _connect(settings)
    if banner:
        say(banner)
    wall_start = time.time()
    sim = _simulation(seed, wall_start if start is None else start, scale, incident)
    end = None if duration is None else sim.start + duration
    sent = 0
    try:
        while not _stopped(stop_event):
            sim_now = sim.start + (time.time() - wall_start) * speed
            if end is not None:
                sim_now = min(sim_now, end)
            events = sim.events_until(sim_now)
            for i in range(0, len(events), CHUNK):
                await _send_all(producer, settings,
                                [event_message(settings, e) for e in events[i:i + CHUNK]])
            sent += len(events)
            if end is not None and sim_now >= end:
                break
            await _sleep_or_stop(stop_event, TICK_S)
    finally:
        await producer.stop()
    return sent


def dump(*, seed: int, count: int, scale: float = 1.0, start: float | None = None,
         incident: bool = False, out: Any = None) -> None:
    """Write the first `count` simulated events as JSON lines (a replay file), no Kafka."""
    out = out or sys.stdout.buffer
    sim = _simulation(seed, start, scale, incident)
    written = 0
    while written < count:
        for event in sim.events_until(sim.now + 3600)[:count - written]:
            out.write(orjson.dumps(event) + b"\n")
            written += 1
    out.flush()


# -- replay --------------------------------------------------------------------------------------

def _lines(path: str) -> Iterator[bytes]:
    """Non-blank lines without their line ending; everything else is left as it is."""
    with open(path, "rb") as handle:
        for raw in handle:
            line = raw.rstrip(b"\r\n")
            if line.strip():
                yield line


def _count_lines(path: str) -> int:
    return sum(1 for _ in _lines(path))


class Progress:
    """One carriage-return line on stderr: count, percentage, events/s."""

    def __init__(self, total: int, every_s: float = 0.25) -> None:
        self.total = total
        self.every_s = every_s
        self.started = time.monotonic()
        self._shown = 0.0

    def show(self, done: int, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._shown < self.every_s:
            return
        self._shown = now
        elapsed = max(now - self.started, 1e-9)
        pct = 100 * done / self.total if self.total else 100.0
        end = "\n" if final else ""
        print(f"\rreplay: {done:,}/{self.total:,} events {pct:5.1f}% {done / elapsed:,.0f} ev/s",
              end=end, file=sys.stderr, flush=True)


async def replay(settings: Settings, path: str, *, rate: float | None = None,
                 default_channel: str = "voice", stop_event: asyncio.Event | None = None,
                 progress: bool = True) -> int:
    """Send the file's lines in file order; return the number sent."""
    total = _count_lines(path)
    producer = await _connect(settings)
    bar = Progress(total) if progress else None
    started = time.monotonic()
    chunk = CHUNK if rate is None else max(1, min(CHUNK, int(rate / 10)))
    sent = 0
    try:
        batch: list[Message] = []
        for line in _lines(path):
            if _stopped(stop_event):
                break
            batch.append(line_message(settings, line, default_channel))
            if len(batch) >= chunk:
                sent = await _flush(producer, settings, batch, sent, rate, started, stop_event)
                batch = []
                if bar:
                    bar.show(sent)
        if batch and not _stopped(stop_event):
            sent = await _flush(producer, settings, batch, sent, rate, started, stop_event)
    finally:
        await producer.stop()
        if bar:
            bar.show(sent, final=True)
    return sent


async def _flush(producer: AIOKafkaProducer, settings: Settings, batch: list[Message], sent: int,
                 rate: float | None, started: float, stop_event: asyncio.Event | None) -> int:
    if rate:  # keep to `rate` events/s on average: wait until this batch is due
        await _sleep_or_stop(stop_event, started + sent / rate - time.monotonic())
    await _send_all(producer, settings, batch)
    return sent + len(batch)


# -- command line --------------------------------------------------------------------------------

def _time(text: str) -> float:
    """RFC 3339 (`2026-11-22T09:00:00Z`) or Unix seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither RFC 3339 nor Unix seconds") from None


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value


def _duration(text: str) -> float:
    try:
        return settings_module.parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_simulate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--speed", type=_positive, default=1.0,
                        help="simulated seconds per wall second (default 1: ts = now; above 1 "
                             "the ts run ahead of the clock, use with CCMON_CLOCK=event)")
    parser.add_argument("--scale", type=_positive, default=1.0,
                        help="size of the centre: arrivals and staff multiplied (default 1, "
                             "about 4,000 contacts a day)")
    parser.add_argument("--duration", type=_duration, default=None,
                        help="stop after this much simulated time, e.g. 1h (default: never)")
    parser.add_argument("--start", type=_time, default=None,
                        help="simulated start time, RFC 3339 or Unix seconds (default: now)")
    parser.add_argument("--opening-incident", action="store_true",
                        help="open with an incident: a surge on voice billing while its agents "
                             "are in a huddle, for about 30 s (what `ccmon demo` shows first)")
    parser.add_argument("--dump", type=int, default=None, metavar="N",
                        help="write the first N events as JSON lines to stdout instead of "
                             "sending them (a file for `ccmon replay`)")
    settings_module.add_arguments(parser, SETTINGS_USED)


def add_replay_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="JSON lines, one event per line (sent unchanged)")
    parser.add_argument("--rate", type=_positive, default=None,
                        help="at most this many events per second (default: as fast as possible)")
    parser.add_argument("--default-channel", choices=CHANNELS, default="voice",
                        help="channel whose topic gets lines that name no usable channel "
                             "(default voice)")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress line on stderr")
    settings_module.add_arguments(parser, SETTINGS_USED)


def _run(main: Callable[[asyncio.Event], Awaitable[int]]) -> int:
    """Run until done or Ctrl-C / SIGTERM: the sends in flight get a few seconds to finish."""
    async def runner() -> int:
        stop_event = asyncio.Event()
        on_stop_signals(asyncio.get_running_loop(), stop_event.set)
        work = asyncio.ensure_future(main(stop_event))
        stopping = asyncio.ensure_future(stop_event.wait())
        await asyncio.wait({work, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not work.done():  # e.g. still waiting for unreachable brokers
            await asyncio.wait({work}, timeout=STOP_GRACE_S)
            work.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work
        return 0

    # aiokafka logs every failed connection; `wait_for_brokers` already says it in one line.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(runner())
    return 0


def _settings(args: argparse.Namespace) -> Settings:
    settings = settings_module.load(args)
    kafka_options(settings)  # a bad security setting: one line now, before any work
    return settings


def run_simulate(args: argparse.Namespace) -> int:
    """Entry point of `ccmon simulate`; returns the exit code."""
    if args.dump is not None:
        with contextlib.suppress(BrokenPipeError):
            dump(seed=args.seed, count=args.dump, scale=args.scale, start=args.start,
                 incident=args.opening_incident)
        return 0
    settings = _settings(args)
    banner = (f"simulating into Kafka at {settings.bootstrap()} (seed {args.seed}, speed "
              f"{args.speed:g}, scale {args.scale:g}); Ctrl-C stops")
    return _run(lambda stop: simulate(
        settings, seed=args.seed, speed=args.speed, scale=args.scale, duration=args.duration,
        start=args.start, incident=args.opening_incident, stop_event=stop, banner=banner))


def check_readable(path: str) -> None:
    """`path` can be opened for reading: else the one line saying why."""
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise CcmonError(f"cannot read {path}: {exc.strerror}") from None


def run_replay(args: argparse.Namespace) -> int:
    """Entry point of `ccmon replay FILE`; returns the exit code."""
    settings = _settings(args)
    check_readable(args.file)
    return _run(lambda stop: replay(
        settings, args.file, rate=args.rate, default_channel=args.default_channel,
        stop_event=stop, progress=args.progress))

