"""Where alerts live between the workers that evaluate them and the gateways that deliver them.

Redis (`RedisStore`), shared by every worker and gateway of a deployment (`CCMON_APP_ID`):

- `…:alert:<id>`: a hash per alert (its message, its status, who acknowledged it); resolved
  ones expire after `HISTORY_SECONDS`;
- `…:firing`: the set of ids firing now, for a gateway's start-up snapshot;
- `…:events`: a stream with one entry per transition or acknowledgement. It is the fan-out:
  every gateway reads all of it from where it got to (`XREAD`), so a gateway that was slow or
  lost Redis for a while resumes without a gap, unlike pub/sub, which drops what a subscriber
  missed. The stream is capped at `STREAM_LENGTH` entries: the history.
- `…:tiles`: the latest KPI tiles per (queue, channel), for the supervisor page;
- `…:agents`: the latest partial of the agents view per facts partition (`agents_view.py`),
  each replaced whole by the partition's owner;
- `…:generation`: a random value set by the first worker or gateway to find it missing. Redis
  losing its data (a restart without persistence, a failover) takes it away, so a new value
  tells the workers to re-publish what is firing and the gateways to follow the new stream
  from its start.

A transition is written by one Lua script, so it is applied once however many times a worker
re-publishes it after a crash: a repeated status changes nothing, and a resolved alert never
fires again (a new cycle has a new id). Keys share a hash tag (`{app id}`): one cluster slot.

`MemoryStore` is the same in one process, for `ccmon demo` without Redis.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterable, Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from ccmon.errors import SettingsError
from ccmon.refusal import redis_refusal
from ccmon.security import redis_address

from .session import ACKED, ALREADY, UNKNOWN

HISTORY_SECONDS = 7 * 86400  # how long a resolved alert can still be looked up and acked
STREAM_LENGTH = 100_000  # transitions kept in the stream (approximately)

MEMORY_GENERATION = "memory"

TRANSITION = """
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'resolved' or status == ARGV[2] then return false end
local acked = redis.call('HGET', KEYS[1], 'acked_by') or ''
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'alert', ARGV[3], 'acked_by', acked)
if ARGV[2] == 'firing' then
  redis.call('SADD', KEYS[2], ARGV[1])
else
  redis.call('SREM', KEYS[2], ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[4])
end
return redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*',
                  'alert', ARGV[3], 'acked_by', acked, 'published_at', ARGV[6])
"""

ACK = """
local alert = redis.call('HGET', KEYS[1], 'alert')
if not alert then return {'unknown', ''} end
local acked = redis.call('HGET', KEYS[1], 'acked_by')
if acked ~= '' then return {'already', acked} end
redis.call('HSET', KEYS[1], 'acked_by', ARGV[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*',
           'alert', alert, 'acked_by', ARGV[1], 'published_at', ARGV[3])
return {'acked', ARGV[1]}
"""


GENERATION = """
local current = redis.call('GET', KEYS[1])
if current then return current end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
"""


class StoreUnavailable(ConnectionError):
    """The store cannot be reached; the message is the one line shown to the user."""


Message = dict[str, Any]  # an alert message of alerts.md


def as_message(alert: bytes | str, acked_by: bytes | str | None) -> Message:
    message = orjson.loads(alert)
    if isinstance(acked_by, bytes):
        acked_by = acked_by.decode()
    message["acked_by"] = acked_by or None
    return message


def now_ms() -> int:
    return round(time.time() * 1000)


class AlertStore(Protocol):
    async def publish(self, messages: Iterable[Message]) -> int:
        """Record transitions (worker side); returns how many were new."""

    async def put_tiles(self, tiles: Mapping[str, Message]) -> None:
        """Replace the KPI tiles of some (queue, channel) keys (worker side)."""

    async def tiles(self) -> list[Message]:
        """Every KPI tile (gateway side)."""

    async def put_agents(self, partials: Mapping[str, Message]) -> None:
        """Replace the agents view's partials of some facts partitions (worker side)."""

    async def agents(self) -> list[Message]:
        """Every facts partition's partial of the agents view (gateway side)."""

    async def generation(self) -> str:
        """The store's generation: it changes when the store lost its data."""

    async def load(self) -> tuple[dict[str, Message], str, str]:
        """Every alert firing now by id, the cursor to follow transitions from, and the
        generation they belong to."""

    async def follow(self, generation: str, cursor: str, block_ms: int
                     ) -> tuple[str, str, list[tuple[int, Message]]]:
        """(generation, new cursor, entries): the (published at, message) of every entry
        after `cursor`, waiting up to `block_ms` for one. If the store lost its data since
        `generation`, no entries, the new generation and the cursor of the new stream's
        start."""

    async def get(self, alert_id: str) -> Message | None:
        """The alert as it is now, firing or resolved, if it is known."""

    async def ack(self, alert_id: str, name: str) -> tuple[str, str]:
        """(ACKED, name), (ALREADY, by whom) or (UNKNOWN, "")."""

    async def close(self) -> None: ...


class RedisStore:
    def __init__(self, url: str, app_id: str, options: Mapping[str, Any] | None = None
                 ) -> None:
        """`options`: `ccmon.security.redis_options`, the CA of rediss:// and the password."""
        self.url = url
        self._password = bool(urlsplit(url).password or (options or {}).get("password"))
        # A read timeout above the gateway's XREAD BLOCK: a Redis that hangs is "unreachable".
        # One retry on a new connection: after a Redis restart the pooled ones are dead (the
        # scripts may run twice: they ignore what is already done).
        self.redis = aioredis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=15,
                                             retry=Retry(NoBackoff(), 1), **(options or {}))
        prefix = f"ccmon:{{{app_id}}}:"
        self.prefix = prefix
        self.firing_key, self.stream, self.tiles_key, self.agents_key, self.generation_key = (
            prefix + "firing", prefix + "events", prefix + "tiles", prefix + "agents",
            prefix + "generation")
        self._transition = self.redis.register_script(TRANSITION)
        self._ack = self.redis.register_script(ACK)
        self._generation = self.redis.register_script(GENERATION)

    def _alert_key(self, alert_id: str) -> str:
        return f"{self.prefix}alert:{alert_id}"

    def _unavailable(self, exc: Exception) -> StoreUnavailable:
        return StoreUnavailable(f"cannot reach Redis at {self.address} ({exc})")

    @property
    def address(self) -> str:
        return redis_address(self.url)  # never a password

    async def check(self) -> None:
        """At start: raise `SettingsError` if Redis refuses us (password, certificate, TLS or
        not); an unreachable Redis is left to the usual retries."""
        try:
            await self.redis.ping()
        except (RedisError, OSError) as exc:
            reason = await redis_refusal(self.url, exc, self._password)
            if reason is not None:
                raise SettingsError(reason) from None

    async def ping(self) -> None:
        try:
            await self.redis.ping()
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from None

    async def publish(self, messages: Iterable[Message]) -> int:
        at = now_ms()
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                count = 0
                for message in messages:
                    await self._transition(
                        keys=[self._alert_key(message["id"]), self.firing_key, self.stream],
                        args=[message["id"], message["status"], orjson.dumps(message),
                              HISTORY_SECONDS, STREAM_LENGTH, at], client=pipe)
                    count += 1
                if not count:
                    return 0
                results = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from None
        return sum(1 for result in results if result)

    async def put_tiles(self, tiles: Mapping[str, Message]) -> None:
        await self._put_fields(self.tiles_key, tiles)

    async def tiles(self) -> list[Message]:
        return await self._values(self.tiles_key)

    async def put_agents(self, partials: Mapping[str, Message]) -> None:
        await self._put_fields(self.agents_key, partials)

    async def agents(self) -> list[Message]:
        return await self._values(self.agents_key)

    async def _put_fields(self, key: str, fields: Mapping[str, Message]) -> None:
        """Replace some fields of a hash of JSON values."""
        if not fields:
            return
        try:
            await self.redis.hset(key, mapping={
                name: orjson.dumps(value) for name, value in fields.items()})
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from None

    async def _values(self, key: str) -> list[Message]:
        try:
            values = await self.redis.hvals(key)
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from None
        return [orjson.loads(value) for value in values]

    def _ensure_generation(self, client: Any) -> Any:
        return self._generation(keys=[self.generation_key], args=[secrets.token_hex(8)],
                                client=client)

    async def generation(self) -> str:
        try:
            return (await self._ensure_generation(self.redis)).decode()
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from None

    async def load(self) -> tuple[dict[str, Message], str, str]:
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                await self._ensure_generation(pipe)
                pipe.xrevrange(self.stream, count=1)
                pipe.smembers(self.firing_key)
                generation, last, ids = await pipe.execute()
            async with self.redis.pipeline(transaction=False) as pipe:
                for alert_id in ids:
                    pipe.hmget(self._alert_key(alert_id.decode()), "alert", "acked_by")
                rows = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from None
        # Entries after the cursor may already be in these rows: applying them again to a
        # gateway's mirror is harmless, because an entry carries an alert's whole state.
        cursor = last[0][0].decode() if last else "0-0"
        firing = {}
        for alert, acked_by in rows:
            if alert is not None:
                message = as_message(alert, acked_by)
                firing[message["id"]] = message
        return firing, cursor, generation.decode()

    async def follow(self, generation: str, cursor: str, block_ms: int
                     ) -> tuple[str, str, list[tuple[int, Message]]]:
        try:
            # One connection, in order: the generation before and after the read tells
            # whether the entries read are of the stream `cursor` belongs to.
            async with self.redis.pipeline(transaction=False) as pipe:
                await self._ensure_generation(pipe)
                pipe.xread({self.stream: cursor}, count=1000, block=block_ms)
                await self._ensure_generation(pipe)
                before, answer, after = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from None
        if before.decode() != generation or after != before:
            return after.decode(), "0-0", []  # a new stream: read it from its start
        entries = []
        for _stream, rows in answer:
            for entry_id, fields in rows:
                cursor = entry_id.decode()
                entries.append((int(fields[b"published_at"]),
                                as_message(fields[b"alert"], fields[b"acked_by"])))
        return generation, cursor, entries

    async def get(self, alert_id: str) -> Message | None:
        try:
            alert, acked_by = await self.redis.hmget(self._alert_key(alert_id), "alert",
                                                     "acked_by")
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from None
        return None if alert is None else as_message(alert, acked_by)

    async def ack(self, alert_id: str, name: str) -> tuple[str, str]:
        try:
            outcome, who = await self._ack(keys=[self._alert_key(alert_id), self.stream],
                                           args=[name, STREAM_LENGTH, now_ms()])
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from None
        return outcome.decode(), who.decode()

    async def close(self) -> None:
        await self.redis.aclose()


class MemoryStore:
    """The store in one process (`ccmon demo` without Redis): same rules, no durability."""

    def __init__(self) -> None:
        self.alerts: dict[str, Message] = {}
        self.entries: list[tuple[int, Message]] = []
        self._tiles: dict[str, Message] = {}
        self._agents: dict[str, Message] = {}
        self._grown = asyncio.Event()

    def _append(self, message: Message) -> None:
        self.entries.append((now_ms(), dict(message)))
        self._grown.set()

    async def publish(self, messages: Iterable[Message]) -> int:
        count = 0
        for message in messages:
            known = self.alerts.get(message["id"])
            if known is not None and known["status"] in ("resolved", message["status"]):
                continue
            stored = {**message, "acked_by": known["acked_by"] if known else None}
            self.alerts[message["id"]] = stored
            self._append(stored)
            count += 1
        return count

    async def put_tiles(self, tiles: Mapping[str, Message]) -> None:
        self._tiles.update(tiles)

    async def tiles(self) -> list[Message]:
        return list(self._tiles.values())

    async def put_agents(self, partials: Mapping[str, Message]) -> None:
        self._agents.update(partials)

    async def agents(self) -> list[Message]:
        return list(self._agents.values())

    async def generation(self) -> str:
        return MEMORY_GENERATION  # it loses its data only with its process

    async def load(self) -> tuple[dict[str, Message], str, str]:
        firing = {i: dict(m) for i, m in self.alerts.items() if m["status"] == "firing"}
        return firing, str(len(self.entries)), MEMORY_GENERATION

    async def follow(self, generation: str, cursor: str, block_ms: int
                     ) -> tuple[str, str, list[tuple[int, Message]]]:
        start = int(cursor)
        if start >= len(self.entries):
            self._grown.clear()
            try:
                await asyncio.wait_for(self._grown.wait(), block_ms / 1000)
            except TimeoutError:
                return generation, cursor, []
        return generation, str(len(self.entries)), self.entries[start:]

    async def get(self, alert_id: str) -> Message | None:
        message = self.alerts.get(alert_id)
        return None if message is None else dict(message)

    async def ack(self, alert_id: str, name: str) -> tuple[str, str]:
        message = self.alerts.get(alert_id)
        if message is None:
            return UNKNOWN, ""
        if message["acked_by"]:
            return ALREADY, message["acked_by"]
        message["acked_by"] = name
        self._append(message)
        return ACKED, name

    async def close(self) -> None:
        pass


def open_store(redis_url: str, app_id: str, options: Mapping[str, Any] | None = None
               ) -> AlertStore:
    return RedisStore(redis_url, app_id, options) if redis_url else MemoryStore()
