"""The worker's alerting shell: a `BoardWatch` per owned facts partition, and the publisher
that hands logged transitions to the alert store (Redis) in order, retrying while it is away.

Redis is a cache of what the workers know: every second the publisher reads the store's
generation, and when it is new (Redis lost its data) or the worker took partitions over, it
publishes again every alert firing here. The store ignores what it already has.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Iterator

import orjson

from ccmon.alerts.health import StoreHealth
from ccmon.alerts.rules import Rule
from ccmon.alerts.state import Alert
from ccmon.alerts.store import AlertStore, StoreUnavailable
from ccmon.alerts.watch import DEFAULT_INTERVAL_MS, STATE_UNIT, BoardWatch, Outgoing
from ccmon.console import say
from ccmon.stream.queues import Board

log = logging.getLogger("ccmon.alerting")

RETRY_SECONDS = 1.0
CHECK_SECONDS = 1.0  # how soon a worker notices that Redis lost its data


class Alerting:
    def __init__(self, rules: list[Rule], store: AlertStore | None, clock: str,
                 interval: float = DEFAULT_INTERVAL_MS / 1000) -> None:
        self.rules = rules
        self.store = store
        self.event_clock = clock == "event"
        self.interval_ms = round(interval * 1000)  # E, alerts.md 1.1
        self.watches: dict[int, BoardWatch] = {}
        self.transitions = Counter[tuple[str, str]]()  # (rule, status) -> count, this process
        self.health = StoreHealth()
        self.generation: str | None = None  # of the store, when all firing here was in it
        self._wake = asyncio.Event()

    def watch(self, partition: int, board: Board, stored: Callable[[str], bytes | None]
              ) -> BoardWatch:
        """The partition's watch, restored from its logged state (`stored(unit)`) if new."""
        watch = self.watches.get(partition)
        if watch is None or watch.board is not board:
            watch = self.watches[partition] = BoardWatch(self.rules, board, self.interval_ms)
            state = stored(STATE_UNIT)
            if state is not None:
                watch.restore(orjson.loads(state))
                self.generation = None  # its firing alerts go (again) to the store
                self._wake.set()  # and so does its restored outbox
        return watch

    def count(self, transitions: list[Alert]) -> None:
        for alert in transitions:
            self.transitions[(alert.rule.name, alert.status)] += 1

    def logged(self, entries: list[Outgoing]) -> None:
        for entry in entries:
            entry.logged = True
        if entries:
            self._wake.set()

    def firing(self, partitions: set[int]) -> Iterator[Alert]:
        for partition, watch in self.watches.items():
            if partition in partitions:
                yield from watch.evaluator.firing.values()

    def unpublished(self) -> int:
        return sum(len(watch.outbox) for watch in self.watches.values())

    def firing_told(self) -> list[dict]:
        """The messages of the alerts firing here whose firing was published: those not
        waiting in an outbox (which tells them itself, and only once they are logged)."""
        messages = []
        for watch in self.watches.values():
            waiting = {entry.message["id"] for entry in watch.outbox}
            messages += (alert.message() for alert in watch.evaluator.firing.values()
                         if alert.id not in waiting)
        return messages

    async def publish_forever(self) -> None:
        """Publish logged transitions in order, and every firing alert again when the store
        lost its data; a store outage is one line, then retries."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), CHECK_SECONDS)
            self._wake.clear()
            if self.store is None:
                await self._drain_to(None)  # nothing to deliver to: only counted
                continue
            try:
                await self._reassert(self.store)
                await self._drain_to(self.store)
            except StoreUnavailable as exc:
                self.health.failed(f"{exc}; alerts wait and are sent when it is back")
                self._wake.set()  # what waits goes as soon as the store answers
                await asyncio.sleep(RETRY_SECONDS)  # retry pace
                continue
            self.health.answered("the alert store is reachable again")

    async def _reassert(self, store: AlertStore) -> None:
        generation = await store.generation()
        previous = self.generation
        if generation == previous:
            return
        self.generation = generation  # first: a watch restored meanwhile clears it again
        try:
            told = await store.publish(self.firing_told())
        except StoreUnavailable:
            self.generation = None
            raise
        if told and previous is not None:
            say(f"the alert store had lost {told} firing alerts: published them again")

    async def _drain_to(self, store: AlertStore | None) -> None:
        while True:
            batches = self._batches()
            if not batches:
                return
            if store is not None:
                await store.publish(entry.message for _, entries in batches
                                    for entry in entries)
            for watch, entries in batches:
                watch.published(entries)

    def _batches(self) -> list[tuple[BoardWatch, list[Outgoing]]]:
        batches = [(watch, watch.unpublished()) for watch in self.watches.values()]
        return [(watch, entries) for watch, entries in batches if entries]
