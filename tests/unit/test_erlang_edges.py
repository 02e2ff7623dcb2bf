"""stream/erlang.py at the edges of its inputs: what mutation testing found unchecked.

Each test names the bound it holds; the values are just across it.
"""

from __future__ import annotations

import math

import pytest

from ccmon.stream.erlang import agents_required, offered_load


@pytest.mark.parametrize("target", [-0.5, -1.0, 0.0, 1.0000001, math.nan])
def test_a_target_outside_zero_to_one_is_refused(target: float) -> None:
    with pytest.raises(ValueError, match="target"):
        agents_required(1.0, 10.0, 20.0, target)


@pytest.mark.parametrize("target", [1e-9, 0.5, 1.0])
def test_a_target_inside_zero_to_one_is_taken(target: float) -> None:
    assert agents_required(1.0, 10.0, 20.0, target) >= 2  # N ≤ A forecasts 0


@pytest.mark.parametrize(("contacts", "window", "handle"), [
    (-1, 60.0, 10.0), (1, 0.0, 10.0), (1, -60.0, 10.0), (1, math.nan, 10.0),
    (1, 60.0, -0.5), (1, 60.0, -1e-9), (1, 60.0, math.nan)])
def test_offered_load_refuses_negative_or_undefined_inputs(contacts: int, window: float,
                                                           handle: float) -> None:
    with pytest.raises(ValueError):
        offered_load(contacts, window, handle)


def test_a_window_under_a_second_is_taken() -> None:
    # W > 0 is all the formula needs: 1 contact in half a second of 10 s each is 20 Erlangs.
    assert offered_load(1, 0.5, 10.0) == 20.0
