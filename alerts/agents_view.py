"""The supervisors' agents view (alerts.md 1.1, "Agents for supervisors"), pure: no I/O.

An agent's figures are spread over facts partitions: its state over those of the queues it
lists (`Board.timelines`), its samples over those of the (queue, channel) series it worked
in (`Board.reps`). So each worker writes one *partial* per facts partition it owns, once a
second (`partial`): per agent the sums of every window, not averages, and the state known
there. A gateway sums an agent's partials for its window and turns them into the message's
averages and ratios (`merge`), then keeps, per client, the agents listing one of the token's
queues (`visible`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ccmon.stream.reps import (
    HANDLE_MS,
    HANDLED,
    HOLD_MS,
    HOLDS,
    SATISFIED,
    SUMS,
    SURVEYS,
    TRANSFERS,
)

from .state import rfc3339
from .tokens import Supervisor

Message = dict[str, Any]


def partial(board, now: int, at: int) -> Message:
    """One facts partition's share of the view at `now`, stamped with wall time `at`:
    `{"at", "windows": [label], "agents": {id: {"queues", "state", "since", "changed",
    "sums": {label: SUMS}}}}`; state fields only where the agent lists a queue of this
    partition, sums only where it has samples. Advances the board's clock (it prunes)."""
    board.advance(now)
    now = board.now
    agents: dict[str, Message] = {}
    for queue, timelines in board.timelines.items():
        for agent, current in timelines.current().items():
            entry = agents.setdefault(agent, {"queues": []})
            entry["queues"].append(queue)
            _take_latest(entry, *current)
    lows = [edge(now) for edge in board.window_edges]
    labels = board.window_labels
    for agent in board.reps.samples:
        sums = board.reps.sums(agent, lows, now)
        agents.setdefault(agent, {"queues": []})["sums"] = dict(zip(labels, sums, strict=True))
    return {"at": at, "windows": list(labels), "agents": agents}


def _take_latest(entry: Message, state: str, since: int, changed: int) -> None:
    """Keep the state of the latest change; on a tie (one event listing queues of several
    partitions) the earliest `since`, where the state began in one of them."""
    known = entry.get("changed")
    if known is None or changed > known or (changed == known and since < entry["since"]):
        entry.update(state=state, since=since, changed=changed)


def merge(partials: Iterable[Message], window: str) -> list[Message] | None:
    """Every agent listing a queue, in alerts.md's shape (`queues`: all it lists), sorted by
    id; None if a partial lacks `window` (the workers do not export it)."""
    merged: dict[str, Message] = {}
    for part in partials:
        if window not in part["windows"]:
            return None
        for agent, figures in part["agents"].items():
            entry = merged.setdefault(agent, {"queues": set(), "sums": [0] * len(SUMS)})
            entry["queues"].update(figures["queues"])
            if "changed" in figures:
                _take_latest(entry, figures["state"], figures["since"], figures["changed"])
            for index, value in enumerate(figures.get("sums", {}).get(window, ())):
                entry["sums"][index] += value
    return [_message(agent, entry) for agent, entry in sorted(merged.items())
            if "state" in entry]  # listed in no queue: no supervisor's agent


def _message(agent: str, entry: Message) -> Message:
    sums = entry["sums"]
    return {"agent_id": agent, "state": entry["state"], "since": rfc3339(entry["since"]),
            "queues": sorted(entry["queues"]), "handled": sums[HANDLED],
            "handle_seconds_avg": _mean(sums[HANDLE_MS], sums[HANDLED], 1000),
            "hold_seconds_avg": _mean(sums[HOLD_MS], sums[HOLDS], 1000),
            "transferred": sums[TRANSFERS], "csat_ratio": _mean(sums[SATISFIED], sums[SURVEYS])}


def _mean(total: int, count: int, scale: int = 1) -> float | None:
    return total / count / scale if count else None  # no samples: null, never 0


def visible(agents: Iterable[Message], supervisor: Supervisor) -> list[Message]:
    """The agents listing one of the supervisor's queues, with only those queues named: a
    token learns nothing of other queues (the figures are the agent's, across its queues)."""
    out = []
    for agent in agents:
        queues = [queue for queue in agent["queues"] if supervisor.sees({"queue": queue})]
        if queues:
            out.append({**agent, "queues": queues})
    return out
