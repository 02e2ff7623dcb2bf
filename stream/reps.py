"""Per-agent figures of one facts partition (alerts.md 1.1, "Agents for supervisors").

Stage one credits the agent of a contact's latest `contact.answered` with what closes under
it: a conversation segment (ended, or closed by a transfer: its handle time), a hold (its
length), a csat survey (its score). Each comes as one REP fact, addressed to the (queue,
channel) of the closing fact, whose value is a code `value << KIND_BITS | kind` (`rep_code`).

`Reps` keeps each agent's samples as two int64 columns sorted by ts (a `windows.Block`: 16
bytes a sample, no Python object), pruned to what the longest window still reaches. Sums per
window `(low, now]` are read from them when asked (once a second, for the gateway), as agent
time is: no incremental state to keep exact across restarts.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

from .windows import Block

# What a sample is: the numbers are in the changelog (append, never renumber).
ENDED, TRANSFERRED, HOLD, CSAT = range(4)
KIND_BITS = 2
KIND_MASK = (1 << KIND_BITS) - 1
CSAT_GOOD = 4  # metrics.md: the share of csat scores >= 4

# The sums of one agent and window, in this order (the gateway's partials too).
SUMS = ("handled", "transferred", "handle_ms", "holds", "hold_ms", "surveys", "satisfied")
HANDLED, TRANSFERS, HANDLE_MS, HOLDS, HOLD_MS, SURVEYS, SATISFIED = range(len(SUMS))


def rep_code(kind: int, value: int) -> int:
    """A sample's kind and value (ms, or a csat score) as one int."""
    return value << KIND_BITS | kind


class Reps:
    """The samples of the agents credited on one facts partition."""

    __slots__ = ("samples",)

    def __init__(self) -> None:
        self.samples: dict[str, Block] = {}  # agent -> its samples (the block's marks unused)

    def add(self, agent: str, ts: int, code: int) -> None:
        block = self.samples.get(agent)
        if block is None:
            block = self.samples[agent] = Block()
        block.insert(ts, code)

    def prune(self, horizon: int) -> list[str]:
        """Drop the samples at or before `horizon` (out of every window for good); the agents
        whose samples changed. An agent left with none is forgotten."""
        changed = []
        for agent, block in list(self.samples.items()):
            cut = bisect_right(block.times, horizon)
            if not cut:
                continue
            changed.append(agent)
            if cut == len(block.times):
                del self.samples[agent]
            else:
                del block.times[:cut]
                del block.codes[:cut]
        return changed

    def sums(self, agent: str, lows: Sequence[int], now: int) -> list[list[int]]:
        """The agent's SUMS over each window `(low, now]`."""
        block = self.samples.get(agent)
        if block is None:
            return [[0] * len(SUMS) for _ in lows]
        times, codes = block.times, block.codes
        end = bisect_right(times, now)
        return [_summed(codes[bisect_right(times, low):end]) for low in lows]

    # -- persistence -------------------------------------------------------------------------
    def to_json(self, agent: str) -> dict[str, list[int]] | None:
        block = self.samples.get(agent)
        if block is None:
            return None
        return {"times": block.times.tolist(), "codes": block.codes.tolist()}

    def restore(self, agent: str, data: dict[str, list[int]]) -> None:
        block = self.samples[agent] = Block()
        for ts, code in zip(data["times"], data["codes"], strict=True):
            block.insert(ts, code)


def _summed(codes: Sequence[int]) -> list[int]:
    sums = [0] * len(SUMS)
    for code in codes:
        kind, value = code & KIND_MASK, code >> KIND_BITS
        if kind == HOLD:
            sums[HOLDS] += 1
            sums[HOLD_MS] += value
        elif kind == CSAT:
            sums[SURVEYS] += 1
            sums[SATISFIED] += value >= CSAT_GOOD
        else:  # a segment closed: ended, or by a transfer
            sums[HANDLED] += 1
            sums[HANDLE_MS] += value
            sums[TRANSFERS] += kind == TRANSFERRED
    return sums
