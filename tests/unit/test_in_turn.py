"""`InTurn` (consumers/changelog.py): logging work runs in the order it was handed in, each
piece after the one before, whatever order their own waits end in."""

from __future__ import annotations

import asyncio
import warnings

import pytest

from ccmon.consumers.changelog import InTurn


def test_work_runs_in_the_order_handed_in_even_when_a_later_wait_ends_first():
    async def scenario() -> list[str]:
        done: list[str] = []
        first_sent, second_sent = asyncio.Event(), asyncio.Event()

        async def log(name: str, sent: asyncio.Event) -> None:
            await sent.wait()
            done.append(name)

        turns = InTurn()
        first = turns.then(log("first", first_sent))
        second = turns.then(log("second", second_sent))
        second_sent.set()  # the second batch's facts are acknowledged first
        await asyncio.sleep(0)
        assert done == []
        first_sent.set()
        await asyncio.gather(first, second)
        return done

    assert asyncio.run(scenario()) == ["first", "second"]


def test_a_failed_piece_fails_the_ones_after_it_without_starting_them():
    async def scenario() -> None:
        started: list[str] = []

        async def fail() -> None:
            raise OSError("broker gone")

        async def log() -> None:
            started.append("log")

        turns = InTurn()
        failed = turns.then(fail())
        after = turns.then(log())
        with pytest.raises(OSError):
            await failed
        with pytest.raises(OSError):
            await after
        assert started == []

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "coroutine ... was never awaited" would be one
        asyncio.run(scenario())


def test_settle_waits_at_most_its_bound_and_swallows_failures():
    async def scenario() -> None:
        turns = InTurn()
        await turns.settle(0.01)  # nothing handed in
        never = asyncio.Event()
        pending = turns.then(never.wait())
        await turns.settle(0.01)
        assert not pending.done()  # shielded: still running after the bound
        never.set()
        await pending

    asyncio.run(scenario())
