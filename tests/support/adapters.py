"""What the `ccmon ingest …` end-to-end tests share: waiting for a worker's figures, and
reading an adapter's counters."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest

from ccmon.figures import describe_difference, engine_figures, matches, queue_series
from ccmon.launch import Samples, try_scrape, wait_until
from tests.support.deployment import DEADLINE, Deployment


def wait_for_figures(deployment: Deployment, worker, events: list[dict],
                     by_hand: Callable[[Samples], bool]) -> None:
    """Until the worker's queue series equal the engine's for `events` and hold the figures
    worked out by hand (`by_hand`)."""
    wanted = engine_figures([orjson.dumps(e) for e in events], deployment.settings)

    def current() -> Samples:
        return queue_series(try_scrape(worker.metrics_url))
    try:
        wait_until(lambda: matches(found := current(), wanted) and by_hand(found), DEADLINE,
                   "the hand-computed figures")
    except TimeoutError:
        pytest.fail(f"{describe_difference(current(), wanted)}\n{deployment.ingest_log()}\n"
                    f"{deployment.log_tail()}")


def by_reason(metrics: Samples, name: str) -> dict[str, float]:
    """An adapter counter's values by its `reason` label."""
    return {dict(labels)["reason"]: value for (metric, labels), value in metrics.items()
            if metric == name}
