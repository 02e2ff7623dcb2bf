"""One line of figures for a cosmic-ray session: its mutants, those skipped (in annotations,
or left out of a random sample), killed, survived, pending, and the kill ratio with its 95 %
Wilson interval when the mutants run are a sample of the module's.

    python scripts/mutation_figures.py SESSION.sqlite
"""

from __future__ import annotations

import math
import sys

from cosmic_ray.work_db import WorkDB, use_db

NOT_SAMPLED = "not in the random sample"


def wilson(killed: int, run: int, z: float = 1.96) -> tuple[float, float]:
    """The 95 % interval of a proportion seen as killed of run (sound for small samples)."""
    if run == 0:
        return 0.0, 1.0
    p = killed / run
    centre = (p + z * z / (2 * run)) / (1 + z * z / run)
    half = z * math.sqrt(p * (1 - p) / run + z * z / (4 * run * run)) / (1 + z * z / run)
    return max(0.0, centre - half), min(1.0, centre + half)


def main(session: str) -> None:
    with use_db(session, WorkDB.Mode.open) as db:
        total = db.num_work_items
        outcomes = [(result.worker_outcome.value, result.test_outcome and result.test_outcome.value,
                     result.output or "") for _, result in db.results]
    annotations = sum(1 for w, _, out in outcomes if w == "skipped" and NOT_SAMPLED not in out)
    unsampled = sum(1 for w, _, out in outcomes if w == "skipped" and NOT_SAMPLED in out)
    killed = sum(1 for w, t, _ in outcomes if w != "skipped" and t == "killed")
    survived = sum(1 for w, t, _ in outcomes if w != "skipped" and t == "survived")
    pending = total - len(outcomes)
    line = (f"mutants {total}, in annotations {annotations}, left out of the sample {unsampled},"
            f" killed {killed}, survived {survived}, pending {pending}")
    if unsampled:
        low, high = wilson(killed, killed + survived)
        line += f"; sample kill ratio {killed / max(1, killed + survived):.1%}"
        line += f" (95 % interval {low:.1%} to {high:.1%})"
    print(line)


if __name__ == "__main__":
    main(*sys.argv[1:])
