"""Nearest-rank quantiles (metrics.md 1.1): the smallest sample x with at least ceil(q * n)
samples <= x, the rank computed in exact decimal."""

from __future__ import annotations

import math
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from ccmon.stream.kpis import QUANTILES, nearest_rank


def test_ranks_at_the_exact_multiples():
    # q * n whole: the rank is q * n itself, not one more (0.9 * 100 = 90, 0.95 * 20 = 19).
    assert nearest_rank(list(range(1, 101)), "0.9") == 90
    assert nearest_rank(list(range(1, 21)), "0.95") == 19
    assert nearest_rank(list(range(1, 1001)), "0.95") == 950
    assert nearest_rank(list(range(1, 11)), "0.5") == 5


def test_small_samples_and_ties():
    assert [nearest_rank([7], q) for q in QUANTILES] == [7, 7, 7]
    assert [nearest_rank([1, 2], q) for q in QUANTILES] == [1, 2, 2]  # ranks 1, 2, 2
    assert [nearest_rank([1, 2, 3], q) for q in QUANTILES] == [2, 3, 3]  # 2, 3, 3
    # Ties: ten 5s and one 9; rank ceil(0.9 * 11) = 10 is still a 5.
    assert [nearest_rank([5] * 10 + [9], q) for q in QUANTILES] == [5, 5, 9]


@given(st.lists(st.integers(0, 10**12), min_size=1, max_size=300), st.sampled_from(QUANTILES))
def test_the_definition_holds(samples: list[int], quantile: str):
    ordered = sorted(samples)
    x = nearest_rank(ordered, quantile)
    need = math.ceil(Fraction(quantile) * len(samples))
    assert sum(s <= x for s in samples) >= need  # at least ceil(q n) samples <= x
    assert all(sum(s <= y for s in samples) < need for y in samples if y < x)  # the smallest
