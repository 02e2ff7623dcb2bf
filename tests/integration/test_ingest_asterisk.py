"""`ccmon ingest asterisk` as a real subprocess into Apache Kafka, read by a real worker: the
day of tests/data/queue_log gives the figures worked out by hand (test_asterisk.py) on the
worker's /metrics, read to its end, followed through appends, a rotation and a truncation,
and after a `kill -9` mid-file and a restart."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import pytest

from ccmon.launch import stop, total, try_scrape, wait_until
from tests.integration.test_worker import read_topic
from tests.support.adapters import by_reason, wait_for_figures
from tests.support.deployment import DEADLINE, Deployment
from tests.unit.test_asterisk import DAY_MALFORMED, DAY_SKIPPED, day_lines, hand_figures_hold, run

pytestmark = pytest.mark.kafka


def mapped(lines: list[bytes]) -> list[dict]:
    """The events of an uninterrupted run to the end of the lines."""
    events, _, _, mapper = run(lines)
    return events + mapper.finish()


def test_a_queue_log_read_to_its_end(day_deployment: Deployment):
    deployment = day_deployment
    path = deployment.tmp_path / "queue_log"
    path.write_bytes(b"".join(day_lines()))
    worker = deployment.start_worker()
    ingest = deployment.start_ingest("asterisk", str(path))
    wait_until(lambda: ingest.poll() is not None, DEADLINE, "ingest to reach the end")
    assert ingest.returncode == 0, deployment.ingest_log()
    wait_for_figures(deployment, worker, mapped(day_lines()), hand_figures_hold)

    health = try_scrape(worker.metrics_url)
    assert total(health, "ccmon_events_invalid_total") == 0  # the monitor took every event
    letters = asyncio.run(read_topic(deployment.settings.bootstrap(),
                                     deployment.settings.deadletter_topic, len(DAY_MALFORMED)))
    letters.sort(key=lambda letter: int(letter[1]["ccmon-source"].rpartition(":")[2]))
    assert [headers["ccmon-reason"] for _, headers in letters] == DAY_MALFORMED
    bad = [line.rstrip(b"\n") for line in day_lines() if run([line])[2]]
    assert [value for value, _ in letters] == bad  # unchanged
    offsets = [int(headers["ccmon-source"].rpartition(":")[2]) for _, headers in letters]
    content = path.read_bytes()
    assert [content[o:o + len(v)] for o, (v, _) in zip(offsets, letters, strict=True)] == bad
    position = json.loads((deployment.tmp_path / "queue_log.ccmon-position").read_bytes())
    assert position["offset"] == len(content)


def append(path: Path, lines: list[bytes]) -> None:
    with open(path, "ab") as handle:
        handle.write(b"".join(lines))


def test_a_followed_queue_log_through_appends_a_rotation_and_a_truncation(
        day_deployment: Deployment):
    deployment = day_deployment
    lines = day_lines()
    path = deployment.tmp_path / "queue_log"
    path.write_bytes(b"".join(lines[:20]))
    worker = deployment.start_worker()
    ingest = deployment.start_ingest("asterisk", str(path), "--follow", "--state",
                          str(deployment.tmp_path / "position"))

    def read_so_far() -> float:
        assert ingest.poll() is None, deployment.ingest_log()
        return total(try_scrape(ingest.metrics_url) or {}, "ccmon_adapter_records_total")

    wait_until(lambda: read_so_far() == 20, DEADLINE, "the first 20 lines")
    append(path, lines[20:35])
    wait_until(lambda: read_so_far() == 35, DEADLINE, "the appended lines")
    # Lines written to the old file just before it is rotated are read before the new one.
    append(path, lines[35:45])
    path.rename(path.with_name("queue_log.1"))
    path.write_bytes(b"".join(lines[45:60]))
    wait_until(lambda: read_so_far() == 60, DEADLINE, "the old file's end and the new file")
    # Truncated, then shorter than the offset read: read again from its start.
    assert len(b"".join(lines[60:])) < len(b"".join(lines[45:60]))
    with open(path, "r+b") as handle:
        handle.truncate(0)
    append(path, lines[60:])
    wait_until(lambda: read_so_far() == len(lines), DEADLINE, "the lines after the truncation")

    wait_for_figures(deployment, worker, mapped(lines), hand_figures_hold)
    metrics = try_scrape(ingest.metrics_url)
    assert by_reason(metrics, "ccmon_adapter_skipped_total") == DAY_SKIPPED
    assert by_reason(metrics, "ccmon_adapter_deadlettered_total") == dict.fromkeys(
        DAY_MALFORMED, 1)
    assert total(metrics, "ccmon_adapter_events_total") == len(run(lines)[0])
    assert stop(ingest) == 0


def days(count: int) -> list[bytes]:
    """The day `count` times, each copy an hour later (epochs and call ids moved with it)."""
    out = []
    for day in range(count):
        for line in day_lines():
            fields = line.split(b"|")
            for i in range(min(2, len(fields))):
                head, dot, tail = fields[i].partition(b".")
                if head.isdigit():
                    fields[i] = str(int(head) + 3600 * day).encode() + dot + tail
            out.append(b"|".join(fields))
    return out


def test_kill_9_mid_file_and_restart_give_the_figures_of_an_uninterrupted_run(
        day_deployment: Deployment):
    deployment = day_deployment
    lines = days(10)
    path = deployment.tmp_path / "queue_log"
    path.write_bytes(b"".join(lines))
    position_path = deployment.tmp_path / "queue_log.ccmon-position"
    worker = deployment.start_worker()
    ingest = deployment.start_ingest("asterisk", str(path), "--rate", "100")

    def offset() -> int:
        try:
            return json.loads(position_path.read_bytes())["offset"]
        except FileNotFoundError:
            return 0

    wait_until(lambda: offset() > 0, DEADLINE, "a first position")
    ingest.send_signal(signal.SIGKILL)
    ingest.wait()
    assert 0 < offset() < len(b"".join(lines)), "killed after the end: nothing was tested"

    ingest = deployment.start_ingest("asterisk", str(path))  # the same command, full speed
    wait_until(lambda: ingest.poll() is not None, DEADLINE, "ingest to reach the end")
    assert ingest.returncode == 0, deployment.ingest_log()
    wait_for_figures(deployment, worker, mapped(lines),
                     lambda found: hand_figures_hold(found, days=10))
    health = try_scrape(worker.metrics_url)
    assert total(health, "ccmon_events_invalid_total") == 0
