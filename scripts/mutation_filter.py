"""Skip the mutants no test could ever kill because the code they change never runs: those
inside type annotations. Every pure module starts with `from __future__ import annotations`,
so an annotation is a string Python never evaluates (`float | None` -> `float // None` is
the same program). Marks them SKIPPED in a cosmic-ray session, as its own filters do.

    python scripts/mutation_filter.py SESSION.sqlite MODULE_FILE
"""

from __future__ import annotations

import ast
import sys

from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import WorkerOutcome, WorkResult


def annotation_spans(source: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(start, end) positions (row from 1, column from 0) of every annotation."""
    tree = ast.parse(source)
    assert any(isinstance(node, ast.ImportFrom) and node.module == "__future__"
               and any(alias.name == "annotations" for alias in node.names)
               for node in tree.body), "annotations are evaluated in this module"
    annotations: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.arg | ast.AnnAssign) and node.annotation is not None:
            annotations.append(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns:
            annotations.append(node.returns)
    return [((a.lineno, a.col_offset), (a.end_lineno, a.end_col_offset)) for a in annotations]


def main(session: str, module_file: str) -> None:
    with open(module_file) as handle:
        spans = annotation_spans(handle.read())
    skipped = 0
    with use_db(session, WorkDB.Mode.open) as db:
        # Also over results already in: a survivor there was never a test's to kill.
        killed = {job_id for job_id, result in db.results
                  if result.test_outcome is not None and result.test_outcome.value == "killed"}
        for item in db.work_items:
            if item.job_id in killed:
                continue
            for mutation in item.mutations:
                start, end = tuple(mutation.start_pos), tuple(mutation.end_pos)
                if any(low <= start and end <= high for low, high in spans):
                    db.set_result(item.job_id, WorkResult(
                        worker_outcome=WorkerOutcome.SKIPPED,
                        output="inside a type annotation: never evaluated"))
                    skipped += 1
                    break
    print(f"mutation_filter: {skipped} mutants inside annotations skipped in {module_file}")


if __name__ == "__main__":
    main(*sys.argv[1:])
