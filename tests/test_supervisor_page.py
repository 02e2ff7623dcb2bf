"""The supervisor page's own test (alerts/static), in headless Chromium, WITHOUT the gateway.

A throwaway `websockets` server, started here in a thread with its own event loop, serves
the three static files and speaks the page's side of the protocol on `/ws` for one token
("t0k", user alice, queue billing): a snapshot with one firing alert, the alert again with
`acked_by` after the page's ack, KPI tiles once a second after the subscribe, pong for ping,
close 4401 for any other token. It checks the page only; the real gateway's end-to-end test
lives with the gateway and reuses tests/browser.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import browser, console_log, wait_for  # tests/ is on sys.path (conftest.py)
from selenium.webdriver.common.by import By
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

STATIC = Path(__file__).resolve().parents[1] / "alerts" / "static"
FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
TOKEN = "t0k"
ALERT_ID = "3f2a9c0d1e5b7a6c4d8e"
SUMMARY = "<b>Billing</b> queue above 10 waiting <img src=x onerror=alert(1)>"


class FakeGateway:
    """Just enough of the gateway for the page: one user, one alert, KPI tiles."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="fake-gateway", daemon=True)
        self.ready = threading.Event()
        self.port = 0
        self.received: list[dict[str, Any]] = []  # every message from the page, in order
        self.closed_4401 = 0
        self.connections: set[ServerConnection] = set()
        self.alert: dict[str, Any] = {
            "type": "alert", "id": ALERT_ID, "rule": "long-queue", "status": "firing",
            "severity": "critical", "labels": {"queue": "billing", "channel": "voice"},
            "value": 12, "threshold": 10, "summary": SUMMARY,
            "starts_at": "2026-01-01T09:14:00Z", "ends_at": None, "acked_by": None,
        }
        self.failure: BaseException | None = None

    # -- thread and loop -------------------------------------------------------------------
    def start(self) -> None:
        self.thread.start()
        if not self.ready.wait(10):
            raise RuntimeError(f"fake gateway did not start: {self.failure!r}")

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self._stopped.set)
        self.thread.join(10)

    def call(self, coro_fn) -> None:
        asyncio.run_coroutine_threadsafe(coro_fn(), self.loop).result(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._main())
        except BaseException as exc:
            self.failure = exc
            raise
        finally:
            self.loop.close()

    async def _main(self) -> None:
        self._stopped = asyncio.Event()
        self._accepting = asyncio.Event()
        self._accepting.set()
        async with serve(
            self._handler, "127.0.0.1", 0, process_request=self._process_request
        ) as server:
            self.port = server.sockets[0].getsockname()[1]
            self.ready.set()
            await self._stopped.wait()

    # -- HTTP: the three static files ------------------------------------------------------
    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == "/ws":
            return None  # go on with the WebSocket handshake
        if path not in FILES:
            return connection.respond(404, "not found\n")
        name, content_type = FILES[path]
        body = (STATIC / name).read_bytes()
        headers = Headers(
            [("Content-Type", content_type), ("Content-Length", str(len(body))),
             ("Cache-Control", "no-store")]
        )
        return Response(200, "OK", headers, body)

    # -- WebSocket: the protocol -----------------------------------------------------------
    async def _handler(self, ws: ServerConnection) -> None:
        try:
            first = json.loads(await asyncio.wait_for(ws.recv(), 5))
        except (TimeoutError, ConnectionClosed, ValueError):
            await ws.close(4401, "no auth")
            return
        self.received.append(first)
        if first.get("type") != "auth" or first.get("token") != TOKEN:
            self.closed_4401 += 1
            await ws.close(4401, "token refused")
            return
        self.connections.add(ws)
        kpis: asyncio.Task | None = None
        try:
            await self._accepting.wait()  # held while the test wants the page reconnecting
            firing = [self.alert] if self.alert["status"] == "firing" else []
            await ws.send(json.dumps({"type": "snapshot", "user": "alice",
                                      "queues": ["billing"], "alerts": firing}))
            async for raw in ws:
                msg = json.loads(raw)
                self.received.append(msg)
                if msg.get("type") == "subscribe" and kpis is None:
                    kpis = asyncio.create_task(self._kpis(ws))
                elif msg.get("type") == "ping":
                    await ws.send(json.dumps({"type": "pong"}))
                elif msg.get("type") == "ack" and msg.get("id") == ALERT_ID:
                    self.alert["acked_by"] = "alice"
                    await self._broadcast(self.alert)
                elif msg.get("type") == "ack":
                    await ws.send(json.dumps({"type": "error", "error": "unknown alert",
                                              "id": msg.get("id")}))
        except ConnectionClosed:
            pass
        finally:
            self.connections.discard(ws)
            if kpis is not None:
                kpis.cancel()

    async def _kpis(self, ws: ServerConnection) -> None:
        tick = 0
        while True:
            tiles = [
                {"queue": "billing", "channel": "voice", "waiting": 3 + tick,
                 "oldest_wait_seconds": 41.5, "in_conversation": 7, "on_hold": 1,
                 "service_level_ratio": 0.82, "abandon_ratio": 0.05,
                 "answer_wait_seconds_avg": 12.3},
                {"queue": "billing", "channel": "chat", "waiting": 0,
                 "oldest_wait_seconds": 0, "in_conversation": 2, "on_hold": 0,
                 "service_level_ratio": None, "abandon_ratio": None,
                 "answer_wait_seconds_avg": None},
            ]
            await ws.send(json.dumps({"type": "kpis", "window": "5m", "tiles": tiles}))
            tick += 1
            await asyncio.sleep(1)  # the server's own pace, as the gateway's: not a test wait

    async def _broadcast(self, message: dict[str, Any]) -> None:
        for ws in list(self.connections):
            with contextlib.suppress(ConnectionClosed):
                await ws.send(json.dumps(message))

    async def resolve(self) -> None:
        self.alert.update(status="resolved", ends_at="2026-01-01T09:20:30Z", value=7)
        await self._broadcast(self.alert)

    async def drop_connections(self) -> None:
        """Close every page's connection and hold new ones before their snapshot."""
        self._accepting.clear()
        for ws in list(self.connections):
            await ws.close(1012, "restarting")

    async def accept_again(self) -> None:
        self._accepting.set()


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    server = FakeGateway()
    server.start()
    yield server
    server.stop()


def text_of(driver, selector: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, selector).text


def test_supervisor_page_against_a_fake_gateway(gateway: FakeGateway, tmp_path: Path) -> None:
    with browser(tmp_path) as driver:
        driver.get(gateway.url)
        assert driver.title == "ccmon — supervisor"
        assert text_of(driver, "h1") == "ccmon — supervisor"
        wait_for(driver, lambda d: d.find_element(By.ID, "token").is_displayed())
        assert driver.find_element(By.ID, "token").get_attribute("type") == "password"
        assert not driver.find_element(By.ID, "dashboard").is_displayed()

        # A wrong token: closed with 4401, "Token refused", the form again.
        driver.find_element(By.ID, "token").send_keys("wrong")
        driver.find_element(By.ID, "sign-in").click()
        wait_for(driver, lambda d: "Token refused" in text_of(d, "#status"))
        wait_for(driver, lambda d: d.find_element(By.ID, "sign-in-form").is_displayed())
        assert gateway.closed_4401 == 1
        assert gateway.received == [{"type": "auth", "token": "wrong"}]
        assert driver.execute_script("return sessionStorage.getItem('ccmon.token')") is None

        # The right token: the snapshot's firing alert, the user and queues, "live".
        driver.find_element(By.ID, "token").send_keys(TOKEN)
        driver.find_element(By.ID, "sign-in").click()
        row = wait_for(driver, lambda d: d.find_element(By.ID, f"alert-{ALERT_ID}"))
        assert row.get_attribute("data-status") == "firing"
        assert row.get_attribute("data-severity") == "critical"
        wait_for(driver, lambda d: text_of(d, "#connection") == "live")
        assert text_of(driver, "#user") == "alice · billing"
        assert not driver.find_element(By.ID, "sign-in-form").is_displayed()
        assert driver.execute_script("return sessionStorage.getItem('ccmon.token')") == TOKEN
        # Server strings are text, never markup.
        summary = row.find_element(By.CSS_SELECTOR, ".summary")
        assert summary.text == SUMMARY
        assert summary.find_elements(By.CSS_SELECTOR, "*") == []
        assert "long-queue" in row.text and "CRITICAL" in row.text
        assert "queue=billing" in row.text and "channel=voice" in row.text
        assert "12 (threshold 10)" in row.text

        # Subscribed after auth: tiles, updated in place; null is "no data", never 0 %.
        wait_for(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#tiles .tile")) == 2)
        voice = '#tiles .tile[data-queue="billing"][data-channel="voice"]'
        chat = '#tiles .tile[data-queue="billing"][data-channel="chat"]'
        first = text_of(driver, f'{voice} [data-metric="waiting"] dd')
        wait_for(driver, lambda d: text_of(d, f'{voice} [data-metric="waiting"] dd') != first)
        assert len(driver.find_elements(By.CSS_SELECTOR, "#tiles .tile")) == 2
        assert text_of(driver, f'{voice} [data-metric="service_level_ratio"] dd') == "82 %"
        assert text_of(driver, f'{voice} [data-metric="abandon_ratio"] dd') == "5 %"
        assert text_of(driver, f'{chat} [data-metric="service_level_ratio"] dd') == "no data"
        assert text_of(driver, f'{chat} [data-metric="abandon_ratio"] dd') == "no data"
        assert driver.find_element(By.CSS_SELECTOR, voice).get_attribute("data-alert") == (
            "critical"
        )
        assert gateway.received[1:3] == [
            {"type": "auth", "token": TOKEN}, {"type": "subscribe", "kpis": True}
        ]

        # Acknowledge: the same row, now "Acknowledged by alice" and no button.
        row.find_element(By.CSS_SELECTOR, "button.ack").click()
        acked = wait_for(
            driver, lambda d: d.find_element(By.CSS_SELECTOR, f"#alert-{ALERT_ID} .acked")
        )
        assert acked.text == "Acknowledged by alice"
        assert row.find_elements(By.CSS_SELECTOR, "button.ack") == []
        assert {"type": "ack", "id": ALERT_ID} in gateway.received

        # Resolved: updated in place, greyed, never duplicated.
        gateway.call(gateway.resolve)
        wait_for(driver, lambda d: d.find_element(By.ID, f"alert-{ALERT_ID}")
                 .get_attribute("data-status") == "resolved")
        assert len(driver.find_elements(By.CSS_SELECTOR, "#alerts > li")) == 1
        assert driver.find_element(By.CSS_SELECTOR, voice).get_attribute("data-alert") is None

        # The connection drops: "Disconnected, reconnecting…", then live again with the
        # kept token; the fresh (empty) snapshot leaves the resolved row as history.
        gateway.call(gateway.drop_connections)
        wait_for(driver, lambda d: text_of(d, "#connection") == "Disconnected, reconnecting…")
        gateway.call(gateway.accept_again)
        wait_for(driver, lambda d: text_of(d, "#connection") == "live")
        assert sum(m == {"type": "auth", "token": TOKEN} for m in gateway.received) == 2
        rows = driver.find_elements(By.CSS_SELECTOR, "#alerts > li")
        assert [r.get_attribute("id") for r in rows] == [f"alert-{ALERT_ID}"]
        assert rows[0].get_attribute("data-status") == "resolved"

        # A reload keeps the tab's token: live again without the form.
        driver.refresh()
        wait_for(driver, lambda d: text_of(d, "#connection") == "live")
        assert not driver.find_element(By.ID, "sign-in-form").is_displayed()
        assert sum(m == {"type": "auth", "token": TOKEN} for m in gateway.received) == 3

        errors = [line for line in console_log(driver) if line.startswith("SEVERE")]
        assert errors == []
