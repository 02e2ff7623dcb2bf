"""stream/reps.py at its edges: what mutation testing found unchecked (docs/testing.md).

The agents' credits themselves are worked out by hand in test_agents_view.py; these pin the
csat boundary, the pruning of several agents, and the changelog's sample format.
"""

from __future__ import annotations

from ccmon.stream.reps import (
    CSAT,
    ENDED,
    HOLD,
    SUMS,
    TRANSFERRED,
    Reps,
    rep_code,
)

SATISFIED, SURVEYS = SUMS.index("satisfied"), SUMS.index("surveys")


def test_a_csat_of_4_is_satisfied_and_3_is_not() -> None:
    # metrics.md: the share of csat scores >= 4; 4 is the boundary, 5 above it.
    reps = Reps()
    for ts, score in enumerate((3, 4, 5), start=1):
        reps.add("ann", ts * 1000, rep_code(CSAT, score))
    (sums,) = reps.sums("ann", [0], 10_000)
    assert (sums[SURVEYS], sums[SATISFIED]) == (3, 2)


def test_an_agent_without_samples_sums_to_zero_in_every_window() -> None:
    assert Reps().sums("nobody", [0, 5_000], 10_000) == [[0] * len(SUMS), [0] * len(SUMS)]


def test_pruning_goes_on_past_an_agent_with_nothing_to_drop() -> None:
    reps = Reps()
    reps.add("ann", 50_000, rep_code(ENDED, 1_000))  # nothing of hers at or before 10 s
    reps.add("bob", 5_000, rep_code(ENDED, 2_000))
    reps.add("bob", 60_000, rep_code(ENDED, 3_000))
    assert reps.prune(10_000) == ["bob"]
    # Bob keeps his later sample: only what the windows no longer reach goes.
    assert reps.to_json("bob") == {"times": [60_000], "codes": [rep_code(ENDED, 3_000)]}
    assert reps.to_json("ann") is not None


def test_an_agent_pruned_of_every_sample_is_forgotten_however_many() -> None:
    reps = Reps()
    for ts in range(1, 1001):  # over 256: lengths compared by value, not identity
        reps.add("ann", ts, rep_code(HOLD, 10))
    assert reps.prune(1000) == ["ann"]
    assert reps.to_json("ann") is None
    assert reps.samples == {}


def test_the_changelog_format_of_a_sample_is_stable() -> None:
    """Samples are in the changelog: a value logged by an earlier version must read the same.
    The code is value << 2 | kind with ENDED 0, TRANSFERRED 1, HOLD 2, CSAT 3."""
    reps = Reps()
    reps.restore("ann", {"times": [1_000, 2_000, 3_000, 4_000],
                         "codes": [30_000 << 2 | 0, 20_000 << 2 | 1, 5_000 << 2 | 2, 4 << 2 | 3]})
    (sums,) = reps.sums("ann", [0], 10_000)
    assert dict(zip(SUMS, sums, strict=True)) == {
        "handled": 2, "transferred": 1, "handle_ms": 50_000, "holds": 1, "hold_ms": 5_000,
        "surveys": 1, "satisfied": 1}
    assert (ENDED, TRANSFERRED, HOLD, CSAT) == (0, 1, 2, 3)
    assert rep_code(HOLD, 5_000) == 5_000 << 2 | 2
