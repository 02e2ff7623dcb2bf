"""The rules on one board, on the monitor clock (alerts.md), pure: no Kafka, no asyncio.

The worker has one `BoardWatch` per facts partition it owns. Rules are evaluated as the
monitor clock passes every multiple of the evaluation interval E (alerts.md 1.1,
`CCMON_EVAL_INTERVAL`, 250 ms by default): with `clock = event` the clock is the facts' own
timestamps, so the worker evaluates at tick T just before applying the first fact at or after
T; a replay with the same E therefore fires the alerts it would have fired live, at the same
moments, with the same ids. With `clock = wall` the worker evaluates at each wall-clock tick.

The facts are applied by `stream.facts.apply`, with the watch as its ticker (the hook that
evaluates at each tick the facts pass).

Transitions wait in an outbox until the state that produced them is in the changelog; only
then are they published (see `consumers/alerting.py`), so a restart never forgets an alert it
told anybody about, and re-publishing the outbox is harmless (the store ignores repeats).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from ccmon.stream.kpis import QUEUE_METRICS, queue_metrics
from ccmon.stream.queues import SEP, Board

from .rules import Rule
from .state import Alert, Evaluator, Series

DEFAULT_INTERVAL_MS = 250  # alerts.md 1.1
MAX_CATCH_UP_MS = 86_400_000  # after a longer jump of the clock, only its last day is stepped
LABELS = {spec.name: spec.labels for spec in QUEUE_METRICS}
STATE_UNIT = "alerts"  # the board table key of a partition's alert state

TILE_GAUGES = {"ccmon_queue_waiting_contacts": "waiting",
               "ccmon_queue_oldest_wait_seconds": "oldest_wait_seconds",
               "ccmon_contacts_in_conversation": "in_conversation",
               "ccmon_contacts_on_hold": "on_hold"}
TILE_RATIOS = {"ccmon_service_level_ratio": "service_level_ratio",
               "ccmon_abandon_ratio": "abandon_ratio",
               "ccmon_answer_wait_seconds_avg": "answer_wait_seconds_avg"}


class Outgoing:
    """A transition's message, and whether the state that made it is logged yet."""

    __slots__ = ("logged", "message")

    def __init__(self, message: dict[str, Any], logged: bool = False) -> None:
        self.message = message
        self.logged = logged


class BoardWatch:
    def __init__(self, rules: Iterable[Rule], board: Board,
                 interval_ms: int = DEFAULT_INTERVAL_MS) -> None:
        rules = list(rules)
        self.interval_ms = interval_ms
        self.evaluator = Evaluator(rules)
        self.board = board
        self.names = frozenset(rule.metric for rule in rules)
        self.outbox: list[Outgoing] = []

    @property
    def due(self) -> int | None:
        """The next tick (ms, a multiple of E) to evaluate at; None before the first."""
        now, step = self.evaluator.now, self.interval_ms
        return None if now is None else (now // step + 1) * step

    def pass_to(self, ts: int) -> list[Alert]:
        """The clock reaches `ts` (event clock): evaluate at every tick passed."""
        due, step = self.due, self.interval_ms
        last = ts // step * step
        if due is None:
            due = last
        due = max(due, last - MAX_CATCH_UP_MS // step * step)
        transitions = []
        for tick in range(due, last + 1, step):
            transitions += self.evaluate(tick)
        return transitions

    def evaluate(self, now: int) -> list[Alert]:
        transitions = self.evaluator.evaluate(now, self.series(now))
        self.outbox += (Outgoing(alert.message()) for alert in transitions)
        return transitions

    def series(self, now: int) -> Iterator[Series]:
        if not self.names:
            return
        for name, values, value in queue_metrics(self.board, now, self.names):
            yield name, dict(zip(LABELS[name], values, strict=True)), value

    # -- persistence --------------------------------------------------------------------------
    def take_state(self) -> tuple[dict[str, Any] | None, list[Outgoing]]:
        """The state to log if it changed, and the outgoing messages it covers."""
        if not self.evaluator.take_changed():
            return None, []
        covered = [entry for entry in self.outbox if not entry.logged]
        state = self.evaluator.state()
        state["outbox"] = [entry.message for entry in self.outbox]
        return state, covered

    def restore(self, state: dict[str, Any]) -> None:
        self.evaluator.restore(state)
        # Told or not before the restart: it is logged, so it goes (again) to the store.
        self.outbox = [Outgoing(message, logged=True) for message in state.get("outbox", ())]

    def unpublished(self) -> list[Outgoing]:
        """Logged messages not yet published, in order up to the first one not logged."""
        ready = []
        for entry in self.outbox:
            if not entry.logged:
                break
            ready.append(entry)
        return ready

    def published(self, entries: list[Outgoing]) -> None:
        done = {id(entry) for entry in entries}
        self.outbox = [entry for entry in self.outbox if id(entry) not in done]


def tiles(board: Board, window: str, now: int, at: int) -> dict[str, dict[str, Any]]:
    """The supervisor page's tiles per (queue, channel) at `now`, stamped with wall time `at`."""
    out: dict[str, dict[str, Any]] = {}
    for name, values, value in queue_metrics(board, now, TILE_GAUGES.keys() | TILE_RATIOS.keys()):
        queue, channel = values[0], values[1]
        if name in TILE_RATIOS and values[2] != window:
            continue
        tile = out.get(f"{queue}{SEP}{channel}")
        if tile is None:
            tile = out[f"{queue}{SEP}{channel}"] = {
                "queue": queue, "channel": channel, "window": window, "at": at,
                **dict.fromkeys(TILE_RATIOS.values())}
        tile[TILE_GAUGES.get(name) or TILE_RATIOS[name]] = value
    return out
