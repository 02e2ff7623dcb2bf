"""Agents' time in state for one queue (metrics.md 1.1, "Agents: time with customers").

An agent is in the state of its latest `agent.state` from that event's `ts` until its next
one, for each queue that event lists; leaving a queue's list (state None here) ends its time
there. A `Timelines` keeps, per agent, the changes ordered by `ts` (arrival order breaks
ties, so a late event takes its place in time), and sums agent-milliseconds per state over
any window `(low, now]` at read time: the current state counts up to `now`, nothing counts
before an agent's first change. Changes that no window can reach any more are pruned, all
but the last one before the oldest edge, which still says the state there.
"""

from __future__ import annotations

from bisect import bisect_right

from .events import AGENT_STATES

Change = tuple[int, str | None]  # (ts in Unix ms, state; None: not in the queue from ts)


class Timelines:
    __slots__ = ("changes",)

    def __init__(self) -> None:
        self.changes: dict[str, list[Change]] = {}  # agent -> changes sorted by ts

    def record(self, agent: str, ts: int, state: str | None) -> None:
        """Put a change in its place."""
        changes = self.changes.setdefault(agent, [])
        if not changes or ts >= changes[-1][0]:
            changes.append((ts, state))
        else:  # late: after every change of the same ts, which arrived before it
            changes.insert(bisect_right(changes, ts, key=_ts), (ts, state))

    def latest(self) -> dict[str, str]:
        """Each agent's state at its latest change by ts, for the agents still in the queue."""
        return {agent: changes[-1][1] for agent, changes in self.changes.items()
                if changes[-1][1] is not None}

    def current(self) -> dict[str, tuple[str, int, int]]:
        """Each agent still in the queue: (state, since, changed). `state` is that of its latest
        change by ts, made at `changed`; `since` is when that state began: the first of the
        latest changes to it in a row (a repeated state does not restart it), as far back as
        the changes kept reach."""
        out = {}
        for agent, changes in self.changes.items():
            changed, state = changes[-1]
            if state is None:
                continue
            since = changed
            for ts, earlier in reversed(changes[:-1]):
                if earlier != state:
                    break
                since = ts
            out[agent] = (state, since, changed)
        return out

    def seconds(self, low: int, now: int) -> dict[str, float]:
        """Agent-seconds per state (all five) in `(low, now]`."""
        return self.seconds_in([low], now)[0]

    def seconds_in(self, lows: list[int], now: int) -> list[dict[str, float]]:
        """`seconds` for each window `(low, now]`, in one pass over the changes (a scrape
        reads every window; a large centre has thousands of agents)."""
        totals = [dict.fromkeys(AGENT_STATES, 0) for _ in lows]
        windows = list(zip(lows, totals, strict=True))
        for changes in self.changes.values():
            for (start, state), end in zip(changes, [*(ts for ts, _ in changes[1:]), now],
                                           strict=True):
                if state is None:
                    continue
                end = min(end, now)
                for low, total in windows:
                    overlap = end - max(start, low)
                    if overlap > 0:
                        total[state] += overlap
        return [{state: ms / 1000 for state, ms in total.items()} for total in totals]

    def prune(self, horizon: int) -> list[str]:
        """Forget what no window reaching back to `horizon` needs; the agents whose changes
        went."""
        pruned = []
        for agent, changes in list(self.changes.items()):
            before = bisect_right(changes, horizon, key=_ts)  # changes at or before horizon
            if before > 1:
                del changes[:before - 1]
                pruned.append(agent)
            if len(changes) == 1 and changes[0][1] is None and changes[0][0] <= horizon:
                del self.changes[agent]  # out of the queue since before every window
                if not pruned or pruned[-1] != agent:
                    pruned.append(agent)
        return pruned

    # One agent's changes are persisted on their own: a queue of thousands of agents would
    # not fit in one changelog message.
    def agent_json(self, agent: str) -> list[list]:
        return [list(change) for change in self.changes.get(agent, ())]

    def restore_agent(self, agent: str, changes: list[list]) -> None:
        if changes:
            self.changes[agent] = [(ts, state) for ts, state in changes]
        else:
            self.changes.pop(agent, None)


def _ts(change: Change) -> int:
    return change[0]
