"""The agents view end to end on real servers: the centre of test_agents_view.py into Kafka, a
real worker (event clock) writing its partials to Redis, a `ccmon gateway` process merging
them, supervisors on the raw WebSocket and on the page in headless Chromium. The figures are
those worked out by hand there; a token scoped to one queue never sees another's agents.
Then four hours of simulated traffic through a worker killed twice: the view is the pure
engine's."""

from __future__ import annotations

import asyncio
import math
import signal
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By

from ccmon.alerts.agents_view import merge, partial
from ccmon.alerts.state import rfc3339
from ccmon.figures import engine_pipeline
from ccmon.launch import scrape, total, try_scrape, wait_until
from tests.integration import test_supervisor_page
from tests.integration.test_supervisor_page import Page, is_live, severe, sign_in, when
from tests.integration.test_worker import mixed, simulated
from tests.support.alerting import TOKENS, Client, Gateway, write_tokens
from tests.support.deployment import DEADLINE, Deployment
from tests.unit.test_agents_view import A7_15M, B2_15M, SOURCES

pytestmark = pytest.mark.kafka

T0 = datetime.fromisoformat("2026-11-22T09:00:00+00:00")  # the centre's first second
LAST = 400  # its latest event, seconds after T0
page = test_supervisor_page.page  # the fixture: a headless Chromium


@pytest.fixture
async def live(kafka, redis_server, tmp_path: Path) -> AsyncIterator[tuple[Deployment, Gateway]]:
    deployment = Deployment(kafka, tmp_path, redis_url=redis_server.url)
    gateway = await asyncio.to_thread(
        Gateway, {"redis_url": redis_server.url, "app_id": deployment.values["app_id"],
                  "tokens": write_tokens(tmp_path / "tokens.yaml")}, tmp_path / "gateway.log")
    yield deployment, gateway
    await asyncio.to_thread(gateway.stop)
    await asyncio.to_thread(deployment.stop_all)


def moved(ts: str, shift: timedelta) -> str:
    return rfc3339(round((datetime.fromisoformat(ts) + shift).timestamp() * 1000))


def lines(events: list[dict], shift: timedelta) -> list[bytes]:
    """Events `shift` later, in ts order (a contact's keep theirs)."""
    later = [{**event, "ts": moved(event["ts"], shift)} for event in events]
    return [orjson.dumps(event) for event in sorted(later, key=lambda event: event["ts"])]


def centre_events() -> list[dict]:
    return [{**event, **({"channel": channel} if channel else {})}
            for channel, events in SOURCES.values() for event in events]


def expected(agent: dict, shift: timedelta, **changes: Any) -> dict:
    return {**agent, "since": moved(agent["since"], shift), **changes}


async def subscribed(gateway: Gateway, name: str) -> Client:
    client = await Client.open(gateway.ws_url, name)
    await client.until(lambda m: m["type"] == "snapshot", "the snapshot")
    await client.connection.send(orjson.dumps({"type": "subscribe", "topics": ["agents"]}))
    return client


def agents_of(client: Client) -> list[list[dict]]:
    return [m["agents"] for m in client.messages if m.get("type") == "agents"]


# The table as shown, rows in order: each cell's text by column, and aria-sort per column.
TABLE = """const rows = [...document.querySelectorAll('#agents-body tr')].map((tr) => {
  const cells = {};
  for (const cell of tr.children) cells[cell.dataset.key] = cell.textContent;
  return cells;
});
const sort = {};
for (const th of document.querySelectorAll('#agents thead th')) {
  sort[th.dataset.key] = th.getAttribute('aria-sort');
}
return {rows, sort, shown: !document.getElementById('agents').hidden};"""


def table(driver: WebDriver) -> dict[str, Any]:
    return driver.execute_script(TABLE)


def ids(driver: WebDriver) -> list[str]:
    return [row["agent_id"] for row in table(driver)["rows"]]


def sort_by(driver: WebDriver, key: str) -> None:
    driver.find_element(By.CSS_SELECTOR, f'#agents th[data-key="{key}"] button').click()


def row(agent_id: str, state: str, queues: str, handled: str, handle: str, hold: str,
        transferred: str, csat: str) -> dict[str, str]:
    return {"agent_id": agent_id, "state": state, "queues": queues, "handled": handled,
            "handle_seconds_avg": handle, "hold_seconds_avg": hold, "transferred": transferred,
            "csat_ratio": csat}


def without_time(rows: list[dict]) -> list[dict]:
    return [{key: text for key, text in shown.items() if key != "since"} for shown in rows]


async def test_supervisors_see_their_queues_agents_live_and_sortable(live, page: Page) -> None:
    deployment, gateway = live
    # The centre moved so that it ends a second ago: times in state are minutes, and tick.
    shift = timedelta(seconds=math.floor(time.time()) - 1 - LAST - T0.timestamp())
    a7, b2 = expected(A7_15M, shift), expected(B2_15M, shift)
    await asyncio.to_thread(deployment.start_worker)
    clients = {name: await subscribed(gateway, name) for name in ("alice", "bob", "carol")}
    await deployment.send_async(lines(centre_events(), shift))

    # The raw WebSocket: each token its queues' agents, named by its queues only.
    wanted = {"carol": [a7, b2], "alice": [{**a7, "queues": ["billing"]}],
              "bob": [{**a7, "queues": ["sales"]}, b2]}
    for name, client in clients.items():
        message = await client.until(lambda m, name=name: m.get("type") == "agents"
                                     and m["agents"] == wanted[name], f"{name}'s agents",
                                     DEADLINE)
        assert message["window"] == "15m"

    # The page, as alice (billing): a7 only, the figures worked out by hand, time ticking.
    await page.do(WebDriver.get, gateway.http_url + "/")
    await page.do(sign_in, TOKENS["alice"][0])
    await page.until(is_live, "live")
    shown = await page.until(when(table, lambda t: t["rows"] and t["rows"][0]["handled"] == "3"),
                             "a7's figures")
    assert shown["shown"] and without_time(shown["rows"]) == [
        row("a7", "available", "billing", "3", "1 min 40 s", "30 s", "1", "0 %")]
    first = shown["rows"][0]["since"]
    assert first.endswith(" s") and "min" in first  # since 09:02:30 of the moved centre
    await page.until(when(table, lambda t: t["rows"][0]["since"] != first), "the time ticking")
    assert await page.do(lambda d: d.find_element(By.ID, "agents-window").text) == "(over 15m)"

    # b2 handles another chat of sales (60 s): carol sees it, alice still only a7.
    c5 = [{"event_id": f"c5-{n}", "type": kind, "ts": (T0 + timedelta(seconds=t)).isoformat(),
           "contact_id": "c5", "channel": "chat", **fields}
          for n, (t, kind, fields) in enumerate([
              (410, "contact.queued", {"queue": "sales"}),
              (420, "contact.answered", {"agent_id": "b2"}), (480, "contact.ended", {})])]
    await deployment.send_async(lines(c5, shift))
    b2_later = {**b2, "handled": 2, "handle_seconds_avg": 75.0}
    await clients["carol"].until(lambda m: m.get("type") == "agents"
                                 and m["agents"] == [a7, b2_later], "b2's second chat", DEADLINE)
    assert without_time((await page.do(table))["rows"]) == [
        row("a7", "available", "billing", "3", "1 min 40 s", "30 s", "1", "0 %")]
    # Never another queue's agent, nor its name, in any message alice got.
    assert {(agent["agent_id"], *agent["queues"]) for agents in agents_of(clients["alice"])
            for agent in agents} == {("a7", "billing")}

    # As bob (sales): both agents, updated in place; sorted by a click on a column's header.
    await page.do(lambda d: d.find_element(By.ID, "sign-out").click())
    await page.do(sign_in, TOKENS["bob"][0])
    shown = await page.until(when(table, lambda t: len(t["rows"]) == 2), "bob's agents")
    assert without_time(shown["rows"]) == [
        row("a7", "available", "sales", "3", "1 min 40 s", "30 s", "1", "0 %"),
        row("b2", "acw", "sales", "2", "1 min 15 s", "—", "0", "100 %")]
    assert shown["sort"]["agent_id"] == "ascending"
    await page.do(sort_by, "handled")
    assert await page.do(ids) == ["b2", "a7"]  # 2, 3
    assert (await page.do(table))["sort"] == {
        **dict.fromkeys(shown["sort"], "none"), "handled": "ascending"}
    await page.do(sort_by, "handled")
    assert await page.do(ids) == ["a7", "b2"]
    assert (await page.do(table))["sort"]["handled"] == "descending"
    await page.do(sort_by, "hold_seconds_avg")  # no data sorts last, either way
    assert await page.do(ids) == ["a7", "b2"]
    await page.do(sort_by, "hold_seconds_avg")
    assert await page.do(ids) == ["a7", "b2"]
    await page.do(sort_by, "since")  # by time in state: b2 since 200, a7 since 150
    assert await page.do(ids) == ["b2", "a7"]
    await page.do(sort_by, "csat_ratio")
    assert await page.do(ids) == ["a7", "b2"]  # 0 %, 100 %
    await page.do(sort_by, "state")
    assert await page.do(ids) == ["b2", "a7"]  # acw, available

    assert await page.do(severe) == []


def handled(worker) -> float:
    samples = try_scrape(worker.metrics_url) or {}
    return sum(total(samples, name) for name in (
        "ccmon_events_total", "ccmon_events_invalid_total", "ccmon_events_duplicate_total"))


async def test_a_worker_killed_twice_neither_loses_nor_double_counts_an_agent(live) -> None:
    """As test_worker's SIGKILL test, with the agents view of every queue (carol) compared
    with the pure engine's for the same events; the agent ids stay out of /metrics."""
    deployment, gateway = live
    lines, _ = mixed(simulated(seed=9, hours=4), seed=9)
    pipeline = engine_pipeline(lines, deployment.settings)
    wanted = merge([partial(pipeline.board, pipeline.intake.latest_ts, 0)], "15m")
    assert wanted and sum(agent["handled"] for agent in wanted) > 10
    first, second = lines[:len(lines) // 2], lines[len(lines) // 2:]
    carol = await subscribed(gateway, "carol")

    worker = await asyncio.to_thread(deployment.start_worker)
    await deployment.send_async(first)
    await asyncio.to_thread(wait_until, lambda: handled(worker) >= len(first), DEADLINE,
                            "the first half applied")
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    await deployment.send_async(second)
    worker = await asyncio.to_thread(deployment.start_worker)
    await asyncio.to_thread(wait_until, lambda: handled(worker) > 0, DEADLINE,
                            "the restarted worker to make progress", interval=0.02)
    worker.send_signal(signal.SIGKILL)
    worker.wait()

    worker = await asyncio.to_thread(deployment.start_worker)
    try:
        await carol.until(lambda m: m.get("type") == "agents" and m["agents"] == wanted,
                          "the engine's agents view", DEADLINE)
    except TimeoutError as timeout:
        views = [m["agents"] for m in carol.messages if m.get("type") == "agents"]
        pytest.fail(f"{str(timeout)[:200]}\nthe last view's agents that differ from the "
                    f"engine's: {differing(views[-1] if views else [], wanted)}\n"
                    f"{deployment.log_tail()}")
    labels = {value for _, pairs in (await asyncio.to_thread(scrape, worker.metrics_url))
              for _, value in pairs}
    assert labels.isdisjoint(agent["agent_id"] for agent in wanted)


def differing(view: list[dict], wanted: list[dict]) -> list[tuple]:
    """(agent, the view's row, the engine's row) for each agent whose rows differ."""
    got = {row["agent_id"]: row for row in view}
    want = {row["agent_id"]: row for row in wanted}
    return [(agent, got.get(agent), want.get(agent)) for agent in sorted(got.keys() | want.keys())
            if got.get(agent) != want.get(agent)][:10]
