"""`ccmon ingest taskrouter --listen` as a real subprocess on Apache Kafka, read by a real worker:
the hour of tests/data/taskrouter.jsonl POSTed as signed callbacks gives the figures worked out
by hand (test_taskrouter.py); a bad X-Twilio-Signature gets 403 and produces nothing, a
repeated callback no second event."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import socket
import urllib.error
import urllib.request
from urllib.parse import parse_qsl

import pytest

from ccmon.embedded import free_port
from ccmon.launch import stop, total, try_scrape, wait_until
from tests.integration.test_worker import read_topic
from tests.support.adapters import by_reason, wait_for_figures
from tests.support.deployment import DEADLINE, Deployment
from tests.unit.test_taskrouter import (
    HOUR_MALFORMED,
    HOUR_SKIPPED,
    callbacks,
    hand_figures_hold,
    run,
)

pytestmark = pytest.mark.kafka

TOKEN = "9f3c0a1b2c3d4e5f60718293a4b5c6d7"


def twilio_signature(url: str, body: str, token: str) -> str:
    """As Twilio's security page describes it: the URL, then each POST parameter's name and
    value sorted by name, HMAC-SHA1 with the auth token, base64."""
    data = url + "".join(k + v for k, v in sorted(parse_qsl(body, keep_blank_values=True)))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()
                            ).decode()


def post(url: str, body: str, signature: str, token: str | None = None) -> int:
    headers = {"Content-Type": "application/x-www-form-urlencoded",
               "X-Twilio-Signature": signature}
    if token:
        headers["I-Twilio-Idempotency-Token"] = token
    request = urllib.request.Request(url, body.encode(), headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_signed_callbacks_give_the_hand_figures_and_forged_ones_nothing(
        day_deployment: Deployment):
    deployment = day_deployment
    token_file = deployment.tmp_path / "twilio-token"
    token_file.write_text(TOKEN + "\n")
    deployment.values["twilio_auth_token_file"] = str(token_file)
    port = free_port()
    worker = deployment.start_worker()
    ingest = deployment.start_ingest("taskrouter", "--listen", f"127.0.0.1:{port}", "--state",
                                     str(deployment.tmp_path / "taskrouter.state"))
    wait_until(lambda: ingest.poll() is not None or listening(port), DEADLINE, "the receiver")
    assert ingest.poll() is None, deployment.ingest_log()
    url = f"http://127.0.0.1:{port}/taskrouter/events"

    def counted(name: str) -> float:
        return total(try_scrape(ingest.metrics_url) or {}, name)

    items = callbacks()
    forged = items[2]["body"]
    assert post(url, forged, twilio_signature(url, forged, "not-the-token")) == 403
    assert post(url, forged, "") == 403
    assert post(url, forged + "&TaskPriority=9", twilio_signature(url, forged, TOKEN)) == 403
    assert counted("ccmon_adapter_refused_total") == 3
    assert counted("ccmon_adapter_records_total") == counted("ccmon_adapter_events_total") == 0

    for item in items:
        status = post(url, item["body"], twilio_signature(url, item["body"], TOKEN),
                      item.get("token"))
        assert status == 204, (status, deployment.ingest_log())
    events = counted("ccmon_adapter_events_total")
    assert events == len(run(items)[0])
    again = items[3]["body"]  # task-queue.entered of the first task, delivered twice
    assert post(url, again, twilio_signature(url, again, TOKEN)) == 204
    assert counted("ccmon_adapter_events_total") == events

    wait_for_figures(deployment, worker, run(items)[0], hand_figures_hold)
    assert total(try_scrape(worker.metrics_url), "ccmon_events_invalid_total") == 0

    metrics = try_scrape(ingest.metrics_url)
    assert by_reason(metrics, "ccmon_adapter_skipped_total") == {
        **HOUR_SKIPPED, "repeat": HOUR_SKIPPED["repeat"] + 1}
    letters = asyncio.run(read_topic(deployment.settings.bootstrap(),
                                     deployment.settings.deadletter_topic, len(HOUR_MALFORMED)))
    assert sorted(value.decode() for value, _ in letters) == sorted(
        item["body"] for item in items if run([item])[2])
    assert stop(ingest) == 0
