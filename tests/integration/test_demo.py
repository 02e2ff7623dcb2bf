"""`ccmon demo` end to end on its embedded broker (tansu): the README's first command."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from websockets.asyncio.client import connect

from ccmon.embedded import free_ports
from ccmon.launch import total, try_scrape, wait_until

DEADLINE = 120.0
DEMO_QUEUES = {"billing", "sales", "support", "care"}


def children_of(pid: int) -> list[int]:
    """Processes whose parent is `pid` (read from /proc: the demo's worker, simulator, broker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def text_of(path: Path) -> str:
    return path.read_text(errors="replace")


async def supervisor(url: str, token: str) -> tuple[dict, dict, list[dict]]:
    """Sign in to the demo's gateway as the page does: the snapshot, then tiles of every
    queue (a queue has one once a contact came), and the opening incident's alert on voice
    billing (`OPENING_INCIDENT`) until it resolves."""
    async with asyncio.timeout(DEADLINE):
        while True:  # the gateway listens once the worker process is up
            try:
                connection = await connect(url)
                break
            except OSError:
                await asyncio.sleep(0.2)  # retry pace, not synchronisation
    async with connection:
        await connection.send(json.dumps({"type": "auth", "token": token}))
        hello = json.loads(await asyncio.wait_for(connection.recv(), DEADLINE))
        building = [alert for alert in hello["alerts"] if alert["rule"] == "queue-building"]
        await connection.send(json.dumps({"type": "subscribe", "kpis": True}))
        kpis: dict = {}
        async with asyncio.timeout(DEADLINE):
            while not (kpis and building and building[-1]["status"] == "resolved"):
                message = json.loads(await connection.recv())
                if message["type"] == "kpis" and {
                        tile["queue"] for tile in message["tiles"]} >= DEMO_QUEUES:
                    kpis = message
                elif message["type"] == "alert" and message["rule"] == "queue-building":
                    building.append(message)
    return hello, kpis, building


def test_demo_shows_every_queue_and_stops_cleanly_on_ctrl_c(tmp_path):
    port, ws_port = free_ports(2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCMON_")}
    output = tmp_path / "demo.out"
    with open(output, "wb") as out:
        demo = subprocess.Popen(
            [sys.executable, "-m", "ccmon", "demo", "--metrics-port", str(port), "--ws-port",
             str(ws_port), "--seed", "7"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        def moving() -> bool:
            samples = try_scrape(url) or {}
            queues = {dict(labels).get("queue") for name, labels in samples
                      if name == "ccmon_agents"}
            return total(samples, "ccmon_events_total") > 0 and queues >= DEMO_QUEUES and \
                total(samples, "ccmon_offered_contacts") > 0

        # Signed in before the worker evaluates anything: the opening incident's alert is seen
        # live from its start.
        wait_until(lambda: "sign in with token " in text_of(output), DEADLINE, "the banner")
        token = text_of(output).split("sign in with token ")[1].split(")")[0]
        hello, kpis, building = asyncio.run(supervisor(f"ws://127.0.0.1:{ws_port}/ws", token))
        wait_until(moving, DEADLINE, "the demo's metrics to show traffic on every queue")
        assert hello["type"] == "snapshot" and hello["queues"] == ["*"]
        # Voice billing built up: its alert fired (seen live or in the snapshot) and resolved.
        assert [(alert["status"], alert["labels"]) for alert in building] == [
            ("firing", {"queue": "billing", "channel": "voice"}),
            ("resolved", {"queue": "billing", "channel": "voice"})]
        assert building[0]["value"] >= 4 and building[0]["id"] == building[1]["id"]
        # Tiles of the queues the worker exports, each with a count of contacts waiting.
        series = {(dict(labels)["queue"], dict(labels)["channel"])
                  for name, labels in try_scrape(url) or {}
                  if name == "ccmon_queue_waiting_contacts"}
        tiles = {(tile["queue"], tile["channel"]): tile["waiting"] for tile in kpis["tiles"]}
        assert tiles and tiles.keys() <= series
        assert all(isinstance(waiting, int) and waiting >= 0 for waiting in tiles.values())
        children = children_of(demo.pid)
        assert len(children) == 3  # broker, worker, simulator
        demo.send_signal(signal.SIGINT)
        assert demo.wait(DEADLINE) == 0
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    text = output.read_text()
    assert "Traceback" not in text
    assert f"metrics      {url}" in text
    assert f"supervisors  http://127.0.0.1:{ws_port}/ (sign in with token" in text
    assert "ccmon: stopped; logs in " in text
    log_dir = Path(text.split("ccmon: stopped; logs in ")[1].split()[0])
    for log in ("worker.log", "simulator.log", "tansu.log"):
        assert "Traceback" not in (log_dir / log).read_text(), log
    assert not [pid for pid in children if alive(pid)]
