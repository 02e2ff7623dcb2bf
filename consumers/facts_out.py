"""Located facts out to the facts topic, each to the partition of its (queue, channel), in
the order given within each partition: stage two must see a partition's facts in the order
they happened, so the rules pass each tick on the right state (clock = event)."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from ccmon.stream.facts import FACTS_PER_MESSAGE, Located, encode, series_partition

from .fastpath import BatchApp


class FactSender:
    def __init__(self, app: BatchApp, topic: str, partitions: int) -> None:
        self.app = app
        self.topic = topic
        self.partitions = partitions
        self._partition_of: dict[tuple[str, str], int] = {}  # a series' partition, computed once

    async def send(self, facts: list[Located]) -> list[asyncio.Future]:
        """Hand the facts to the producer; the futures of Kafka's acknowledgements."""
        by_partition: dict[int, list] = defaultdict(list)
        partition_of = self._partition_of
        for located in facts:
            series = (located[0], located[1])
            partition = partition_of.get(series)
            if partition is None:
                partition = partition_of[series] = series_partition(*series, self.partitions)
            by_partition[partition].append(located)
        send = self.app.producer.send
        return [await send(self.topic, None, encode(batch[i:i + FACTS_PER_MESSAGE]),
                           partition, None, None)
                for partition, batch in by_partition.items()
                for i in range(0, len(batch), FACTS_PER_MESSAGE)]
