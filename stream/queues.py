"""Stage two of the KPI engine: facts aggregated per (queue, channel), metrics at `now`.

A `Board` holds the queues of one partition of the fact stream: who waits and who talks
(state gauges), exact sliding windows of the closed facts (windowed metrics), and the agents
of each queue. Its state is split into small persistence units (live state, agents, one
minute of samples) so that a batch rewrites only what it touched. A sample is stored as two
integers (ts, code): `sample_code` packs the fact's kind and value into the code.

Replays are idempotent: each unit remembers, per source partition, the position of the last
fact it applied, and ignores facts at or before it. After a crash the worker may send and
apply the same facts again; they change nothing the second time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from .agents import Timelines
from .cases import DROPPED, OPEN_CASES, OPENED, REPEAT, RESOLVED, Resolution
from .events import AGENT_STATES
from .lifecycle import (
    ABANDONED,
    AGENT,
    ANSWERED,
    ENDED,
    ENTERED,
    HOLD_ENDED,
    HOLD_STARTED,
    REP,
    STAFF,
    STAFFED,
    SURVEY,
    TALK_TRANSFERRED,
    WAIT_TRANSFERRED,
    Fact,
)
from .reps import Reps
from .windows import Block, SlidingWindows, lower_edges

# Positions of the window sums.
(OFFERED, ANSWERS, ANSWERS_IN_SL, ANSWER_WAIT, ABANDONS, SHORT_ABANDONS, ABANDON_WAIT,
 TRANSFERS, HOLDS, HOLD_TIME, HANDLES, HANDLE_TIME, CSAT, CSAT_GOOD, NPS, NPS_PROMOTERS,
 NPS_DETRACTORS, CES, CES_TOTAL, ABANDONS_IN_SL,
 OPENED_CASES, REOPENED_CASES, REPEATS, RESOLVED_CASES, FCR_CASES, RESOLUTION_TIME,
 CASE_CONTACTS, MULTICHANNEL_CASES, DROPPED_CASES) = range(29)
SUMS = 29


LIVE_KINDS = frozenset((ENTERED, ANSWERED, ABANDONED, WAIT_TRANSFERRED, HOLD_STARTED,
                        HOLD_ENDED, ENDED, TALK_TRANSFERRED))
# The kinds kept as window samples, numbered for their codes. The numbers are in the
# changelog: append new kinds, never renumber.
SAMPLE_CODES = {kind: number for number, kind in enumerate((
    ENTERED, ANSWERED, ABANDONED, WAIT_TRANSFERRED, HOLD_ENDED, ENDED, TALK_TRANSFERRED, SURVEY,
    OPENED, REPEAT, RESOLVED, DROPPED))}
SAMPLE_KINDS = tuple(SAMPLE_CODES)
SURVEY_KINDS = ("csat", "nps", "ces")  # numbered in a survey sample's value, as kinds are
KIND_BITS = 4  # code = value << KIND_BITS | kind number; every value is an int >= 0
SCORE_BITS = 4  # a survey's value = survey kind number << SCORE_BITS | score (0-10)
KIND_MASK = (1 << KIND_BITS) - 1
SCORE_MASK = (1 << SCORE_BITS) - 1
# A resolution's value = ms << RESOLUTION_BITS | contacts << 2 | fcr << 1 | multichannel:
# 20 bits of contacts (capped), which leaves 39 bits of ms (17 years) in a 64-bit code.
CONTACT_BITS = 20
RESOLUTION_BITS = CONTACT_BITS + 2
CONTACT_MASK = (1 << CONTACT_BITS) - 1

# Stage one tells every partition of stage two how far event time has got, so that with
# clock = event every worker's `now` reaches the largest ts of any event, not only of its own.
CLOCK = "clock"
CLOCK_UNIT = "C"

MINUTE_MS = 60_000
SEP = "\x1f"  # separates names inside unit keys; never part of a queue name we emit


def sample_code(kind: str, value: object) -> int:
    """A sample's kind and value (ms, or a survey's (kind, score)) as one int."""
    if kind == SURVEY:
        survey, score = value
        value = SURVEY_KINDS.index(survey) << SCORE_BITS | score
    elif kind == RESOLVED:
        ms, contacts, fcr, multichannel = value
        value = (ms << RESOLUTION_BITS | min(contacts, CONTACT_MASK) << 2 | fcr << 1
                 | multichannel)
    return int(value or 0) << KIND_BITS | SAMPLE_CODES[kind]  # int: a reopening is True


def sample_of(code: int) -> tuple[str, object]:
    """The (kind, value) of a sample code: the inverse of `sample_code`."""
    kind, value = SAMPLE_KINDS[code & KIND_MASK], code >> KIND_BITS
    if kind == SURVEY:
        return kind, (SURVEY_KINDS[value >> SCORE_BITS], value & SCORE_MASK)
    if kind == RESOLVED:
        return kind, Resolution(value >> RESOLUTION_BITS, value >> 2 & CONTACT_MASK,
                                bool(value & 2), bool(value & 1))
    if kind == OPENED:
        return kind, bool(value)
    return kind, None if kind in (ENTERED, REPEAT, DROPPED) else value


def _contribution(service_level_ms: int, short_abandon_ms: int) -> Callable:
    """The function adding a sample's share to a window's sums, for one queue's thresholds."""
    entered, answered, abandoned, ended, talk_transferred, wait_transferred, hold_ended = (
        SAMPLE_CODES[kind] for kind in (ENTERED, ANSWERED, ABANDONED, ENDED, TALK_TRANSFERRED,
                                        WAIT_TRANSFERRED, HOLD_ENDED))
    csat, nps = SURVEY_KINDS.index("csat"), SURVEY_KINDS.index("nps")
    last_contact_kind = SAMPLE_CODES[SURVEY]

    def contribute(code: int, sums: list, sign: int) -> None:
        kind, value = code & KIND_MASK, code >> KIND_BITS
        if kind > last_contact_kind:  # the case kinds, appended after the survey
            _contribute_case(kind, value, sums, sign)
        elif kind == entered:
            sums[OFFERED] += sign
        elif kind == answered:
            sums[ANSWERS] += sign
            sums[ANSWER_WAIT] += sign * value
            if value <= service_level_ms:
                sums[ANSWERS_IN_SL] += sign
        elif kind == abandoned:
            sums[ABANDONS] += sign
            sums[ABANDON_WAIT] += sign * value
            if value < short_abandon_ms:
                sums[SHORT_ABANDONS] += sign
            if value <= service_level_ms:
                sums[ABANDONS_IN_SL] += sign
        elif kind == ended:
            sums[HANDLES] += sign
            sums[HANDLE_TIME] += sign * value
        elif kind == talk_transferred:
            sums[TRANSFERS] += sign
            sums[HANDLES] += sign
            sums[HANDLE_TIME] += sign * value
        elif kind == wait_transferred:
            sums[TRANSFERS] += sign
        elif kind == hold_ended:
            sums[HOLDS] += sign
            sums[HOLD_TIME] += sign * value
        else:  # a survey
            survey, score = value >> SCORE_BITS, value & SCORE_MASK
            if survey == csat:
                sums[CSAT] += sign
                if score >= 4:
                    sums[CSAT_GOOD] += sign
            elif survey == nps:
                sums[NPS] += sign
                if score >= 9:
                    sums[NPS_PROMOTERS] += sign
                elif score <= 6:
                    sums[NPS_DETRACTORS] += sign
            else:
                sums[CES] += sign
                sums[CES_TOTAL] += sign * score

    return contribute


_CASE_OPENED, _CASE_REPEAT, _CASE_RESOLVED = (SAMPLE_CODES[kind]
                                             for kind in (OPENED, REPEAT, RESOLVED))


def _contribute_case(kind: int, value: int, sums: list, sign: int) -> None:
    if kind == _CASE_OPENED:
        sums[OPENED_CASES] += sign
        sums[REOPENED_CASES] += sign * value
    elif kind == _CASE_REPEAT:
        sums[REPEATS] += sign
    elif kind == _CASE_RESOLVED:
        sums[RESOLVED_CASES] += sign
        sums[RESOLUTION_TIME] += sign * (value >> RESOLUTION_BITS)
        sums[CASE_CONTACTS] += sign * (value >> 2 & CONTACT_MASK)
        sums[FCR_CASES] += sign * (value >> 1 & 1)
        sums[MULTICHANNEL_CASES] += sign * (value & 1)
    else:  # DROPPED
        sums[DROPPED_CASES] += sign


def distributions(windows: SlidingWindows, index: int) -> tuple[list[int], list[int], list[int]]:
    """The samples (ms) of window number `index` behind the three `_avg` means that have
    quantiles: answered waits, abandoned waits (short ones included), handle times (segments
    ended or closed by a transfer)."""
    answered, abandoned, ended, talk_transferred = (
        SAMPLE_CODES[kind] for kind in (ANSWERED, ABANDONED, ENDED, TALK_TRANSFERRED))
    answer_waits: list[int] = []
    abandon_waits: list[int] = []
    handles: list[int] = []
    for code in windows.codes_in(index):
        kind = code & KIND_MASK
        if kind == answered:
            answer_waits.append(code >> KIND_BITS)
        elif kind == abandoned:
            abandon_waits.append(code >> KIND_BITS)
        elif kind in (ended, talk_transferred):
            handles.append(code >> KIND_BITS)
    return answer_waits, abandon_waits, handles


@dataclass
class QueueStats:
    """One (queue, channel): current contacts and the windows of closed facts."""

    windows: SlidingWindows
    waiting: dict[str, int] = field(default_factory=dict)  # contact -> entry ts
    talking: dict[str, int | None] = field(default_factory=dict)  # contact -> hold start
    open_cases: int = 0  # `ccmon_open_cases`: the sum of the OPEN_CASES deltas applied

    def on_hold(self) -> int:
        return sum(1 for since in self.talking.values() if since is not None)

    def oldest_wait_ms(self, now: int) -> int:
        return max(0, now - min(self.waiting.values())) if self.waiting else 0


@dataclass(frozen=True)
class Thresholds:
    service_level_ms: int = 20_000
    service_level_by_queue: dict[str, int] = field(default_factory=dict)
    short_abandon_ms: int = 5_000
    service_level_target: float = 0.8  # S of the Erlang C figures

    def service_level(self, queue: str) -> int:
        return self.service_level_by_queue.get(queue, self.service_level_ms)


class Board:
    def __init__(self, windows: tuple[tuple[str, int], ...], thresholds: Thresholds,
                 timezone: str = "UTC") -> None:
        self.window_labels = tuple(label for label, _ in windows)
        self.window_widths = tuple(width for _, width in windows)
        self.window_edges = lower_edges(self.window_widths, timezone)  # shared by every series
        self.thresholds = thresholds
        self.queues: dict[tuple[str, str], QueueStats] = {}
        self.timelines: dict[str, Timelines] = {}  # queue -> its agents' states over time
        # queue -> agent -> (ts, state) of its latest STAFF fact: the Erlang C staffing N
        self.staff: dict[str, dict[str, list]] = {}
        self.reps = Reps()  # agent -> its samples (segments, holds, csat): the agents view
        self.marks: dict[str, dict[str, int]] = {}  # live/agents/rep unit -> source -> position
        # queue -> the marks of its agents unit as logged before units per agent: an agent's
        # first unit starts from them (a fact they cover was applied already).
        self.queue_marks: dict[str, dict[str, int]] = {}
        # A minute's marks are an array in its block, indexed by the number of the source.
        self.sources: dict[str, int] = {}
        self.source_names: list[str] = []
        self.dirty: set[str] = set()
        self.now: int | None = None
        self.horizon: int | None = None  # every ts at or before it is out of every window
        self.latest_ts = 0  # largest fact or clock ts applied: the event clock, as seen here

    # -- units -------------------------------------------------------------------------------
    @staticmethod
    def live_unit(queue: str, channel: str) -> str:
        return f"L{SEP}{queue}{SEP}{channel}"

    @staticmethod
    def agents_unit(queue: str, agent: str) -> str:
        # One agent's timeline in one queue. Read back with split(SEP, 2): an agent id may
        # hold anything. Its marks stay when the timeline is pruned away (few agents, small).
        return f"A{SEP}{queue}{SEP}{agent}"

    @staticmethod
    def staff_unit(queue: str) -> str:
        return f"N{SEP}{queue}"

    @staticmethod
    def rep_unit(agent: str) -> str:
        return f"R{SEP}{agent}"  # read back as unit[2:]: an agent id may hold anything

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

    def _fresh_sample(self, block: Block, source: str, position: int) -> bool:
        """`_fresh` for a minute's samples unit, whose marks are its block's."""
        number = self.sources.get(source)
        if number is None:
            number = self.sources[source] = len(self.source_names)
            self.source_names.append(source)
        marks = block.marks
        if number >= len(marks):
            marks.extend([-1] * (number + 1 - len(marks)))
        elif marks[number] >= position:
            return False
        marks[number] = position
        return True

    def stats(self, queue: str, channel: str) -> QueueStats:
        stats = self.queues.get((queue, channel))
        if stats is None:
            contribute = _contribution(self.thresholds.service_level(queue),
                                       self.thresholds.short_abandon_ms)
            stats = QueueStats(SlidingWindows(self.window_edges, SUMS, contribute))
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
        if kind == REP:
            horizon = self.horizon
            if ((horizon is None or ts > horizon)
                    and self._fresh(self.rep_unit(contact), source, position)):
                self.reps.add(contact, ts, value)
            return
        if kind == STAFF:
            if self._fresh(self.staff_unit(queue), source, position):
                roster = self.staff.setdefault(queue, {})
                known = roster.get(contact)
                if known is None or ts >= known[0]:  # the latest by ts; ties: the later
                    roster[contact] = [ts, value]
            return
        if kind == AGENT:
            unit = self.agents_unit(queue, contact)
            if unit not in self.marks and queue in self.queue_marks:
                self.marks[unit] = dict(self.queue_marks[queue])
            if self._fresh(unit, source, position):
                timelines = self.timelines.get(queue)
                if timelines is None:
                    timelines = self.timelines[queue] = Timelines()
                timelines.record(contact, ts, value)
            return
        stats = self.stats(queue, channel)
        if kind == OPEN_CASES:  # a live gauge: whatever its ts
            if self._fresh(self.live_unit(queue, channel), source, position):
                stats.open_cases += value
            return
        if kind in LIVE_KINDS and self._fresh(self.live_unit(queue, channel), source, position):
            self._update_live(stats, kind, ts, contact)
        windows = stats.windows
        if kind in SAMPLE_CODES and windows.reaches(ts):
            block = windows.block(ts)
            if self._fresh_sample(block, source, position):
                windows.add(block, ts, sample_code(kind, value))
                self.dirty.add(self.samples_unit(queue, channel, ts))

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
        previous, self.now = self.now, now
        self.horizon = horizon = min(edge(now) for edge in self.window_edges)
        if previous is None or previous // MINUTE_MS != now // MINUTE_MS:
            for agent in self.reps.prune(horizon):
                unit = self.rep_unit(agent)
                self.dirty.add(unit)
                if agent not in self.reps.samples:  # its unit goes, marks with it
                    self.marks.pop(unit, None)
            for queue, timelines in self.timelines.items():
                for agent in timelines.prune(horizon):
                    self.dirty.add(self.agents_unit(queue, agent))
            for queue, roster in self.staff.items():  # agents gone from the queue for long
                gone = [agent for agent, (ts, state) in roster.items()
                        if state is None and ts <= horizon]
                for agent in gone:
                    del roster[agent]
                if gone:
                    self.dirty.add(self.staff_unit(queue))
        for (queue, channel), stats in self.queues.items():
            stats.windows.advance(now)
            # A minute's unit goes with its block, once the whole minute is out of every
            # window: a replayed fact of its later seconds must still find the marks.
            for minute in stats.windows.expire():
                self.dirty.add(self.samples_unit(queue, channel, minute * MINUTE_MS))

    # -- persistence -------------------------------------------------------------------------
    def unit_state(self, unit: str) -> dict | None:
        """The JSON-able state of a unit, or None if the unit is gone."""
        if unit == CLOCK_UNIT:
            return {"latest": self.latest_ts}
        if unit.startswith("R" + SEP):
            samples = self.reps.to_json(unit[2:])
            return None if samples is None else {"marks": self.marks[unit], **samples}
        if unit.startswith("A" + SEP):
            _, queue, *agent = unit.split(SEP, 2)
            marks = self.marks.get(unit)
            if not agent or marks is None:
                return None  # a queue's unit of before units per agent: replaced by them
            timelines = self.timelines.get(queue)
            return {"marks": marks,
                    "changes": timelines.agent_json(agent[0]) if timelines is not None else []}
        kind, *names = unit.split(SEP)
        if kind == "S":
            return self._minute_state(names[0], names[1], int(names[2]))
        marks = self.marks.get(unit)
        if marks is None:
            return None
        if kind == "N":
            return {"marks": marks, "staff": self.staff.get(names[0], {})}
        stats = self.queues.get((names[0], names[1]))
        return {"marks": marks, "waiting": stats.waiting, "talking": stats.talking,
                "open_cases": stats.open_cases}

    def _minute_state(self, queue: str, channel: str, minute: int) -> dict | None:
        """A minute of samples: its marks, and its samples as two columns, ts in ms from the
        start of the minute."""
        stats = self.queues.get((queue, channel))
        block = stats.windows.blocks.get(minute) if stats is not None else None
        if block is None:
            return None
        start = minute * MINUTE_MS
        names = self.source_names
        return {"marks": {names[number]: position for number, position in enumerate(block.marks)
                          if position >= 0},
                "times": [ts - start for ts in block.times], "codes": block.codes.tolist()}

    def take_dirty(self) -> dict[str, dict | None]:
        out = {unit: self.unit_state(unit) for unit in self.dirty}
        self.dirty.clear()
        return out

    def restore(self, unit: str, state: dict) -> None:
        if unit == CLOCK_UNIT:
            self.latest_ts = max(self.latest_ts, state["latest"])
            return
        if unit.startswith("R" + SEP):
            self.marks[unit] = dict(state["marks"])
            self.reps.restore(unit[2:], state)
            return
        if unit.startswith("A" + SEP):
            self._restore_agents(unit, state)
            return
        kind, *names = unit.split(SEP)
        if kind == "S":
            self._restore_minute(self.stats(names[0], names[1]), int(names[2]), state)
            return
        self.marks[unit] = dict(state["marks"])
        if kind == "N":
            self.staff[names[0]] = {agent: list(change) for agent, change
                                    in state["staff"].items()}
            return
        stats = self.stats(names[0], names[1])
        stats.waiting.update(state["waiting"])
        stats.talking.update(state["talking"])
        stats.open_cases = state.get("open_cases", 0)  # logged before cases: none

    def _restore_agents(self, unit: str, state: dict) -> None:
        _, queue, *agent = unit.split(SEP, 2)
        timelines = self.timelines.setdefault(queue, Timelines())
        if agent:
            self.marks[unit] = dict(state["marks"])
            timelines.restore_agent(agent[0], state["changes"])
            return
        # A queue's unit of before units per agent: every agent's timeline ("timelines"), or
        # before 1.1 only the latest states ("agents"), as if held since ever. Each agent gets
        # its unit now, the queue's unit goes, and its marks seed any agent's first unit.
        if "timelines" in state:
            changes = state["timelines"]
        else:
            changes = {name: [[0, agent_state]] for name, agent_state in state["agents"].items()}
        self.queue_marks[queue] = dict(state["marks"])
        self.dirty.add(unit)
        for name, agent_changes in changes.items():
            agent_unit = self.agents_unit(queue, name)
            if agent_unit in self.marks:
                continue  # its own unit, logged after this one, was restored already
            self.marks[agent_unit] = dict(state["marks"])
            timelines.restore_agent(name, agent_changes)
            self.dirty.add(agent_unit)

    def _restore_minute(self, stats: QueueStats, minute: int, state: dict) -> None:
        start = minute * MINUTE_MS
        if "samples" in state:  # logged before samples were columns: [[ts, kind, value], ...]
            samples = [(ts, sample_code(kind, tuple(value) if kind == SURVEY else value))
                       for ts, kind, value in state["samples"]]
        else:
            samples = [(start + ts, code) for ts, code in zip(state["times"], state["codes"],
                                                              strict=True)]
        windows = stats.windows
        block = windows.block(start)
        for ts, code in samples:
            windows.add(block, ts, code)
            self.latest_ts = max(self.latest_ts, ts)
        for source, position in state["marks"].items():
            self._fresh_sample(block, source, position)

    # -- reading -----------------------------------------------------------------------------
    def staffed(self, queue: str) -> int:
        """N of the Erlang C figures: the queue's agents now available, busy or in acw."""
        return sum(state in STAFFED for _, state in self.staff.get(queue, {}).values())

    def agent_seconds(self, queue: str, lows: list[int], now: int) -> list[dict[str, float]]:
        """Agent-seconds per state in each `(low, now]` of the agents listing `queue`."""
        timelines = self.timelines.get(queue)
        if timelines is None:
            return [dict.fromkeys(AGENT_STATES, 0.0) for _ in lows]
        return timelines.seconds_in(lows, now)

    def agent_counts(self) -> Iterator[tuple[str, str, int]]:
        """(queue, state, agents) for every queue and all five states."""
        for queue, timelines in self.timelines.items():
            counts = dict.fromkeys(AGENT_STATES, 0)
            for state in timelines.latest().values():
                counts[state] += 1
            for state in AGENT_STATES:
                yield queue, state, counts[state]
