"""The wall clock, which production runs on (clock = wall): values read at the moment of the
scrape, and alert timing, on a real worker and Kafka.

Bounds here are correctness, not speed: a value read at the wall clock must lie between
what it was just before and just after the scrape; an alert with `for: 3s` must not be seen
firing before its condition can have held for 3 s.
"""

from __future__ import annotations

import time

import orjson
import pytest
import yaml

from ccmon.launch import scrape, total, try_scrape, wait_until
from tests.support.deployment import DEADLINE, Deployment

pytestmark = pytest.mark.kafka

WAITING = {"name": "someone-waits", "metric": "ccmon_queue_waiting_contacts",
           "where": {"queue": "billing"}, "op": ">=", "threshold": 1, "for": "3s",
           "severity": "warning", "summary": "someone waits in billing"}


def event(event_id: str, kind: str, ts: float, contact: str, **fields: object) -> bytes:
    return orjson.dumps({"event_id": event_id, "type": f"contact.{kind}", "ts": ts,
                         "contact_id": contact, **fields})


def value(samples: dict, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    found = [v for (n, ls), v in samples.items() if n == name and wanted <= ls]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def test_values_and_alert_timing_on_the_wall_clock(kafka, tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"rules": [WAITING]}))
    deployment = Deployment(kafka, tmp_path, clock="wall", partitions=1, rules=rules)
    try:
        worker = deployment.start_worker()
        url = worker.metrics_url
        t = round(time.time(), 3)
        deployment.send([
            event("c1-q", "queued", t - 30, "c1", queue="billing"),
            event("c1-a", "answered", t - 20, "c1"),  # waited 10 s
            event("c2-q", "queued", t, "c2", queue="billing"),
        ])
        wait_until(lambda: total(try_scrape(url) or {}, "ccmon_offered_contacts",
                                 window="5m") == 2, DEADLINE, "the events applied")

        before = time.time()
        samples = scrape(url)
        after = time.time()
        billing = {"queue": "billing", "channel": "voice"}
        assert value(samples, "ccmon_answered_contacts", window="5m", **billing) == 1
        assert value(samples, "ccmon_answer_wait_seconds_avg", window="5m", **billing) == 10
        assert value(samples, "ccmon_queue_waiting_contacts", **billing) == 1
        # Read at the wall clock: c2's wait so far, and the clock itself, at the scrape.
        oldest = value(samples, "ccmon_queue_oldest_wait_seconds", **billing)
        assert before - t - 0.001 <= oldest <= after - t + 0.001
        assert before - 0.001 <= value(samples, "ccmon_clock_timestamp_seconds") <= after

        def seen_firing() -> float | None:
            return time.time() if total(scrape(url), "ccmon_alerts_firing") else None

        firing_at = wait_until(seen_firing, DEADLINE, "the alert firing", interval=0.05)
        # True since c2 arrived (at t at the earliest), firing only after holding for 3 s.
        assert firing_at >= t + 3
        assert total(scrape(url), "ccmon_alert_transitions_total", rule="someone-waits",
                     status="firing") == 1

        deployment.send([event("c2-a", "answered", round(time.time(), 3), "c2")])
        wait_until(lambda: total(scrape(url), "ccmon_alert_transitions_total",
                                 rule="someone-waits", status="resolved") == 1,
                   DEADLINE, "the alert resolved")
        samples = scrape(url)
        assert total(samples, "ccmon_alerts_firing") == 0
        assert value(samples, "ccmon_queue_waiting_contacts", **billing) == 0
        assert value(samples, "ccmon_queue_oldest_wait_seconds", **billing) == 0
    finally:
        deployment.stop_all()
