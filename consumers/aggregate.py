"""Stage two in the worker: the facts of each owned facts partition onto its `Board` (through
`stream.facts.apply`, with the partition's alert rules as the ticker on the event clock), in
the batches the batching consumer fetches (consumers/fastpath.py), the changed units logged
once per batch; on the wall clock, every tick of E, the rules (clock = wall) and, once a
second, the supervisor page's tiles and agents partials put in Redis.
Whoever owns a facts partition owns its (queue, channel) series and alone exports them."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Iterable

import faust
from aiokafka import ConsumerRecord

from ccmon.alerts.agents_view import partial as agents_partial
from ccmon.alerts.store import StoreUnavailable
from ccmon.alerts.watch import STATE_UNIT, BoardWatch, Outgoing
from ccmon.alerts.watch import tiles as board_tiles
from ccmon.stream.engine import EngineConfig
from ccmon.stream.facts import apply as apply_facts
from ccmon.stream.facts import decode as decode_facts
from ccmon.stream.queues import Board

from .alerting import Alerting
from .changelog import ChangelogWriter, partition_key, partition_units
from .fastpath import BatchApp


class AggregateStage:
    def __init__(self, app: BatchApp, config: EngineConfig, table: faust.Table,
                 changelog: ChangelogWriter, topic: str, alerting: Alerting | None,
                 tiles_window: str) -> None:
        self.app = app
        self.config = config
        self.table = table  # queues: the boards' (and alert states') changelog
        self.changelog = changelog
        self.topic = topic
        self.alerting = alerting
        self.tiles_window = tiles_window
        self.boards: dict[int, Board] = {}

    async def take(self, records: list[ConsumerRecord]) -> Awaitable[None]:
        """One fetched batch of the facts topic, handed over by the batching consumer:
        applied, its changed units handed to the producer; what is left is to wait for Kafka's
        acknowledgement, then publish the alert transitions the logged state covers."""
        alerting = self.alerting
        stepping = alerting is not None and alerting.event_clock and bool(alerting.rules)
        stamp = self.changelog.stamp()
        touched = set()
        for record in records:
            partition = record.partition
            board = self.board(partition)
            watch = self.watch(partition) if stepping else None
            transitions = apply_facts(board, decode_facts(record.value), watch)
            if transitions:
                alerting.count(transitions)
            touched.add(partition)
        # All taken before the first await: a rebalance may drop the boards meanwhile.
        changes = {partition: self.boards[partition].take_dirty() for partition in touched}
        covered = [self._alert_state(partition, changes[partition]) for partition in touched]
        pending = []
        for partition, partition_changes in changes.items():
            pending += await self.changelog.send_changes(self.table, partition,
                                                         partition_changes, stamp)
        return self._publish_once_logged(pending, covered)

    async def _publish_once_logged(self, pending: list[asyncio.Future],
                                   covered: list[list[Outgoing]]) -> None:
        await asyncio.gather(*pending)
        for entries in covered:
            if entries:
                self.alerting.logged(entries)

    def _alert_state(self, partition: int, changes: dict) -> list[Outgoing]:
        """Put the partition's alert state into `changes` if it changed; the transitions it
        covers may be published once `changes` are logged."""
        watch = self.alerting.watches.get(partition) if self.alerting is not None else None
        if watch is None or watch.board is not self.boards.get(partition):
            return []
        state, covered = watch.take_state()
        if state is not None:
            changes[STATE_UNIT] = state
        return covered

    def watch(self, partition: int) -> BoardWatch:
        def stored(unit: str) -> bytes | None:
            return self.table.data.get(partition_key(partition, unit))

        return self.alerting.watch(partition, self.board(partition), stored)

    def board(self, partition: int) -> Board:
        board = self.boards.get(partition)
        if board is None:
            config = self.config
            board = self.boards[partition] = Board(config.windows, config.thresholds,
                                                   config.timezone)
            for unit, state in partition_units(self.table, partition):
                if unit != STATE_UNIT:  # the partition's alert state: see `watch`
                    board.restore(unit, state)
        return board

    def owned_boards(self) -> Iterable[Board]:
        """Boards of the facts partitions assigned to this worker and recovered."""
        for partition in self.app.assigned(self.topic):
            board = self.boards.get(partition)
            if board is not None:
                yield board

    def rebuild(self) -> None:
        """After recovery: the boards now, not at their first fact (a quiet queue is still
        exported), with their watches."""
        self.boards.clear()
        for partition in self.app.assigned(self.topic):
            self.board(partition)
            if self.alerting is not None:
                self.watch(partition)

    def drop(self) -> None:
        self.boards.clear()
        if self.alerting is not None:
            self.alerting.watches.clear()

    async def every_tick(self) -> None:
        """At every multiple of E on the wall clock: the rules (clock = wall); at the first
        tick of each wall-clock second: the page's tiles and the partials of its agents view."""
        alerting = self.alerting
        store = alerting.store
        step = alerting.interval_ms
        views_sent: asyncio.Future | None = None
        viewed = 0  # the wall-clock second the views were last put for
        while True:
            now_ms = time.time() * 1000
            await asyncio.sleep(((now_ms // step + 1) * step - now_ms + 1) / 1000)
            tick = int(time.time() * 1000) // step * step
            second = tick // 1000 * 1000
            views = store is not None and second > viewed
            if alerting.event_clock and not views:
                continue
            stamp = self.changelog.stamp()
            tiles: dict[str, dict] = {}
            agents: dict[str, dict] = {}  # facts partition -> its partial
            for partition in sorted(self.app.assigned(self.topic)):
                board = self.boards.get(partition)
                if board is None:
                    continue
                if not alerting.event_clock:
                    watch = self.watch(partition)
                    alerting.count(watch.evaluate(tick))
                    changes: dict = {}
                    covered = self._alert_state(partition, changes)
                    if changes:
                        await self.changelog.log_changes(self.table, partition, changes, stamp)
                        alerting.logged(covered)
                if views:
                    # clock = event: the partition's own clock (its latest fact, as /metrics
                    # reads it: the rules are past it); none yet before its first fact.
                    board_now = board.latest_ts if alerting.event_clock else tick
                    if board_now:
                        tiles |= board_tiles(board, self.tiles_window, board_now, second)
                        agents[str(partition)] = agents_partial(board, board_now, second)
            if views:
                viewed = second
            # In the background: an unreachable Redis must not hold up the next evaluation.
            if (tiles or agents) and (views_sent is None or views_sent.done()):
                views_sent = asyncio.ensure_future(_put_views(store, tiles, agents))


async def _put_views(store, tiles: dict[str, dict], agents: dict[str, dict]) -> None:
    with contextlib.suppress(StoreUnavailable):  # said by the publisher
        await store.put_tiles(tiles)
        await store.put_agents(agents)
