"""The agents view through `ccmon gateway` processes on a real Redis: partials made by the
workers' own `partial` from the boards of test_agents_view.py's centre, put in Redis with the
workers' own call (`RedisStore.put_agents`); the gateway merges them for its window and sends
each subscribed client its queues' agents when they change. The worker's side on Kafka is in
test_agents_page.py."""

from __future__ import annotations

import orjson

from ccmon.alerts.agents_view import partial
from ccmon.alerts.store import now_ms
from tests.support.alerting import AlertStack, Client, wait_for
from tests.unit.test_agents_view import A7_15M, B2_15M, agent, whole_centre
from tests.unit.test_engine import ms


async def partials_in_redis(stack: AlertStack, **changes_at: int) -> dict[str, dict]:
    """The centre's partials at 420 s, one per facts partition, as fresh as written now."""
    centre = whole_centre()
    parts = {queue: partial(board, ms(420), now_ms() - changes_at.get(queue, 0))
             for queue, board in centre.boards.items()}
    await stack.store.put_agents(parts)
    return parts


async def subscribed(stack: AlertStack, gateway, name: str, *topics: str) -> Client:
    client = await stack.client(gateway, name)
    await client.connection.send(orjson.dumps({"type": "subscribe", "topics": list(topics)}))
    return client


def agents_messages(client: Client) -> list[list[dict]]:
    return [m["agents"] for m in client.messages if m.get("type") == "agents"]


async def settled(client: Client) -> None:
    """Every message queued for the client before now has arrived (its queue is in order)."""
    before = sum(m.get("type") == "pong" for m in client.messages)
    await client.connection.send('{"type":"ping"}')
    await client.until(lambda m: m.get("type") == "pong"
                       and sum(x.get("type") == "pong" for x in client.messages) > before,
                       "the pong")


async def test_each_token_gets_its_queues_agents_and_again_only_on_a_change(stack):
    await partials_in_redis(stack)
    gateway = stack.gateway()
    alice = await subscribed(stack, gateway, "alice", "agents")
    carol = await subscribed(stack, gateway, "carol", "agents")
    plain = await stack.client(gateway, "bob")  # no subscription: the contract's messages only
    await carol.until(lambda m: m.get("type") == "agents" and m["agents"] == [A7_15M, B2_15M],
                      "every agent")
    await alice.until(lambda m: m.get("type") == "agents"
                      and m["agents"] == [{**A7_15M, "queues": ["billing"]}], "a7 as billing's")
    assert {m["window"] for m in alice.messages if m.get("type") == "agents"} == {"15m"}

    # b2 goes offline on sales' partition: carol sees it, alice's view has not changed.
    centre = whole_centre()
    centre.feed("cc.agents:0", [agent("b2", 410, "offline", "sales")])
    await stack.store.put_agents({"sales": partial(centre.boards["sales"], ms(420), now_ms())})
    await carol.until(lambda m: m.get("type") == "agents"
                      and m["agents"] == [A7_15M, {**B2_15M, "state": "offline",
                                                   "since": "2026-11-22T09:06:50Z"}],
                      "b2 offline")
    await settled(alice)
    assert len(agents_messages(alice)) == 1
    await settled(plain)
    assert agents_messages(plain) == []


async def test_a_stale_partial_is_left_out(stack):
    """A partition whose owner stopped writing 30 s ago or more: sales' figures are gone,
    and with them b2 (listed only there)."""
    await partials_in_redis(stack, sales=31_000)
    gateway = stack.gateway()
    carol = await subscribed(stack, gateway, "carol", "agents")
    message = await carol.until(lambda m: m.get("type") == "agents", "the agents")
    assert message["agents"] == [{**A7_15M, "queues": ["billing"], "handled": 2, "transferred": 0,
                                  "handle_seconds_avg": 115.0, "hold_seconds_avg": 35.0}]


async def test_a_window_the_workers_lack_is_said_once_and_nothing_is_sent(stack):
    await partials_in_redis(stack)
    stack.settings["agents_window"] = "30m"
    gateway = stack.gateway()
    carol = await subscribed(stack, gateway, "carol", "agents", "kpis")
    line = "the agents window 30m (--agents-window) is not one of the workers' windows"
    await wait_for(_async(lambda: line in gateway.log()), "the line in the gateway's log")
    # Three more pushes (the tiles come every second, with or without tiles to show).
    kpis = sum(m.get("type") == "kpis" for m in carol.messages)
    await carol.until(lambda m: sum(x.get("type") == "kpis" for x in carol.messages) >= kpis + 3,
                      "three more pushes")
    assert gateway.log().count(line) == 1
    assert agents_messages(carol) == []


async def test_unknown_topics_are_refused_and_the_connection_goes_on(stack):
    gateway = stack.gateway()
    alice = await stack.client(gateway, "alice")
    for topics in (["agents", "alerts"], "agents", [["agents"]]):
        await alice.connection.send(orjson.dumps({"type": "subscribe", "topics": topics}))
        error = await alice.until(lambda m: m.get("type") == "error", "the error")
        assert error["error"] == "topics must be a list of kpis, agents"
        alice.messages.remove(error)
    await settled(alice)


def _async(condition):
    async def check() -> bool:
        return condition()
    return check
