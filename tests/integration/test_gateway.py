"""`ccmon gateway` processes on a real Redis: authentication, scoping, snapshot, ack, fan-out
across gateways, a gateway killed. Transitions are put in Redis with the workers' own call
(`RedisStore.publish`); the worker's side is tested in test_alerts_live.py."""

from __future__ import annotations

import asyncio
import secrets
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest
from websockets.exceptions import ConnectionClosed

from ccmon.launch import scrape, total, wait_until
from tests.support.alerting import TOKENS, AlertStack, Client, alert, is_alert, resolved, wait_for


async def closed_with(open_client: Callable, seconds: float = 15.0) -> tuple[int, list]:
    """The close code of a connection that must be refused, and what it received first."""
    client = await open_client()
    received = []
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            received.append(await client.until(lambda m: True, "anything", seconds))
    return closed.value.rcvd.code, received


async def test_a_bad_or_missing_token_is_closed_with_4401_and_sent_nothing(stack):
    gateway = stack.gateway()
    from websockets.asyncio.client import connect

    async def wrong_header():
        return Client(await connect(gateway.ws_url,
                                    additional_headers={"Authorization": "Bearer nope"}))

    async def wrong_first_message():
        client = Client(await connect(gateway.ws_url))
        await client.connection.send('{"type":"auth","token":"alice"}')
        return client

    async def silent():  # no header, no auth message: refused after 5 s
        return Client(await connect(gateway.ws_url))

    for opener in (wrong_header, wrong_first_message, silent):
        assert await closed_with(opener) == (4401, []), opener.__name__
    assert total(scrape(gateway.http_url + "/metrics"), "ccmon_gateway_auth_failures_total") == 3


async def test_snapshot_then_only_the_transitions_of_ones_own_queues(stack):
    billing, sales = alert("billing"), alert("sales")
    await stack.store.publish([billing, sales])
    gateway = stack.gateway()
    alice = await stack.client(gateway, "alice", header=False)  # the browsers' way
    bob = await stack.client(gateway, "bob")
    carol = await stack.client(gateway, "carol")
    assert [a["id"] for a in alice.messages[0]["alerts"]] == [billing["id"]]
    assert alice.messages[0]["user"] == "alice"
    assert [a["id"] for a in bob.messages[0]["alerts"]] == [sales["id"]]
    assert sorted(a["id"] for a in carol.messages[0]["alerts"]) == sorted(
        [billing["id"], sales["id"]])

    later_sales = alert("sales")
    await stack.store.publish([resolved(billing), later_sales])
    ended = await alice.until(is_alert(billing["id"], status="resolved"), "billing resolved")
    assert ended["ends_at"] is not None and ended["labels"] == billing["labels"]
    await bob.until(is_alert(later_sales["id"]), "the later sales alert")
    await carol.until(is_alert(later_sales["id"]), "the later sales alert")
    # Transitions come in order: had bob been sent billing's, it would be here by now.
    assert [m["labels"]["queue"] for m in bob.alerts()] == ["sales"]
    assert len(carol.alerts()) == 2
    await alice.connection.send('{"type":"ping"}')
    await alice.until(lambda m: m["type"] == "pong", "pong")
    assert alice.alerts(id=later_sales["id"]) == []


async def test_a_repeated_transition_is_delivered_once_and_a_resolved_alert_stays_resolved(
        stack):
    gateway = stack.gateway()
    carol = await stack.client(gateway, "carol")
    first = alert("billing")
    store = stack.store
    assert await store.publish([first, first]) == 1  # a worker re-publishing after a crash
    assert await store.publish([resolved(first), first, resolved(first)]) == 1
    marker = alert("sales")
    await store.publish([marker])
    await carol.until(is_alert(marker["id"]), "the marker")
    assert [m["status"] for m in carol.alerts(id=first["id"])] == ["firing", "resolved"]


async def test_an_ack_reaches_every_client_of_the_queue_on_every_gateway(stack):
    one, two = stack.gateway(), stack.gateway()
    billing = alert("billing")
    await stack.store.publish([billing])
    alice = await stack.client(one, "alice")
    carol = await stack.client(two, "carol")
    bob = await stack.client(two, "bob")

    await bob.connection.send(f'{{"type":"ack","id":"{billing["id"]}"}}')
    refused = await bob.until(lambda m: m["type"] == "error", "an error")
    assert refused == {"type": "error", "error": "no such alert", "id": billing["id"]}

    await alice.connection.send(f'{{"type":"ack","id":"{billing["id"]}"}}')
    for client in (alice, carol):
        acked = await client.until(is_alert(billing["id"], acked_by="alice"), "the ack")
        assert acked["status"] == "firing"
    await carol.connection.send(f'{{"type":"ack","id":"{billing["id"]}"}}')
    again = await carol.until(lambda m: m["type"] == "error", "an error")
    assert again["error"] == "already acknowledged by alice"
    # The acknowledgement is kept: the resolution carries it, and so does a new snapshot.
    late = await stack.client(one, "carol")
    assert late.messages[0]["alerts"][0]["acked_by"] == "alice"
    await stack.store.publish([resolved(billing)])
    ended = await alice.until(is_alert(billing["id"], status="resolved"), "the resolution")
    assert ended["acked_by"] == "alice"
    assert bob.alerts() == []
    assert total(scrape(one.http_url + "/metrics"), "ccmon_gateway_clients") == 2


async def test_with_one_gateway_killed_every_alert_still_arrives_exactly_once(stack):
    one, two = stack.gateway(), stack.gateway()
    on_one = await stack.client(one, "carol")
    on_two = await stack.client(two, "carol")
    before = [alert("billing") for _ in range(3)]
    await stack.store.publish(before)
    for client in (on_one, on_two):
        await client.until(is_alert(before[-1]["id"]), "the last alert before the kill")

    one.process.send_signal(signal.SIGKILL)
    one.process.wait()
    with pytest.raises(ConnectionClosed):
        await on_one.until(lambda m: False, "nothing: the gateway is dead", 30)

    after = [alert("sales") for _ in range(3)]
    await stack.store.publish([resolved(before[0]), *after])
    await on_two.until(is_alert(after[-1]["id"]), "the last alert after the kill")
    ids = [(m["id"], m["status"]) for m in on_two.alerts()]
    assert len(ids) == len(set(ids)) == 7  # 3 + 1 resolved + 3, none twice
    # The supervisor of the dead gateway reconnects to the other one: a fresh snapshot.
    again = await stack.client(two, "carol")
    assert sorted(a["id"] for a in again.messages[0]["alerts"]) == sorted(
        m["id"] for m in [*before[1:], *after])
    metrics = scrape(two.http_url + "/metrics")
    assert total(metrics, "ccmon_alert_delivery_seconds_count") == 7  # alerts sent by two


async def test_a_client_that_stops_reading_is_dropped_and_never_delays_the_others(stack):
    from websockets.asyncio.client import connect

    gateway = stack.gateway()
    fast = await stack.client(gateway, "carol")
    # max_queue=1: once a message waits unread, the library stops reading the socket, so the
    # gateway's writes to it block once the kernel's buffers are full, as with a browser on
    # a saturated link.
    slow = Client(await connect(gateway.ws_url, max_queue=1, additional_headers={
        "Authorization": f"Bearer {TOKENS['carol'][0]}"}))
    stack.clients.append(slow)
    metrics_url = gateway.http_url + "/metrics"
    published = []
    while not total(scrape(metrics_url), "ccmon_gateway_slow_clients_dropped_total"):
        assert len(published) < 20_000, "the slow client was never dropped"
        batch = [alert("billing", summary=secrets.token_hex(5_000)) for _ in range(250)]
        await stack.store.publish(batch)
        published += batch
        await fast.until(is_alert(batch[-1]["id"]), "the batch's last alert", 60)
    assert [m["id"] for m in fast.alerts()] == [m["id"] for m in published]
    with pytest.raises(ConnectionClosed):  # after what its buffers held
        while True:
            await slow.until(lambda m: False, "nothing: it is dropped", 60)
    assert len(slow.alerts()) < len(published)


# -- hostile or broken clients ----------------------------------------------------------------
def opener(url: str, headers: list[tuple[str, str]] | None = None, first: str | bytes | None = None,
           local_addr: tuple[str, int] | None = None) -> Callable:
    """A connection attempt with these handshake headers, then this first message."""
    from websockets.asyncio.client import connect

    async def open_client() -> Client:
        extra = {} if local_addr is None else {"local_addr": local_addr}
        client = Client(await connect(url, additional_headers=headers, **extra))
        if first is not None:
            await client.connection.send(first)
        return client

    return open_client


def bearer(name: str) -> tuple[str, str]:
    return ("Authorization", f"Bearer {TOKENS[name][0]}")


async def test_a_refused_handshake_closes_with_4401_whatever_the_client_sent(stack):
    gateway = stack.gateway()
    url = gateway.ws_url
    attempts = {
        "two headers, right then wrong": opener(url, [bearer("carol"), ("Authorization", "x")]),
        "two right headers": opener(url, [bearer("carol"), bearer("alice")]),
        "bearer without a token": opener(url, [("Authorization", "Bearer ")]),
        "basic": opener(url, [("Authorization", "Basic Y2Fyb2w6eA==")]),
        "latin-1 token": opener(url, [("Authorization", "Bearer caf\xe9")]),
        "deeply nested first message": opener(url, first="[" * 30_000),
        "binary garbage first": opener(url, first=b"\xff\xfe\x00"),
        "a token that is a list": opener(
            url, first=f'{{"type":"auth","token":["{TOKENS["carol"][0]}"]}}'),
    }
    for what, open_client in attempts.items():
        assert await closed_with(open_client) == (4401, []), what
    assert total(scrape(gateway.http_url + "/metrics"),
                 "ccmon_gateway_auth_failures_total") == len(attempts)
    assert "Traceback" not in gateway.log_path.read_text()


async def test_a_bad_message_gets_an_error_and_the_connection_goes_on(stack):
    gateway = stack.gateway()
    carol = await stack.client(gateway, "carol")
    bad = ["[" * 30_000, '{"a":' * 10_000, b"\xff\xfe", "[1, 2]", '"text"', '{"type": [1]}',
           '{"type": "' + "x" * 1000 + '"}', '{"type":"ack","id":{"deep":[[[]]]}}']
    for raw in bad:
        await carol.connection.send(raw)
    await carol.connection.send('{"type":"ping"}')
    await carol.until(lambda m: m["type"] == "pong", "the pong after the bad messages")
    errors = [m for m in carol.messages if m["type"] == "error"]
    assert len(errors) == len(bad)  # one each, in order, before the pong
    assert [m["type"] for m in carol.messages] == ["snapshot", *["error"] * len(bad), "pong"]
    assert all(len(m["error"]) < 100 for m in errors)  # nothing echoed back at length
    assert total(scrape(gateway.http_url + "/metrics"),
                 "ccmon_gateway_bad_messages_total") == len(bad)
    assert "Traceback" not in gateway.log_path.read_text()


async def test_wrong_tokens_from_one_address_are_slowed_down_and_no_other(stack):
    from ccmon.alerts.throttle import BURST, REFILL_SECONDS

    gateway = stack.gateway()
    wrong = opener(gateway.ws_url, [("Authorization", "Bearer guess")])
    attempts = 4 * BURST
    started = time.monotonic()
    for _ in range(attempts):
        assert await closed_with(wrong) == (4401, [])
    elapsed = time.monotonic() - started
    metrics = scrape(gateway.http_url + "/metrics")
    assert total(metrics, "ccmon_gateway_auth_failures_total") == attempts
    unchecked = total(metrics, "ccmon_gateway_auth_throttled_total")
    # A burst of tries, then one per refill period: the other tokens were not looked at.
    assert attempts - unchecked <= BURST + 1 + elapsed // REFILL_SECONDS
    # A supervisor at another address signs in as usual.
    elsewhere = await opener(gateway.ws_url, [bearer("carol")], local_addr=("127.0.0.2", 0))()
    stack.clients.append(elsewhere)
    await elsewhere.until(lambda m: m["type"] == "snapshot", "carol's snapshot")


def http(url: str, method: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as refused:
        return refused.code, dict(refused.headers), refused.read()


def test_http_methods_other_than_get_and_head_are_refused_with_405(stack):
    gateway = stack.gateway()
    for path in ("/", "/metrics", "/healthz", "/ws", "/nowhere"):
        for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
            status, headers, _ = http(gateway.http_url + path, method)
            assert (status, headers.get("Allow")) == (405, "GET, HEAD"), (method, path)
    for path in ("/", "/healthz"):
        status, headers, body = http(gateway.http_url + path, "HEAD")
        _, _, page = http(gateway.http_url + path, "GET")
        assert (status, body, int(headers["Content-Length"])) == (200, b"", len(page)), path


# -- Redis lost ---------------------------------------------------------------------------------
def store_up(gateway) -> float:
    return total(scrape(gateway.http_url + "/metrics"), "ccmon_alert_store_up")


async def test_a_gateway_without_redis_is_unhealthy_and_after_a_wipe_tells_nothing_twice(
        tmp_path):
    from tests.support.servers import http_ok, start_redis

    redis = start_redis(tmp_path / "redis-a")
    stack = AlertStack(redis.url, tmp_path)
    try:
        gateway = stack.gateway()
        billing, sales = alert("billing"), alert("sales")
        await stack.store.publish([billing, sales])
        carol = await stack.client(gateway, "carol")
        await carol.connection.send(f'{{"type":"ack","id":"{billing["id"]}"}}')
        await carol.until(is_alert(billing["id"], acked_by="carol"), "the ack")
        told = [(m["id"], m["acked_by"]) for m in carol.alerts()]  # all: the ack came last
        assert store_up(gateway) == 1

        redis.stop()
        await asyncio.to_thread(
            wait_until, lambda: not http_ok(gateway.http_url + "/healthz")
            and store_up(gateway) == 0, 30, "the gateway's /healthz to say Redis is away")
        redis = start_redis(tmp_path / "redis-b", port=redis.port)  # empty
        await asyncio.to_thread(
            wait_until, lambda: http_ok(gateway.http_url + "/healthz") and store_up(gateway),
            30, "the gateway's /healthz to be well again")

        await stack.store.publish([billing, sales])  # as their workers do (test_alerts_live)

        async def acked_again() -> bool:
            return ((await stack.store.get(billing["id"])) or {}).get("acked_by") == "carol"

        await wait_for(acked_again, "the gateway to put carol's ack back")
        late = await stack.client(stack.gateway(), "carol")
        assert {(a["id"], a["acked_by"]) for a in late.messages[0]["alerts"]} == {
            (billing["id"], "carol"), (sales["id"], None)}
        marker = alert("sales")
        await stack.store.publish([marker])
        await carol.until(is_alert(marker["id"]), "an alert after the wipe")
        assert [(m["id"], m["acked_by"]) for m in carol.alerts()] == [
            *told, (marker["id"], None)]  # after the wipe, only the new alert
    finally:
        await stack.close()
        redis.stop()
