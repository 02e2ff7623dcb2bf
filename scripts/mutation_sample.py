"""Keep a random sample of a cosmic-ray session's pending mutants, skip the rest.

A module of a thousand mutants costs hours; the kill ratio of a uniform random sample of a
hundred or two estimates the whole one's within a few points (the report gives the 95 %
Wilson interval). The sample is drawn once, seeded by the module's path, so a resumed run
and a rerun on another machine draw the same mutants.

    python scripts/mutation_sample.py SESSION.sqlite MODULE_FILE SIZE
"""

from __future__ import annotations

import random
import sys

from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import WorkerOutcome, WorkResult

NOT_SAMPLED = "not in the random sample"


def main(session: str, module_file: str, size: str) -> None:
    with use_db(session, WorkDB.Mode.open) as db:
        done = {job_id for job_id, _ in db.results}
        if any(NOT_SAMPLED in (result.output or "") for _, result in db.results):
            print(f"mutation_sample: {module_file} was sampled before")
            return
        # Ordered by what each mutant is, not by its job id (a fresh uuid at every init).
        pending = [item.job_id for item in sorted(
            (item for item in db.work_items if item.job_id not in done),
            key=lambda item: [(m.operator_name, m.occurrence) for m in item.mutations])]
        keep = set(random.Random(module_file).sample(pending, min(int(size), len(pending))))
        for job_id in pending:
            if job_id not in keep:
                db.set_result(job_id, WorkResult(
                    worker_outcome=WorkerOutcome.SKIPPED,
                    output=f"{NOT_SAMPLED} of {size}"))
    print(f"mutation_sample: {len(keep)} of {len(pending)} pending mutants of {module_file} kept")


if __name__ == "__main__":
    main(*sys.argv[1:])
