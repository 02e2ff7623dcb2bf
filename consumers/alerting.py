"""The worker's alerting shell: a `BoardWatch` per owned facts partition, and the publisher
that hands logged transitions to the alert store (Redis) in order, retrying while it is away."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Iterator

import orjson

from ccmon.alerts.rules import Rule
from ccmon.alerts.state import Alert
from ccmon.alerts.store import AlertStore, StoreUnavailable
from ccmon.alerts.watch import STATE_UNIT, BoardWatch, Outgoing
from ccmon.kafka import say
from ccmon.stream.queues import Board

log = logging.getLogger("ccmon.alerting")

RETRY_SECONDS = 1.0


class Alerting:
    def __init__(self, rules: list[Rule], store: AlertStore | None, clock: str) -> None:
        self.rules = rules
        self.store = store
        self.event_clock = clock == "event"
        self.watches: dict[int, BoardWatch] = {}
        self.transitions = Counter[tuple[str, str]]()  # (rule, status) -> count, this process
        self._wake = asyncio.Event()

    def watch(self, partition: int, board: Board, stored: Callable[[str], bytes | None]
              ) -> BoardWatch:
        """The partition's watch, restored from its logged state (`stored(unit)`) if new."""
        watch = self.watches.get(partition)
        if watch is None or watch.board is not board:
            watch = self.watches[partition] = BoardWatch(self.rules, board)
            state = stored(STATE_UNIT)
            if state is not None:
                watch.restore(orjson.loads(state))
                self._wake.set()  # a restored outbox goes (again) to the store
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

    async def publish_forever(self) -> None:
        """Publish logged transitions in order; a store outage is one line, then retries."""
        down = False
        while True:
            await self._wake.wait()
            self._wake.clear()
            while True:
                batches = [(watch, watch.unpublished()) for watch in self.watches.values()]
                batches = [(watch, entries) for watch, entries in batches if entries]
                if not batches:
                    break
                if self.store is not None:
                    try:
                        await self.store.publish(entry.message for _, entries in batches
                                                 for entry in entries)
                    except StoreUnavailable as exc:
                        if not down:
                            say(f"{exc}; alerts wait and are sent when it is back")
                            down = True
                        await asyncio.sleep(RETRY_SECONDS)  # retry pace
                        continue
                    if down:
                        say("the alert store is reachable again")
                        down = False
                for watch, entries in batches:
                    watch.published(entries)
