"""`ccmon ingest taskrouter --listen HOST:PORT`: TaskRouter's event callbacks into v1 events.

An HTTP receiver for the workspace's EventCallbackUrl. A request whose X-Twilio-Signature
does not verify (against `--public-url`, else the URL it was sent to) gets 403 and changes
nothing. A signed one is mapped (`stream/taskrouter.py`), its events sent and acknowledged by
Kafka and the mapper's state saved, then answered 204: a callback answered is never lost, and
one Twilio retries because we failed is a repeat the mapper recognises. Callbacks are handled
one at a time, in the order they arrive.
"""

from __future__ import annotations

import argparse
import asyncio
from urllib.parse import parse_qsl

from aiohttp import web

from ccmon import settings as settings_module
from ccmon.console import cannot_listen
from ccmon.errors import SettingsError
from ccmon.follow import load_json, save_json
from ccmon.ingest import SETTINGS_USED, Counts, Outbox, connect, run_adapter
from ccmon.produce import _settings
from ccmon.security import read_secret
from ccmon.settings import Settings, parse_brokers
from ccmon.stream.taskrouter import TaskRouter, signed

MAX_BODY = 1 << 20  # a callback is a few kB


async def ingest(settings: Settings, host: str, port: int, public_url: str | None, token: str,
                 state_path: str, counts: Counts, stop_event: asyncio.Event) -> None:
    mapper = TaskRouter((load_json(state_path) or {}).get("state"))
    producer = await connect(settings, counts)
    outbox = Outbox(settings, counts)
    lock = asyncio.Lock()

    async def callback(request: web.Request) -> web.Response:
        body = await request.read()
        params = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        url = public_url or str(request.url)
        if not signed(url, params, token, request.headers.get("X-Twilio-Signature", "")):
            counts.refused += 1
            return web.Response(status=403, text="bad X-Twilio-Signature\n")
        first: dict[str, str] = {}
        for name, value in params:
            first.setdefault(name, value)
        async with lock:  # in arrival order, each acknowledged before the next
            outcome = mapper.feed(first, body,
                                  request.headers.get("I-Twilio-Idempotency-Token"))
            outbox.add(outcome, body, f"taskrouter:{request.path}", counts.records)
            await outbox.send(producer)
            save_json(state_path, {"state": mapper.to_json()})
        return web.Response(status=204, content_type="application/json")

    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_post("/{path:.*}", callback)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            raise cannot_listen(host, port, "--listen", exc) from None
        await stop_event.wait()
    finally:
        await runner.cleanup()
        await producer.stop()


def _listen(text: str) -> tuple[str, int]:
    try:
        parse_brokers(text)
        host, _, port = text.rpartition(":")
        number = int(port)
        if not 0 < number < 65536:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT") from None
    return host, number


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listen", type=_listen, required=True, metavar="HOST:PORT",
                        help="where to receive the workspace's event callbacks")
    parser.add_argument("--public-url", default=None, metavar="URL",
                        help="the EventCallbackUrl exactly as configured in the workspace, "
                             "when a proxy sits in front (the signature covers it); default: "
                             "the URL each request was sent to")
    parser.add_argument("--state", default=None, metavar="FILE",
                        help="the mapping state, saved after each callback is acknowledged "
                             "(default: <CCMON_APP_ID>-taskrouter.ccmon-position here)")
    settings_module.add_arguments(parser, (*SETTINGS_USED, "app_id", "twilio_auth_token_file"))


def run(args: argparse.Namespace) -> int:
    """Entry point of `ccmon ingest taskrouter`; returns the exit code."""
    settings = _settings(args)
    if not settings.twilio_auth_token_file:
        raise SettingsError("CCMON_TWILIO_AUTH_TOKEN_FILE is needed: the file holding the "
                            "account's auth token, to verify X-Twilio-Signature")
    token = read_secret(settings.twilio_auth_token_file, "twilio_auth_token_file")
    host, port = args.listen
    state_path = args.state or f"{settings.app_id}-taskrouter.ccmon-position"
    return run_adapter(settings, "taskrouter", f"receiving TaskRouter callbacks on "
                       f"http://{host}:{port}/ into Kafka at {settings.bootstrap()}; state in "
                       f"{state_path}",
                       lambda counts, stop: ingest(settings, host, port, args.public_url,
                                                   token, state_path, counts, stop))
