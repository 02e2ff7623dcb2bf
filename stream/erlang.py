"""Erlang C staffing figures of the contract's "Workforce" section: pure float arithmetic.

Inputs: offered load A = λ·h in Erlangs (λ = offered contacts / W per second, h the mean
handle time in seconds), N agents, service-level threshold T (seconds), target S in (0, 1].

- Erlang B (blocking): B(0) = 1, B(k) = A·B(k-1) / (k + A·B(k-1)).
- Erlang C (waiting): C = N·B / (N - A·(1 - B)) when N > A; 1 when N ≤ A (every contact
  waits: the queue is unstable, or there is no agent at all).
- Forecast service level: 1 - C·e^(-(N - A)·T/h) when N > A; 0 when N ≤ A.
- Estimated wait: C·h / (N - A) when N > A; None when N ≤ A (the queue grows without bound).
- Agents required: the smallest N whose forecast is ≥ S.

Why the recursion: the textbook form (A^N/N!) / Σ A^k/k! overflows floats past N = 170
(171! > 1.8e308), and A^N sooner when A is in the hundreds. Each recursion step maps [0, 1]
into [0, 1] and shrinks the relative error carried from the step before (by the factor
k / (k + A·B) < 1), so B stays within a few ulps times N of the exact value for thousands
of agents, with no factorial and no overflow.

Edge cases (contract, "Precise points"): N = 0 is N ≤ A for every A ≥ 0, so its forecast is
0 and its wait absent, even when A = 0. h = 0 forces A = 0 (A = λ·h); with N ≥ 1 agents
the forecast is then 1 and the wait 0 (C(N, 0) = 0, and T/h is never evaluated). So
`agents_required` is 1 when A = 0: N = 0 gives forecast 0, N = 1 gives 1.
"""

from __future__ import annotations

import math


def offered_load(offered_contacts: int, window_seconds: float, handle_seconds: float) -> float:
    """A = λ·h in Erlangs, with λ = offered contacts / W (per second)."""
    if offered_contacts < 0 or not window_seconds > 0 or not handle_seconds >= 0:
        raise ValueError("need offered contacts ≥ 0, W > 0 and h ≥ 0")
    arrival_rate = offered_contacts / window_seconds
    return arrival_rate * handle_seconds


def _check(agents: int, load: float, handle_seconds: float = 1.0,
           threshold_seconds: float = 0.0) -> None:
    if agents < 0:
        raise ValueError(f"agents must be ≥ 0, got {agents}")
    if not (load >= 0 and math.isfinite(load)):
        raise ValueError(f"offered load must be finite and ≥ 0, got {load}")
    if not handle_seconds >= 0:
        raise ValueError(f"handle time must be ≥ 0, got {handle_seconds}")
    if handle_seconds == 0 and load != 0:
        raise ValueError("h = 0 means A = λ·h = 0")
    if not threshold_seconds >= 0:
        raise ValueError(f"service-level threshold must be ≥ 0, got {threshold_seconds}")


def _next_blocking(blocking: float, agents: int, load: float) -> float:
    """B(agents) from B(agents - 1)."""
    carried = load * blocking
    return carried / (agents + carried)


def erlang_b(agents: int, load: float) -> float:
    """Probability that a contact finds all `agents` busy in the loss system (Erlang B)."""
    _check(agents, load)
    blocking = 1.0
    for k in range(1, agents + 1):
        blocking = _next_blocking(blocking, k, load)
    return blocking


def _erlang_c_from_b(agents: int, load: float, blocking: float) -> float:
    if agents <= load:
        return 1.0
    # (N - A) + A·B rather than N - A·(1 - B): N - A is exact for nearby floats, so the
    # denominator keeps full relative precision when N is barely above A.
    return agents * blocking / ((agents - load) + load * blocking)


def erlang_c(agents: int, load: float) -> float:
    """Probability that a contact waits (Erlang C); 1 when N ≤ A (the queue never drains)."""
    return _erlang_c_from_b(agents, load, erlang_b(agents, load))


def _forecast(agents: int, load: float, handle_seconds: float, threshold_seconds: float,
              waiting: float) -> float:
    if agents <= load:
        return 0.0
    if handle_seconds == 0:  # then A = 0, so C = 0: nobody waits (and T/h is undefined)
        return 1.0
    spare = agents - load
    return 1.0 - waiting * math.exp(-spare * threshold_seconds / handle_seconds)


def forecast_service_level(agents: int, load: float, handle_seconds: float,
                           threshold_seconds: float) -> float:
    """Share of contacts answered within T: 1 - C·e^(-(N - A)·T/h); 0 when N ≤ A."""
    _check(agents, load, handle_seconds, threshold_seconds)
    return _forecast(agents, load, handle_seconds, threshold_seconds, erlang_c(agents, load))


def estimated_wait(agents: int, load: float, handle_seconds: float) -> float | None:
    """Mean wait in seconds, C·h/(N - A); None when N ≤ A (the queue grows without bound)."""
    _check(agents, load, handle_seconds)
    if agents <= load:
        return None
    if handle_seconds == 0:
        return 0.0
    return erlang_c(agents, load) * handle_seconds / (agents - load)


def agents_required(load: float, handle_seconds: float, threshold_seconds: float,
                    target: float) -> int:
    """The smallest N whose forecast service level is ≥ target (1 when A = 0).

    Every N ≤ A forecasts 0 < target, so the search starts at floor(A) + 1 and walks up,
    advancing B by one recursion step per candidate: O(A + answer) steps in all. It ends:
    the forecast tends to 1 and reaches it in floats once C·e^(…) falls below half an ulp
    (B underflows to 0 at the latest), so even target = 1 is met.
    """
    _check(0, load, handle_seconds, threshold_seconds)
    if not 0 < target <= 1:
        raise ValueError(f"service-level target must be in (0, 1], got {target}")
    agents = math.floor(load) + 1
    blocking = erlang_b(agents, load)
    while True:
        waiting = _erlang_c_from_b(agents, load, blocking)
        if _forecast(agents, load, handle_seconds, threshold_seconds, waiting) >= target:
            return agents
        agents += 1
        blocking = _next_blocking(blocking, agents, load)
