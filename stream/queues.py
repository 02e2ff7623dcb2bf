"""Stage two of the KPI engine: facts aggregated per (queue, channel), metrics at `now`.

A `Board` holds the queues of one partition of the fact stream: who waits and who talks
(state gauges), exact sliding windows of the closed facts (windowed metrics), and the agents
of each queue. Its state is split into small persistence units (live state, agents, one
minute of samples) so that a batch rewrites only what it touched.

Replays are idempotent: each unit remembers, per source partition, the position of the last
fact it applied, and ignores facts at or before it. After a crash the worker may send and
apply the same facts again; they change nothing the second time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from .events import AGENT_STATES
from .lifecycle import (
    ABANDONED,
    AGENT,
    ANSWERED,
    ENDED,
    ENTERED,
    HOLD_ENDED,
    HOLD_STARTED,
    SURVEY,
    TALK_TRANSFERRED,
    WAIT_TRANSFERRED,
    Fact,
)
from .windows import SlidingWindows

# Positions of the window sums.
(OFFERED, ANSWERS, ANSWERS_IN_SL, ANSWER_WAIT, ABANDONS, SHORT_ABANDONS, ABANDON_WAIT,
 TRANSFERS, HOLDS, HOLD_TIME, HANDLES, HANDLE_TIME, CSAT, CSAT_GOOD, NPS, NPS_PROMOTERS,
 NPS_DETRACTORS, CES, CES_TOTAL) = range(19)
SUMS = 19

LIVE_KINDS = frozenset((ENTERED, ANSWERED, ABANDONED, WAIT_TRANSFERRED, HOLD_STARTED,
                        HOLD_ENDED, ENDED, TALK_TRANSFERRED))
SAMPLE_KINDS = frozenset((ENTERED, ANSWERED, ABANDONED, WAIT_TRANSFERRED, HOLD_ENDED, ENDED,
                          TALK_TRANSFERRED, SURVEY))

# Stage one tells every partition of stage two how far event time has got, so that with
# clock = event every worker's `now` reaches the largest ts of any event, not only of its own.
CLOCK = "clock"
CLOCK_UNIT = "C"

MINUTE_MS = 60_000
SEP = "\x1f"  # separates names inside unit keys; never part of a queue name we emit


def _contribution(service_level_ms: int, short_abandon_ms: int) -> Callable:
    """The function adding a sample's share to a window's sums, for one queue's thresholds."""

    def contribute(sample: tuple, sums: list, sign: int) -> None:
        _, kind, value = sample
        if kind == ENTERED:
            sums[OFFERED] += sign
        elif kind == ANSWERED:
            sums[ANSWERS] += sign
            sums[ANSWER_WAIT] += sign * value
            if value <= service_level_ms:
                sums[ANSWERS_IN_SL] += sign
        elif kind == ABANDONED:
            sums[ABANDONS] += sign
            sums[ABANDON_WAIT] += sign * value
            if value < short_abandon_ms:
                sums[SHORT_ABANDONS] += sign
        elif kind == ENDED:
            sums[HANDLES] += sign
            sums[HANDLE_TIME] += sign * value
        elif kind == TALK_TRANSFERRED:
            sums[TRANSFERS] += sign
            sums[HANDLES] += sign
            sums[HANDLE_TIME] += sign * value
        elif kind == WAIT_TRANSFERRED:
            sums[TRANSFERS] += sign
        elif kind == HOLD_ENDED:
            sums[HOLDS] += sign
            sums[HOLD_TIME] += sign * value
        elif kind == SURVEY:
            survey, score = value
            if survey == "csat":
                sums[CSAT] += sign
                if score >= 4:
                    sums[CSAT_GOOD] += sign
            elif survey == "nps":
                sums[NPS] += sign
                if score >= 9:
                    sums[NPS_PROMOTERS] += sign
                elif score <= 6:
                    sums[NPS_DETRACTORS] += sign
            else:
                sums[CES] += sign
                sums[CES_TOTAL] += sign * score

    return contribute


@dataclass
class QueueStats:
    """One (queue, channel): current contacts and the windows of closed facts."""

    windows: SlidingWindows
    waiting: dict[str, int] = field(default_factory=dict)  # contact -> entry ts
    talking: dict[str, int | None] = field(default_factory=dict)  # contact -> hold start
    fading: set[int] = field(default_factory=set)  # minutes partly out of every window

    def on_hold(self) -> int:
        return sum(1 for since in self.talking.values() if since is not None)

    def oldest_wait_ms(self, now: int) -> int:
        return max(0, now - min(self.waiting.values())) if self.waiting else 0


@dataclass(frozen=True)
class Thresholds:
    service_level_ms: int = 20_000
    service_level_by_queue: dict[str, int] = field(default_factory=dict)
    short_abandon_ms: int = 5_000

    def service_level(self, queue: str) -> int:
        return self.service_level_by_queue.get(queue, self.service_level_ms)


class Board:
    def __init__(self, windows: tuple[tuple[str, int], ...], thresholds: Thresholds) -> None:
        self.window_labels = tuple(label for label, _ in windows)
        self.window_widths = tuple(width for _, width in windows)
        self.thresholds = thresholds
        self.queues: dict[tuple[str, str], QueueStats] = {}
        self.agents: dict[str, dict[str, str]] = {}  # queue -> agent -> state
        self.marks: dict[str, dict[str, int]] = {}  # unit key -> source -> last position
        self.dirty: set[str] = set()
        self.now: int | None = None
        self.latest_ts = 0  # largest fact or clock ts applied: the event clock, as seen here

    # -- units -------------------------------------------------------------------------------
    @staticmethod
    def live_unit(queue: str, channel: str) -> str:
        return f"L{SEP}{queue}{SEP}{channel}"

    @staticmethod
    def agents_unit(queue: str) -> str:
        return f"A{SEP}{queue}"

    @staticmethod
    def samples_unit(queue: str, channel: str, ts: int) -> str:
        return f"S{SEP}{queue}{SEP}{channel}{SEP}{ts // MINUTE_MS}"

    def _fresh(self, unit: str, source: str, position: int) -> bool:
        """True (and the position recorded) if the unit has not applied this fact yet."""
        marks = self.marks.get(unit)
        if marks is None:
            marks = self.marks[unit] = {}
        elif marks.get(source, -1) >= position:
            return False
        marks[source] = position
        self.dirty.add(unit)
        return True

    def stats(self, queue: str, channel: str) -> QueueStats:
        stats = self.queues.get((queue, channel))
        if stats is None:
            contribute = _contribution(self.thresholds.service_level(queue),
                                       self.thresholds.short_abandon_ms)
            stats = QueueStats(SlidingWindows(self.window_widths, SUMS, contribute))
            if self.now is not None:
                stats.windows.advance(self.now)
            self.queues[(queue, channel)] = stats
        return stats

    # -- applying facts ----------------------------------------------------------------------
    def apply(self, fact: Fact, source: str, position: int) -> None:
        queue, channel, kind, ts, contact, value = fact
        if ts > self.latest_ts:
            self.latest_ts = ts
            self.dirty.add(CLOCK_UNIT)
        if kind == CLOCK:
            return
        if kind == AGENT:
            if self._fresh(self.agents_unit(queue), source, position):
                roster = self.agents.setdefault(queue, {})
                if value is None:
                    roster.pop(contact, None)
                else:
                    roster[contact] = value
            return
        stats = self.stats(queue, channel)
        if kind in LIVE_KINDS and self._fresh(self.live_unit(queue, channel), source, position):
            self._update_live(stats, kind, ts, contact)
        if kind in SAMPLE_KINDS and stats.windows.reaches(ts) and \
                self._fresh(self.samples_unit(queue, channel, ts), source, position):
            stats.windows.add((ts, kind, value))

    @staticmethod
    def _update_live(stats: QueueStats, kind: str, ts: int, contact: str) -> None:
        if kind == ENTERED:
            stats.waiting[contact] = ts
        elif kind == ANSWERED:
            stats.waiting.pop(contact, None)
            stats.talking[contact] = None
        elif kind in (ABANDONED, WAIT_TRANSFERRED):
            stats.waiting.pop(contact, None)
        elif kind == HOLD_STARTED:
            stats.talking[contact] = ts
        elif kind == HOLD_ENDED:
            if contact in stats.talking:
                stats.talking[contact] = None
        else:  # ENDED, TALK_TRANSFERRED
            stats.talking.pop(contact, None)

    def advance(self, now: int) -> None:
        """Move the monitor clock; windows slide and samples out of every window are dropped."""
        if self.now is not None and now <= self.now:
            return
        self.now = now
        for (queue, channel), stats in self.queues.items():
            windows = stats.windows
            windows.advance(now)
            stats.fading.update(second * 1000 // MINUTE_MS for second in windows.expire())
            # A minute's unit (its samples and its marks) goes only once the whole minute is
            # out of every window: a replayed fact of its later seconds must still find the
            # marks, or it would count twice.
            horizon = now - windows.longest
            for minute in [m for m in stats.fading if (m + 1) * MINUTE_MS - 1 <= horizon]:
                stats.fading.discard(minute)
                unit = self.samples_unit(queue, channel, minute * MINUTE_MS)
                if self.marks.pop(unit, None) is not None:
                    self.dirty.add(unit)

    # -- persistence -------------------------------------------------------------------------
    def unit_state(self, unit: str) -> dict | None:
        """The JSON-able state of a unit, or None if the unit is gone."""
        if unit == CLOCK_UNIT:
            return {"latest": self.latest_ts}
        marks = self.marks.get(unit)
        if marks is None:
            return None
        kind, *names = unit.split(SEP)
        if kind == "A":
            return {"marks": marks, "agents": self.agents.get(names[0], {})}
        stats = self.queues.get((names[0], names[1]))
        if kind == "L":
            return {"marks": marks, "waiting": stats.waiting, "talking": stats.talking}
        first_second = int(names[2]) * MINUTE_MS // 1000
        buckets = stats.windows.buckets
        samples = [sample for second in range(first_second, first_second + MINUTE_MS // 1000)
                   for sample in buckets.get(second, ())]
        return {"marks": marks, "samples": samples}

    def take_dirty(self) -> dict[str, dict | None]:
        out = {unit: self.unit_state(unit) for unit in self.dirty}
        self.dirty.clear()
        return out

    def restore(self, unit: str, state: dict) -> None:
        if unit == CLOCK_UNIT:
            self.latest_ts = max(self.latest_ts, state["latest"])
            return
        kind, *names = unit.split(SEP)
        self.marks[unit] = dict(state["marks"])
        if kind == "A":
            self.agents[names[0]] = dict(state["agents"])
            return
        stats = self.stats(names[0], names[1])
        if kind == "L":
            stats.waiting.update(state["waiting"])
            stats.talking.update(state["talking"])
        else:
            for ts, sample_kind, value in state["samples"]:
                if sample_kind == SURVEY:
                    value = tuple(value)
                stats.windows.add((ts, sample_kind, value))
                self.latest_ts = max(self.latest_ts, ts)

    # -- reading -----------------------------------------------------------------------------
    def agent_counts(self) -> Iterator[tuple[str, str, int]]:
        """(queue, state, agents) for every queue and all five states."""
        for queue, roster in self.agents.items():
            counts = dict.fromkeys(AGENT_STATES, 0)
            for state in roster.values():
                counts[state] += 1
            for state in AGENT_STATES:
                yield queue, state, counts[state]
