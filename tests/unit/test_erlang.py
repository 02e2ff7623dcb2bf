"""stream/erlang.py against published values and an exact rational oracle.

The oracle evaluates the textbook sums (A^k/k! with math.factorial) in exact integers and
Fractions: independent of the Erlang B recursion the module uses. Published values are
checked both as printed (to their printed precision) and against the oracle.
"""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccmon.stream.erlang import (
    agents_required,
    erlang_b,
    erlang_c,
    estimated_wait,
    forecast_service_level,
    offered_load,
)


def _scaled_terms(agents: int, load: float) -> tuple[list[int], int]:
    """A^k/k! for k = 0..N, all multiplied by q^N·N! (A = p/q exactly) so they are integers."""
    exact = Fraction(load)
    p, q = exact.numerator, exact.denominator
    n_factorial = math.factorial(agents)
    terms = [p**k * q ** (agents - k) * (n_factorial // math.factorial(k))
             for k in range(agents + 1)]
    return terms, q


def exact_erlang_b(agents: int, load: float) -> Fraction:
    """(A^N/N!) / Σ_{k≤N} A^k/k!"""
    terms, _ = _scaled_terms(agents, load)
    return Fraction(terms[-1], sum(terms))


def exact_erlang_c(agents: int, load: float) -> Fraction:
    """Textbook Erlang C: X / (Σ_{k<N} A^k/k! + X) with X = (A^N/N!)·N/(N - A); N > A."""
    terms, _ = _scaled_terms(agents, load)
    queued = terms[-1] * Fraction(agents) / (agents - Fraction(load))
    return queued / (sum(terms[:-1]) + queued)


def relative_error(value: float, exact: Fraction) -> float:
    return float(abs(Fraction(value) - exact) / exact)


# -- Published values ----------------------------------------------------------------------

def test_erlang_b_published_values() -> None:
    # Erlang B tables: 10 circuits offered 5 Erlangs block 1.84 % of calls (0.018385 to six
    # places; 0.018384 where tables truncate instead of rounding).
    assert round(erlang_b(10, 5.0), 6) == 0.018385
    assert relative_error(erlang_b(10, 5.0), exact_erlang_b(10, 5.0)) < 1e-14
    # Wolfram Language documentation, ErlangB, "Applications": a pool of four modems offered
    # 2 Erlangs; the exact answer is (2^4/4!) / (1 + 2 + 2 + 4/3 + 2/3) = 2/21.
    assert relative_error(erlang_b(4, 2.0), Fraction(2, 21)) < 1e-15


# The standard Erlang B table (columns for a grade of service of 1 % and 2 %): the load in
# Erlangs that N circuits carry at that blocking, printed to two decimals.
ERLANG_B_TABLE = [
    (1, 0.01, 0.01), (1, 0.02, 0.02),
    (10, 0.01, 4.46), (10, 0.02, 5.08),
    (20, 0.01, 12.03), (20, 0.02, 13.18),
    (100, 0.01, 84.06), (100, 0.02, 87.97),
]


@pytest.mark.parametrize(("agents", "blocking", "printed_load"), ERLANG_B_TABLE)
def test_erlang_b_table(agents: int, blocking: float, printed_load: float) -> None:
    # The printed load is the true capacity rounded to two decimals: B is increasing in A,
    # so the target blocking lies between B at either end of the rounding interval.
    assert erlang_b(agents, printed_load - 0.005) <= blocking <= erlang_b(
        agents, printed_load + 0.005)


def test_call_centre_helper_worked_example() -> None:
    # Call Centre Helper, "Erlang C Formula - Made Simple With an Easy Worked Example":
    # 100 calls in 30 minutes, handle time 180 s, target 80 % answered in 20 s. Published:
    # A = 10 Erlangs; with 14 agents the probability of waiting is 17.4 % and the service
    # level 88.8 %; 14 agents are required (13 fall short). pyworkforce's tests
    # (pyworkforce/queuing/tests/test_erlang.py) assert the same 14, 0.174 and 0.888.
    load = offered_load(100, 30 * 60, 180.0)
    assert load == 10.0
    assert round(erlang_c(14, load), 3) == 0.174
    assert round(forecast_service_level(14, load, 180.0, 20.0), 3) == 0.888
    assert forecast_service_level(13, load, 180.0, 20.0) < 0.8
    assert agents_required(load, 180.0, 20.0, 0.8) == 14
    assert relative_error(erlang_c(14, load), exact_erlang_c(14, load)) < 1e-14


@pytest.mark.parametrize(("agents", "load"), [
    (14, 10.0), (11, 10.0), (55, 48.0), (2, 1.5), (120, 100.25), (300, 299.5),
])
def test_erlang_c_equals_the_textbook_formula(agents: int, load: float) -> None:
    c = erlang_c(agents, load)
    exact = exact_erlang_c(agents, load)
    assert relative_error(c, exact) < 1e-13
    h, t = 240.0, 15.0
    forecast = 1 - exact * Fraction(math.exp(-(agents - load) * t / h))
    assert forecast_service_level(agents, load, h, t) == pytest.approx(float(forecast),
                                                                       rel=1e-13)
    wait = exact * Fraction(h) / (agents - Fraction(load))
    assert relative_error(estimated_wait(agents, load, h), wait) < 1e-13


def test_offered_load_is_arrival_rate_times_handle_time() -> None:
    # 360 calls per half hour of 240 s each: λ = 0.2 per second, A = 48 Erlangs.
    assert offered_load(360, 1800.0, 240.0) == 48.0
    assert offered_load(0, 60.0, 240.0) == 0.0
    assert offered_load(7, 60.0, 0.0) == 0.0
    with pytest.raises(ValueError):
        offered_load(1, 0.0, 1.0)


# -- Large N: no overflow, exact to 1e-12 ---------------------------------------------------

@pytest.mark.parametrize("load", [950.0, 950.5, 999.25])
def test_thousand_agents_equal_the_exact_value(load: float) -> None:
    assert relative_error(erlang_b(1000, load), exact_erlang_b(1000, load)) < 1e-12
    assert relative_error(erlang_c(1000, load), exact_erlang_c(1000, load)) < 1e-12


def test_thousands_of_agents_do_not_overflow() -> None:
    for agents, load in [(5000, 4900.0), (3000, 2999.999)]:
        assert 0 < erlang_b(agents, load) < 1
        assert 0 < erlang_c(agents, load) < 1
        assert 0 < forecast_service_level(agents, load, 300.0, 20.0) < 1
    # Far more agents than load: B underflows to exactly 0 (its true value is below 1e-300),
    # which reads as "nobody waits", not as a NaN or a division by zero.
    assert erlang_b(20000, 300.0) == erlang_c(20000, 300.0) == 0.0
    assert forecast_service_level(20000, 300.0, 300.0, 20.0) == 1.0
    assert estimated_wait(20000, 300.0, 300.0) == 0.0


# -- Edge cases of the contract's precise points ---------------------------------------------

def test_erlang_b_and_c_at_the_ends() -> None:
    assert erlang_b(0, 0.0) == erlang_b(0, 3.5) == 1.0  # no circuit: every call blocked
    assert erlang_b(3, 0.0) == 0.0
    assert erlang_c(3, 0.0) == 0.0
    for agents, load in [(0, 0.0), (0, 5.0), (5, 5.0), (5, 7.2), (3, 3.5)]:
        assert erlang_c(agents, load) == 1.0


@pytest.mark.parametrize(("agents", "load"), [(0, 0.0), (0, 4.0), (4, 4.0), (4, 9.5)])
def test_no_spare_agent_forecasts_zero_and_no_wait(agents: int, load: float) -> None:
    handle = 0.0 if load == 0 else 200.0
    assert forecast_service_level(agents, load, handle, 20.0) == 0.0
    assert estimated_wait(agents, load, handle) is None


def test_zero_handle_time_means_zero_load_forecast_one_wait_zero() -> None:
    load = offered_load(12, 60.0, 0.0)
    for agents in (1, 2, 50):
        assert forecast_service_level(agents, load, 0.0, 20.0) == 1.0
        assert estimated_wait(agents, load, 0.0) == 0.0
    assert forecast_service_level(0, load, 0.0, 20.0) == 0.0  # N ≤ A, N = 0 included
    assert agents_required(load, 0.0, 20.0, 0.8) == 1
    with pytest.raises(ValueError):
        forecast_service_level(3, 1.0, 0.0, 20.0)  # h = 0 with A > 0 cannot happen


def test_zero_load_needs_one_agent() -> None:
    assert forecast_service_level(1, 0.0, 180.0, 20.0) == 1.0
    assert estimated_wait(1, 0.0, 180.0) == 0.0
    assert agents_required(0.0, 180.0, 20.0, 1.0) == 1


def test_zero_threshold_forecasts_the_share_that_does_not_wait() -> None:
    assert forecast_service_level(14, 10.0, 180.0, 0.0) == 1 - erlang_c(14, 10.0)


def test_invalid_inputs_are_refused() -> None:
    for call in (lambda: erlang_b(-1, 1.0), lambda: erlang_c(2, -0.5),
                 lambda: erlang_b(2, math.nan), lambda: erlang_b(2, math.inf),
                 lambda: estimated_wait(2, 1.0, -1.0),
                 lambda: forecast_service_level(2, 1.0, 10.0, -1.0),
                 lambda: agents_required(1.0, 10.0, 20.0, 0.0),
                 lambda: agents_required(1.0, 10.0, 20.0, 1.5)):
        with pytest.raises(ValueError):
            call()


# -- Agents required --------------------------------------------------------------------------

@pytest.mark.parametrize(("load", "handle", "threshold", "target"), [
    (10.0, 180.0, 20.0, 0.8), (48.0, 240.0, 15.0, 0.8), (5.0, 300.0, 20.0, 0.9),
    (0.3, 60.0, 10.0, 0.5), (500.0, 300.0, 20.0, 0.8), (500.0, 300.0, 0.0, 0.95),
    (3.0, 120.0, 0.0, 1.0), (500.0, 300.0, 20.0, 1.0),
])
def test_agents_required_is_the_smallest_that_reaches_the_target(
        load: float, handle: float, threshold: float, target: float) -> None:
    needed = agents_required(load, handle, threshold, target)
    assert needed > load
    assert forecast_service_level(needed, load, handle, threshold) >= target
    assert forecast_service_level(needed - 1, load, handle, threshold) < target


def test_agents_required_when_the_load_is_a_whole_number() -> None:
    # N = A forecasts 0, so the answer is above A even for a tiny target.
    assert agents_required(5.0, 180.0, 20.0, 1e-9) == 6


# -- Properties ---------------------------------------------------------------------------------

agents_counts = st.integers(min_value=0, max_value=400)
loads = st.floats(min_value=0.0, max_value=400.0)
handle_times = st.floats(min_value=1.0, max_value=3600.0)
thresholds = st.floats(min_value=0.0, max_value=600.0)


@given(agents_counts, loads)
def test_probabilities_stay_in_the_unit_interval(agents: int, load: float) -> None:
    assert 0.0 <= erlang_b(agents, load) <= 1.0
    assert 0.0 <= erlang_c(agents, load) <= 1.0
    assert erlang_b(agents, load) <= erlang_c(agents, load)  # a wait is likelier than a loss


@given(agents_counts, loads, handle_times, thresholds)
def test_more_agents_never_hurt(agents: int, load: float, handle: float,
                                threshold: float) -> None:
    assert erlang_c(agents + 1, load) <= erlang_c(agents, load)
    assert (forecast_service_level(agents, load, handle, threshold)
            <= forecast_service_level(agents + 1, load, handle, threshold))
    wait, wait_with_one_more = (estimated_wait(agents, load, handle),
                                estimated_wait(agents + 1, load, handle))
    if wait is not None:
        assert wait_with_one_more is not None
        assert wait_with_one_more <= wait


@given(st.integers(min_value=0, max_value=40), st.floats(min_value=0.001, max_value=60.0))
def test_recursion_equals_the_exact_sum(agents: int, load: float) -> None:
    assert relative_error(erlang_b(agents, load), exact_erlang_b(agents, load)) < 1e-13


@given(loads, handle_times, thresholds, st.floats(min_value=0.01, max_value=1.0))
def test_agents_required_is_minimal(load: float, handle: float, threshold: float,
                                    target: float) -> None:
    needed = agents_required(load, handle, threshold, target)
    assert forecast_service_level(needed, load, handle, threshold) >= target
    assert needed == 1 or forecast_service_level(needed - 1, load, handle, threshold) < target
