"""Whether the alert store (Redis) answers: `/healthz` and `ccmon_alert_store_up`, the same
for a gateway (which follows the store) and a worker (whose outbox the store empties); its
outage is said once, and so is its end (`ccmon.console.Outage`)."""

from __future__ import annotations

from collections.abc import Iterator
from http import HTTPStatus

from prometheus_client.core import GaugeMetricFamily, Metric

from ccmon.console import Outage

STORE_UP = "ccmon_alert_store_up"


class StoreHealth(Outage):
    """The outcome of the last call to the store; also a Prometheus collector."""

    def healthz(self) -> tuple[HTTPStatus, bytes]:
        if self.up:
            return HTTPStatus.OK, b"ok\n"
        return HTTPStatus.SERVICE_UNAVAILABLE, b"cannot reach the alert store\n"

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(STORE_UP, "1 if the alert store (Redis) answered the last call",
                                value=int(bool(self.up)))
