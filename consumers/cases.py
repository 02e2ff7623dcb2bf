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
from aiokafka import ConsumerRecord

from ccmon.stream.cases import Cases, JourneyFact
from ccmon.stream.engine import journey_position
from ccmon.stream.facts import Located

from .changelog import ChangelogWriter, InTurn, partition_units
from .facts_out import FactSender
from .fastpath import BatchApp


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
        self.lock = asyncio.Lock()  # a batch and a wall-clock drop take their turns
        self.logging = InTurn()  # the customers' changes, logged in turn

    async def take(self, records: list[ConsumerRecord]) -> asyncio.Future:
        """One fetched batch of the journeys topic, handed over by the batching consumer."""
        async with self.lock:
            stamp = self.changelog.stamp()
            facts: list[Located] = []
            touched = set()
            for record in records:
                cases = self.stage(record.partition)
                clock, steps = orjson.loads(record.value)
                source = f"{self.topic}:{record.partition}"
                for index, step in enumerate(steps):
                    facts += cases.apply(JourneyFact(*step), source,
                                         journey_position(record.offset, index))
                if self.event_clock:
                    facts += cases.advance(clock)
                touched.add(record.partition)
            return await self._send(facts, touched, stamp)

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
                writing = await self._send(facts, touched, stamp)
            # A failed write is the batch path's to raise (the batch chained after it is not
            # acknowledged); a replay makes the same drops at the same positions.
            with contextlib.suppress(Exception):
                await writing

    async def _send(self, facts: list[Located], touched: set[int], stamp: bytes
                    ) -> asyncio.Future:
        """Hand the case facts to the producer; the future of logging the changed customers
        once Kafka has them (and the previous changes are logged): a logged customer never
        refers to a fact Kafka lacks."""
        # Taken before the first await: a rebalance may drop the cases meanwhile.
        changes = {partition: self.cases[partition].take_dirty() for partition in touched}
        sent = await self.facts.send(facts)
        return self.logging.then(self._log_once_sent(sent, changes, stamp))

    async def _log_once_sent(self, sent: list[asyncio.Future], changes: dict[int, dict],
                             stamp: bytes) -> None:
        await asyncio.gather(*sent)
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
        """Let the pending changelog writes finish (a rebalance began), for at most `seconds`."""
        await self.logging.settle(seconds)

    def drop(self) -> None:
        self.cases.clear()
