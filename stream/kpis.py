"""The contract's queue metrics (metrics.md), computed from a `Board` at the monitor clock `now`.

`queue_metrics` yields `(name, labels, value)`; ratios and means with no samples in the
window yield nothing (absent, never 0), counts always yield a value.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from fractions import Fraction
from typing import NamedTuple

from . import erlang
from . import queues as q
from .queues import Board


class MetricSpec(NamedTuple):
    name: str
    labels: tuple[str, ...]
    help: str


QUEUE_LABELS = ("queue", "channel")
WINDOW_LABELS = ("queue", "channel", "window")

STATE_GAUGES = (
    MetricSpec("ccmon_queue_waiting_contacts", QUEUE_LABELS, "Contacts waiting in the queue"),
    MetricSpec("ccmon_queue_oldest_wait_seconds", QUEUE_LABELS,
               "Wait so far of the longest-waiting contact; 0 when none waits"),
    MetricSpec("ccmon_contacts_in_conversation", QUEUE_LABELS,
               "Contacts in an open conversation segment of this queue"),
    MetricSpec("ccmon_contacts_on_hold", QUEUE_LABELS,
               "Contacts in conversation in this queue that are on hold"),
)
OPEN_CASES = MetricSpec("ccmon_open_cases", QUEUE_LABELS,
                        "Cases open now whose latest contact entered this queue and channel")
AGENTS = MetricSpec("ccmon_agents", ("queue", "state"),
                    "Agents whose latest state is `state` and who serve this queue")


def _count(index: int):
    return lambda sums: sums[index]


def _mean(total: int, count: int, scale: float = 1.0):
    return lambda sums: sums[total] / sums[count] * scale if sums[count] else None


def _abandon_ratio(sums: list) -> float | None:
    counted_abandons = sums[q.ABANDONS] - sums[q.SHORT_ABANDONS]
    offered = sums[q.ANSWERS] + counted_abandons
    return counted_abandons / offered if offered else None


def _service_level(sums: list) -> float | None:
    offered = sums[q.ANSWERS] + sums[q.ABANDONS] - sums[q.SHORT_ABANDONS]
    return sums[q.ANSWERS_IN_SL] / offered if offered else None


def _nps(sums: list) -> float | None:
    if not sums[q.NPS]:
        return None
    return 100.0 * (sums[q.NPS_PROMOTERS] - sums[q.NPS_DETRACTORS]) / sums[q.NPS]


# Cases (metrics.md 1.1): a customer's journey across contacts and channels.
CASE_WINDOWED = (
    (MetricSpec("ccmon_opened_cases", WINDOW_LABELS, "Cases opened (reopened ones included)"),
     _count(q.OPENED_CASES)),
    (MetricSpec("ccmon_repeat_contacts", WINDOW_LABELS, "Contacts that joined an open case"),
     _count(q.REPEATS)),
    (MetricSpec("ccmon_reopened_cases", WINDOW_LABELS,
                "Cases opened within the case timeout R of the customer's previous resolution"),
     _count(q.REOPENED_CASES)),
    (MetricSpec("ccmon_resolved_cases", WINDOW_LABELS, "Cases resolved"),
     _count(q.RESOLVED_CASES)),
    (MetricSpec("ccmon_dropped_cases", WINDOW_LABELS,
                "Cases dropped: no contact for R after the latest left, unresolved"),
     _count(q.DROPPED_CASES)),
    (MetricSpec("ccmon_first_contact_resolution_ratio", WINDOW_LABELS,
                "Of the cases resolved, those resolved by their first contact (FCR)"),
     _mean(q.FCR_CASES, q.RESOLVED_CASES)),
    (MetricSpec("ccmon_case_resolution_seconds_avg", WINDOW_LABELS,
                "Mean time from a resolved case's first entry to its resolving ended"),
     _mean(q.RESOLUTION_TIME, q.RESOLVED_CASES, 0.001)),
    (MetricSpec("ccmon_case_contacts_avg", WINDOW_LABELS,
                "Mean number of contacts of the cases resolved"),
     _mean(q.CASE_CONTACTS, q.RESOLVED_CASES)),
    (MetricSpec("ccmon_multichannel_case_ratio", WINDOW_LABELS,
                "Of the cases resolved, those whose contacts used more than one channel"),
     _mean(q.MULTICHANNEL_CASES, q.RESOLVED_CASES)),
)

# Each windowed metric and how it derives from a window's sums (None: absent).
WINDOWED = (
    (MetricSpec("ccmon_offered_contacts", WINDOW_LABELS, "Entries into the queue (queued and "
                "transferred in)"), _count(q.OFFERED)),
    (MetricSpec("ccmon_answered_contacts", WINDOW_LABELS, "Answers"), _count(q.ANSWERS)),
    (MetricSpec("ccmon_answered_within_threshold_contacts", WINDOW_LABELS,
                "Answers with wait <= the queue's service-level threshold T"),
     _count(q.ANSWERS_IN_SL)),
    (MetricSpec("ccmon_abandoned_within_threshold_contacts", WINDOW_LABELS,
                "Abandons with wait <= T, short ones included"), _count(q.ABANDONS_IN_SL)),
    (MetricSpec("ccmon_abandoned_contacts", WINDOW_LABELS, "Abandons, short ones included"),
     _count(q.ABANDONS)),
    (MetricSpec("ccmon_short_abandoned_contacts", WINDOW_LABELS,
                "Abandons whose wait was under the short-abandon threshold"),
     _count(q.SHORT_ABANDONS)),
    (MetricSpec("ccmon_transferred_contacts", WINDOW_LABELS,
                "Transfers out of the queue, while waiting or in conversation"),
     _count(q.TRANSFERS)),
    (MetricSpec("ccmon_abandon_ratio", WINDOW_LABELS,
                "(abandoned - short) / (answered + abandoned - short)"), _abandon_ratio),
    (MetricSpec("ccmon_service_level_ratio", WINDOW_LABELS,
                "Answered within the service-level threshold / (answered + abandoned - short)"),
     _service_level),
    (MetricSpec("ccmon_answer_wait_seconds_avg", WINDOW_LABELS,
                "Mean wait of the answered (ASA; first response time for chat and social)"),
     _mean(q.ANSWER_WAIT, q.ANSWERS, 0.001)),
    (MetricSpec("ccmon_abandon_wait_seconds_avg", WINDOW_LABELS,
                "Mean wait of the abandoned, short ones included"),
     _mean(q.ABANDON_WAIT, q.ABANDONS, 0.001)),
    (MetricSpec("ccmon_hold_seconds_avg", WINDOW_LABELS, "Mean length of the holds that closed"),
     _mean(q.HOLD_TIME, q.HOLDS, 0.001)),
    (MetricSpec("ccmon_handle_seconds_avg", WINDOW_LABELS,
                "Mean handle time of the conversation segments that closed (plus wrap-up)"),
     _mean(q.HANDLE_TIME, q.HANDLES, 0.001)),
    (MetricSpec("ccmon_csat_ratio", WINDOW_LABELS, "Share of csat scores of 4 or 5"),
     _mean(q.CSAT_GOOD, q.CSAT)),
    (MetricSpec("ccmon_nps_score", WINDOW_LABELS,
                "100 x (share of nps 9-10 - share of nps 0-6)"), _nps),
    (MetricSpec("ccmon_ces_avg", WINDOW_LABELS, "Mean ces score"), _mean(q.CES_TOTAL, q.CES)),
    *CASE_WINDOWED,
)

# Window sample distributions (metrics.md 1.1), in the order of `queues.distributions`.
QUANTILE_LABELS = (*WINDOW_LABELS, "quantile")
DISTRIBUTIONS = (
    MetricSpec("ccmon_answer_wait_seconds", QUANTILE_LABELS,
               "Quantiles (nearest rank) of the waits of the answered"),
    MetricSpec("ccmon_abandon_wait_seconds", QUANTILE_LABELS,
               "Quantiles (nearest rank) of the waits of the abandoned, short ones included"),
    MetricSpec("ccmon_handle_seconds", QUANTILE_LABELS,
               "Quantiles (nearest rank) of the handle times of the closed segments"),
)
QUANTILES = ("0.5", "0.9", "0.95")  # label values, as the contract writes them


def nearest_rank(ordered: list[int], quantile: str) -> int:
    """The smallest sample x with at least ceil(q * n) samples <= x; `ordered` sorted, not
    empty. The rank in exact decimal: 0.95 * 20 is 19, not 19.000000000000004."""
    rank = -(-Fraction(quantile) * len(ordered) // 1)  # ceil
    return ordered[max(rank, 1) - 1]


# Erlang C at the current staffing (metrics.md 1.1, workforce), per window.
WORKFORCE = (
    MetricSpec("ccmon_offered_load_erlangs", WINDOW_LABELS,
               "A = offered contacts / W x mean handle time"),
    MetricSpec("ccmon_forecast_service_level_ratio", WINDOW_LABELS,
               "Erlang C service level within T at the agents staffed now"),
    MetricSpec("ccmon_estimated_wait_seconds", WINDOW_LABELS,
               "Erlang C mean wait at the agents staffed now; absent when N <= A"),
    MetricSpec("ccmon_agents_required", WINDOW_LABELS,
               "Smallest N whose forecast service level reaches the target S"),
)


def _workforce(sums: list, window_ms: int, agents: int, threshold_ms: int, target: float
               ) -> Iterator[tuple[str, float]]:
    """The four figures of one window; none when h is absent or nothing was offered."""
    if not sums[q.HANDLES] or not sums[q.OFFERED] or window_ms <= 0:
        return
    handle_s = sums[q.HANDLE_TIME] / sums[q.HANDLES] / 1000
    threshold_s = threshold_ms / 1000
    load = erlang.offered_load(sums[q.OFFERED], window_ms / 1000, handle_s)
    offered_load, forecast, wait, required = (spec.name for spec in WORKFORCE)
    yield offered_load, load
    yield forecast, erlang.forecast_service_level(agents, load, handle_s, threshold_s)
    estimated = erlang.estimated_wait(agents, load, handle_s)
    if estimated is not None:
        yield wait, estimated
    yield required, erlang.agents_required(load, handle_s, threshold_s, target)


# Agents' time (metrics.md 1.1), per queue and window, no channel.
AGENT_STATE_SECONDS = MetricSpec(
    "ccmon_agent_state_seconds", ("queue", "window", "state"),
    "Agent-seconds in `state` within the window of the agents listing the queue")
OCCUPANCY = MetricSpec("ccmon_occupancy_ratio", ("queue", "window"),
                       "(busy + acw) / (available + busy + acw) of those agent-seconds")

CASE_METRICS = frozenset((OPEN_CASES.name, *(spec.name for spec, _ in CASE_WINDOWED)))

QUEUE_METRICS = (*STATE_GAUGES, OPEN_CASES, AGENTS, *(spec for spec, _ in WINDOWED), *DISTRIBUTIONS,
                 *WORKFORCE, AGENT_STATE_SECONDS, OCCUPANCY)


def _agent_time(board: Board, now: int, names: Collection[str] | None
                ) -> Iterator[tuple[str, tuple[str, ...], float]]:
    seconds_wanted = names is None or AGENT_STATE_SECONDS.name in names
    occupancy_wanted = names is None or OCCUPANCY.name in names
    if not (seconds_wanted or occupancy_wanted):
        return
    lows = [edge(now) for edge in board.window_edges]
    for queue in board.timelines:
        for window, seconds in zip(board.window_labels, board.agent_seconds(queue, lows, now),
                                   strict=True):
            if seconds_wanted:
                for state, value in seconds.items():
                    yield AGENT_STATE_SECONDS.name, (queue, window, state), value
            staffed = seconds["available"] + seconds["busy"] + seconds["acw"]
            if occupancy_wanted and staffed:
                yield OCCUPANCY.name, (queue, window), (seconds["busy"] + seconds["acw"]) / staffed


def _quantiles(stats: q.QueueStats, window_labels: tuple[str, ...], labels: tuple[str, str],
               wanted: list[bool]) -> Iterator[tuple[str, tuple[str, ...], float]]:
    """Computed at read time from the window's samples: no state of their own."""
    for index, window in enumerate(window_labels):
        for spec, wanted_here, samples in zip(
                DISTRIBUTIONS, wanted, q.distributions(stats.windows, index), strict=True):
            if not wanted_here or not samples:
                continue  # absent when the window has no sample
            samples.sort()
            for quantile in QUANTILES:
                yield (spec.name, (*labels, window, quantile),
                       nearest_rank(samples, quantile) / 1000)


def queue_metrics(board: Board, now: int, names: Collection[str] | None = None
                  ) -> Iterator[tuple[str, tuple[str, ...], float]]:
    """Every queue series of the board at `now` (Unix ms), or only those of the metrics
    `names`; advances the board's clock."""
    board.advance(now)
    now = board.now
    gauges = [spec.name for spec in STATE_GAUGES]
    waiting, oldest, talking, on_hold, open_cases = (
        name if names is None or name in names else None for name in (*gauges, OPEN_CASES.name))
    windowed = [(spec.name, derive) for spec, derive in WINDOWED
                if names is None or spec.name in names]
    distributed = [names is None or spec.name in names for spec in DISTRIBUTIONS]
    staffing = names is None or any(spec.name in names for spec in WORKFORCE)
    thresholds = board.thresholds
    for (queue, channel), stats in board.queues.items():
        labels = (queue, channel)
        if waiting:
            yield waiting, labels, len(stats.waiting)
        if oldest:
            yield oldest, labels, stats.oldest_wait_ms(now) / 1000
        if talking:
            yield talking, labels, len(stats.talking)
        if on_hold:
            yield on_hold, labels, stats.on_hold()
        if open_cases:
            yield open_cases, labels, stats.open_cases
        windows = stats.windows
        agents = board.staffed(queue) if staffing else 0
        for label, sums, low in zip(board.window_labels, windows.sums, windows.lows,
                                    strict=True):
            window_labels = (queue, channel, label)
            for name, derive in windowed:
                value = derive(sums)
                if value is not None:
                    yield name, window_labels, value
            if staffing:  # W is now - the window's lower edge: for `today`, since midnight
                for name, value in _workforce(sums, now - low, agents,
                                              thresholds.service_level(queue),
                                              thresholds.service_level_target):
                    if names is None or name in names:
                        yield name, window_labels, value
        if any(distributed):
            yield from _quantiles(stats, board.window_labels, labels, distributed)
    if names is None or AGENTS.name in names:
        for queue, state, count in board.agent_counts():
            yield AGENTS.name, (queue, state), count
    yield from _agent_time(board, now, names)
