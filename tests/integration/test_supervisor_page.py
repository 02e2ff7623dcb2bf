"""The supervisor page (alerts/static) in headless Chromium, served by a real `ccmon gateway`
process on the session's Redis.

Alerts and KPI tiles are put in Redis with the workers' own calls (`RedisStore.publish`,
`RedisStore.put_tiles`); the gateway serves the page, authenticates it and forwards them, as in
production. Selenium's calls block, so every one runs in a thread (`Page`) and the event loop
stays free. The gateway's protocol without a browser is tested in test_gateway.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By

from ccmon.alerts.store import Message, now_ms
from ccmon.launch import scrape, total
from tests.support.alerting import TOKENS, AlertStack, alert, resolved
from tests.support.browser import browser, console_log, wait_for

T = TypeVar("T")
WAIT_SECONDS = 30.0
ALICE = TOKENS["alice"][0]
SUMMARY = "<b>Billing</b> queue above 10 waiting <img src=x onerror=alert(1)>"


class Page:
    """The page in a headless Chromium. Selenium's calls block: each runs in a thread."""

    def __init__(self, driver: WebDriver) -> None:
        self.driver = driver

    async def do(self, step: Callable[..., T], *args: Any) -> T:
        """`step(driver, *args)`, one of the functions below."""
        return await asyncio.to_thread(step, self.driver, *args)

    async def until(self, predicate: Callable[[WebDriver], T], what: str) -> T:
        return await asyncio.to_thread(wait_for, self.driver, predicate, WAIT_SECONDS, what)


@pytest.fixture
async def page(tmp_path: Path) -> AsyncIterator[Page]:
    session = browser(tmp_path)
    driver = await asyncio.to_thread(session.__enter__)
    yield Page(driver)
    await asyncio.to_thread(session.__exit__, None, None, None)


# -- steps and views: plain Selenium, run through Page.do / Page.until -------------------------
def text_of(driver: WebDriver, selector: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, selector).text


def displayed(driver: WebDriver, element_id: str) -> bool:
    return driver.find_element(By.ID, element_id).is_displayed()


def is_live(driver: WebDriver) -> bool:
    return text_of(driver, "#connection") == "live"


def stored_token(driver: WebDriver) -> str | None:
    return driver.execute_script("return sessionStorage.getItem('ccmon.token')")


def sign_in(driver: WebDriver, token: str) -> None:
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.ID, "sign-in").click()


def acknowledge(driver: WebDriver, alert_id: str) -> None:
    driver.find_element(By.CSS_SELECTOR, f"#alert-{alert_id} button.ack").click()


def severe(driver: WebDriver) -> list[str]:
    """The console's errors since the last call."""
    return [line for line in console_log(driver) if line.startswith("SEVERE")]


# Read in one script, so a view is never half before and half after a message.
ROWS = """return [...document.querySelectorAll('#alerts > li')].map((li) => {
  const summary = li.querySelector('.summary'), acked = li.querySelector('.acked');
  return {id: li.id, status: li.dataset.status, severity: li.dataset.severity,
          text: li.innerText, summary: summary.textContent, markup: summary.children.length,
          acked: acked && acked.textContent, button: li.querySelector('button.ack') !== null};
});"""
TILES = """const tiles = {};
for (const tile of document.querySelectorAll('#tiles .tile')) {
  const shown = {alert: tile.dataset.alert || null};
  for (const row of tile.querySelectorAll('[data-metric]')) {
    shown[row.dataset.metric] = row.querySelector('dd').textContent;
  }
  tiles[`${tile.dataset.queue}/${tile.dataset.channel}`] = shown;
}
return tiles;"""


def rows(driver: WebDriver) -> dict[str, dict[str, Any]]:
    """The alert list as shown, by alert id (the row's element id is `alert-<id>`)."""
    listed = driver.execute_script(ROWS)
    shown = {row.pop("id").removeprefix("alert-"): row for row in listed}
    assert len(shown) == len(listed), "an alert shown twice"
    return shown


def tiles(driver: WebDriver) -> dict[str, dict[str, str | None]]:
    """The KPI tiles as shown, by "queue/channel": each metric's text, and `alert`."""
    return driver.execute_script(TILES)


def when(view: Callable[[WebDriver], T], condition: Callable[[T], object]
         ) -> Callable[[WebDriver], T | None]:
    """A predicate for Page.until: what `view` shows, once `condition` holds for it."""
    def predicate(driver: WebDriver) -> T | None:
        seen = view(driver)
        return seen if condition(seen) else None
    return predicate


def tile(queue: str, channel: str, *, age_ms: int = 0, **figures: object) -> Message:
    """A KPI tile as a worker writes it."""
    return {"queue": queue, "channel": channel, "window": "5m", "at": now_ms() - age_ms,
            "waiting": 3, "oldest_wait_seconds": 41.5, "in_conversation": 7, "on_hold": 1,
            "service_level_ratio": None, "abandon_ratio": 0.05,
            "answer_wait_seconds_avg": 12.3, **figures}


# -- the tests ---------------------------------------------------------------------------------
async def test_a_supervisor_sees_the_alerts_and_figures_of_their_queues_live(
        stack: AlertStack, page: Page) -> None:
    store = stack.store
    firing = alert("billing", summary=SUMMARY)
    await store.publish([firing, alert("sales")])  # firing before anyone signs in
    gateway = await asyncio.to_thread(stack.gateway)

    await page.do(WebDriver.get, gateway.http_url + "/")
    assert await page.do(lambda d: d.title) == "ccmon — supervisor"
    assert await page.do(text_of, "h1") == "ccmon — supervisor"
    await page.until(lambda d: displayed(d, "token"), "the sign-in form")
    assert await page.do(lambda d: d.find_element(By.ID, "token").get_attribute("type")) == (
        "password")
    assert not await page.do(displayed, "dashboard")

    # A wrong token: the gateway closes with 4401, the page says so and shows the form again.
    await page.do(sign_in, "wrong")
    await page.until(lambda d: "Token refused" in text_of(d, "#status"), "Token refused")
    await page.until(lambda d: displayed(d, "sign-in-form"), "the form again")
    assert await page.do(stored_token) is None
    metrics = await asyncio.to_thread(scrape, gateway.http_url + "/metrics")
    assert total(metrics, "ccmon_gateway_auth_failures_total") == 1

    # Alice's token: her name and queue, "live", and the snapshot: billing's alert, not sales'.
    await page.do(sign_in, ALICE)
    await page.until(is_live, "live")
    assert await page.do(text_of, "#user") == "alice · billing"
    assert not await page.do(displayed, "sign-in-form")
    assert await page.do(stored_token) == ALICE
    shown = await page.do(rows)
    assert list(shown) == [firing["id"]]
    row = shown[firing["id"]]
    assert (row["status"], row["severity"]) == ("firing", "warning")
    assert row["summary"] == SUMMARY and row["markup"] == 0  # text, never markup
    for text in ("long-queue", "WARNING", "queue=billing", "channel=voice", "12 (threshold 10)"):
        assert text in row["text"]

    # Transitions as they are published. Sales' comes first: the gateway forwards in order, so
    # had it been sent to alice it would be on the page once billing's later one is.
    sales = alert("sales")
    await store.publish([sales])
    later = alert("billing", channel="chat")
    await store.publish([later])
    shown = await page.until(when(rows, lambda r: later["id"] in r), "the later alert")
    assert sorted(shown) == sorted([firing["id"], later["id"]])
    assert shown[later["id"]]["status"] == "firing"

    # KPI tiles, pushed once a second: only alice's queue, none older than 30 s.
    await store.put_tiles({"billing\x1fvoice": tile("billing", "voice"),
                           "billing\x1fchat": tile("billing", "chat", age_ms=60_000),
                           "sales\x1fvoice": tile("sales", "voice")})
    figures = await page.until(when(tiles, bool), "the tiles")
    assert figures == {"billing/voice": {
        "alert": "warning",  # the firing alert on billing/voice
        "waiting": "3", "oldest_wait_seconds": "41.5 s", "in_conversation": "7", "on_hold": "1",
        "service_level_ratio": "no data", "abandon_ratio": "5 %",
        "answer_wait_seconds_avg": "12.3 s"}}
    assert await page.do(text_of, "#kpi-window") == "(ratios over 5m)"
    await store.put_tiles({"billing\x1fvoice": tile("billing", "voice", waiting=4,
                                                    service_level_ratio=0.825)})
    figures = await page.until(when(tiles, lambda t: t["billing/voice"]["waiting"] == "4"),
                               "the tile updated")
    assert list(figures) == ["billing/voice"]  # updated in place
    assert figures["billing/voice"]["service_level_ratio"] == "82.5 %"

    # Acknowledge: through the gateway into the store, and back to the page from the store.
    await page.do(acknowledge, firing["id"])
    shown = await page.until(when(rows, lambda r: r[firing["id"]]["acked"]), "the ack")
    row = shown[firing["id"]]
    assert row["acked"] == "Acknowledged by alice"
    assert not row["button"] and row["status"] == "firing"
    assert (await store.get(firing["id"]))["acked_by"] == "alice"
    assert (await page.do(rows))[later["id"]]["button"]

    # Resolved: the same row, updated in place, still acknowledged; the tile's mark goes.
    await store.publish([resolved(firing)])
    shown = await page.until(when(rows, lambda r: r[firing["id"]]["status"] == "resolved"),
                             "the resolution")
    assert sorted(shown) == sorted([firing["id"], later["id"]])  # no duplicate
    assert shown[firing["id"]]["acked"] == "Acknowledged by alice"
    assert "Ended" in shown[firing["id"]]["text"]
    assert (await page.do(tiles))["billing/voice"]["alert"] is None

    # A reload keeps the tab's token: live again without the form, from a fresh snapshot.
    await page.do(WebDriver.refresh)
    await page.until(is_live, "live after the reload")
    assert not await page.do(displayed, "sign-in-form")
    assert await page.do(text_of, "#user") == "alice · billing"
    assert list(await page.do(rows)) == [later["id"]]

    assert await page.do(severe) == []


async def test_the_page_reconnects_to_a_restarted_gateway_and_resyncs_from_its_snapshot(
        stack: AlertStack, page: Page) -> None:
    store = stack.store
    before = alert("billing")
    await store.publish([before])
    gateway = await asyncio.to_thread(stack.gateway)
    await page.do(WebDriver.get, gateway.http_url + "/")
    await page.until(lambda d: displayed(d, "token"), "the sign-in form")
    await page.do(sign_in, ALICE)
    await page.until(is_live, "live")
    assert list(await page.do(rows)) == [before["id"]]
    assert await page.do(severe) == []

    await asyncio.to_thread(gateway.stop)
    await page.until(lambda d: text_of(d, "#connection") == "Disconnected, reconnecting…",
                     "the page to notice")
    # While no gateway runs: billing's alert resolves, another fires, and one of sales'.
    during = alert("billing")
    await store.publish([resolved(before), during, alert("sales")])

    await asyncio.to_thread(stack.gateway, gateway.port)  # TIME_WAIT connections do not keep it off
    await page.until(is_live, "live again")
    # The fresh snapshot is the truth: the alert that ended meanwhile is gone.
    shown = await page.do(rows)
    assert list(shown) == [during["id"]]
    assert shown[during["id"]]["status"] == "firing"
    assert await page.do(text_of, "#user") == "alice · billing"
    assert not await page.do(displayed, "sign-in-form")

    # Only the page's attempts while nothing listened on the port.
    refused = f"WebSocket connection to '{gateway.ws_url}' failed"
    assert [line for line in await page.do(severe) if refused not in line] == []
