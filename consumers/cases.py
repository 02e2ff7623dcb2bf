"""The cases in the worker (metrics.md 1.1): journey steps from `<app_id>-journeys`, keyed by
customer so that a customer's contacts meet in one `stream.cases.Cases`; the case facts it
makes go to the facts topic, then its state is logged (a logged customer never refers to a
fact Kafka lacks). Cases drop on the monitor clock: with clock = event the event clock stage
one sends along, with clock = wall every whole second. A replay makes the same facts at the
same positions (from the journey message's offset, or a drop's moment), which the boards
ignore."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time

import faust
import orjson

from ccmon.stream.cases import Cases, JourneyFact
from ccmon.stream.engine import journey_position
from ccmon.stream.facts import Located

from .changelog import ChangelogWriter, partition_units
from .facts_out import FactSender
from .fastpath import BATCH_MAX, BATCH_WITHIN, BatchApp


class CaseStage:
    def __init__(self, app: BatchApp, table: faust.Table, changelog: ChangelogWriter,
                 facts: FactSender, topic: str, timeout_ms: int, event_clock: bool) -> None:
        self.app = app
        self.table = table
        self.changelog = changelog
        self.facts = facts
        self.topic = topic
        self.timeout_ms = timeout_ms
        self.event_clock = event_clock
        self.cases: dict[int, Cases] = {}  # journeys partition -> its customers
        self.lock = asyncio.Lock()  # a batch and a wall-clock drop log in turn

    async def consume(self, stream: faust.StreamT) -> None:
        """The journeys topic's agent."""
        async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN):
            async with self.lock:
                generation = self.app.consumer_generation_id
                stamp = self.changelog.stamp()
                facts: list[Located] = []
                touched = set()
                for event in self.app.still_owned(events, self.topic):
                    message = event.message
                    cases = self.stage(message.partition)
                    clock, steps = orjson.loads(message.value)
                    source = f"{self.topic}:{message.partition}"
                    for index, step in enumerate(steps):
                        facts += cases.apply(JourneyFact(*step), source,
                                             journey_position(message.offset, index))
                    if self.event_clock:
                        facts += cases.advance(clock)
                    touched.add(message.partition)
                await self._send(facts, touched, stamp)
                self.app.unless_rebalanced(events, generation)

    async def drop_every_second(self) -> None:
        """clock = wall: the cases that come due are dropped at every whole second."""
        while True:
            now = time.time()
            await asyncio.sleep(math.ceil(now) - now + 0.001)
            second = math.floor(time.time()) * 1000
            async with self.lock:
                stamp = self.changelog.stamp()
                facts: list[Located] = []
                touched = set()
                for partition in self.app.assigned(self.topic):
                    cases = self.cases.get(partition)
                    if cases is not None:
                        facts += cases.advance(second)
                        touched.add(partition)
                await self._send(facts, touched, stamp)

    async def _send(self, facts: list[Located], touched: set[int], stamp: bytes) -> None:
        # Taken before the first await: a rebalance may drop the cases meanwhile.
        changes = {partition: self.cases[partition].take_dirty() for partition in touched}
        await asyncio.gather(*await self.facts.send(facts))
        await asyncio.gather(*(self.changelog.log_changes(self.table, partition,
                                                          partition_changes, stamp)
                               for partition, partition_changes in changes.items()
                               if partition_changes))

    def stage(self, partition: int) -> Cases:
        cases = self.cases.get(partition)
        if cases is None:
            cases = self.cases[partition] = Cases(self.timeout_ms, f"drops:{partition}")
            for unit, state in partition_units(self.table, partition):
                cases.restore(unit, state)
        return cases

    async def settle(self, seconds: float) -> None:
        """Let the batch in flight finish (a rebalance began), for at most `seconds`."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.lock.acquire(), seconds)
            self.lock.release()

    def drop(self) -> None:
        self.cases.clear()
