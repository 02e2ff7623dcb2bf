"""Whether the alert store (Redis) answers: `/healthz` and `ccmon_alert_store_up`, the same
for a gateway (which follows the store) and a worker (whose outbox the store empties)."""

from __future__ import annotations

from collections.abc import Iterator
from http import HTTPStatus

from prometheus_client.core import GaugeMetricFamily, Metric

STORE_UP = "ccmon_alert_store_up"


class StoreHealth:
    """The outcome of the last call to the store; also a Prometheus collector."""

    def __init__(self) -> None:
        self.up: bool | None = None  # None: not asked yet

    def answered(self) -> bool:
        """The store answered; True if it had failed before (worth saying once)."""
        came_back, self.up = self.up is False, True
        return came_back

    def failed(self) -> bool:
        """A call failed; True if it is news (worth saying once)."""
        news, self.up = self.up is not False, False
        return news

    def healthz(self) -> tuple[HTTPStatus, bytes]:
        if self.up:
            return HTTPStatus.OK, b"ok\n"
        return HTTPStatus.SERVICE_UNAVAILABLE, b"cannot reach the alert store\n"

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(STORE_UP, "1 if the alert store (Redis) answered the last call",
                                value=int(bool(self.up)))
