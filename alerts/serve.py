"""Starting `ccmon gateway`: check the settings, reach Redis, serve until Ctrl-C or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from ccmon.console import check_port_free, on_stop_signals, say
from ccmon.errors import SettingsError
from ccmon.security import redis_options
from ccmon.settings import Settings

from .gateway import Gateway
from .store import RedisStore
from .tokens import TokensError, load_tokens


def configure_logging() -> None:
    logging.basicConfig(level=logging.WARNING, format="ccmon: %(message)s")


def run_gateway(settings: Settings) -> int:
    if not settings.redis_url:
        raise SettingsError("the gateway needs CCMON_REDIS_URL: workers and gateways share "
                            "alerts through Redis (only `ccmon demo` runs without it)")
    options = redis_options(settings)
    try:
        tokens = load_tokens(settings.tokens)
    except TokensError as exc:
        raise SettingsError(str(exc)) from None
    if not tokens.entries:
        say("no CCMON_TOKENS: every connection will be refused (4401)")
    check_port_free(settings.bind, settings.ws_port, "CCMON_WS_PORT")
    configure_logging()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(settings, tokens, options))
    return 0


async def _serve(settings: Settings, tokens, redis_options: dict[str, object]) -> None:
    store = RedisStore(settings.redis_url, settings.app_id, redis_options)
    try:
        await store.check()
    except SettingsError:
        await store.close()
        raise
    gateway = Gateway(store, tokens, settings.agents_window)
    await gateway.start(settings.bind, settings.ws_port)
    say(f"gateway {settings.app_id}: supervisor page http://{settings.bind}:{settings.ws_port}/ "
        f"· WebSocket ws://{settings.bind}:{settings.ws_port}/ws · alerts from "
        f"{store.address}")
    stopping = asyncio.Event()
    # SIGTERM only: on Ctrl-C `asyncio.run` cancels this, and the finally runs all the same.
    on_stop_signals(asyncio.get_running_loop(), stopping.set, (signal.SIGTERM,))
    try:
        await stopping.wait()
    finally:
        await gateway.stop()
        await store.close()
