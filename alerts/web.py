"""HTTP on the gateway's WebSocket port: the supervisor page's files, GET and HEAD only."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from importlib import resources

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

METHODS = ("GET", "HEAD")
WEBSOCKET_PATH = "/ws"
TEXT = "text/plain; charset=utf-8"
PAGE_FILES = {"/": ("index.html", "text/html; charset=utf-8"),
              "/index.html": ("index.html", "text/html; charset=utf-8"),
              "/app.js": ("app.js", "text/javascript; charset=utf-8"),
              "/agents.js": ("agents.js", "text/javascript; charset=utf-8"),
              "/style.css": ("style.css", "text/css; charset=utf-8")}


def answer(request: Request, get: Callable[[str], Response]) -> Response | None:
    """The response to `request` (`get(path)` for a GET), or None for the WebSocket handshake
    to go on. websockets 17 parses any method without a body and leaves it to us."""
    path = request.path.partition("?")[0]
    if request.method not in METHODS:
        refused = response(HTTPStatus.METHOD_NOT_ALLOWED, b"only GET and HEAD\n", TEXT)
        refused.headers["Allow"] = ", ".join(METHODS)
        return refused
    if path == WEBSOCKET_PATH:
        return None  # the library answers a HEAD with 405 itself
    got = get(path)
    if request.method == "HEAD":
        got.body = b""  # its Content-Length stays that of the GET
    return got


def page(path: str) -> Response:
    if path not in PAGE_FILES:
        return response(HTTPStatus.NOT_FOUND, b"not found\n", TEXT)
    name, content_type = PAGE_FILES[path]
    body = resources.files("ccmon.alerts").joinpath("static", name).read_bytes()
    return response(HTTPStatus.OK, body, content_type)


def response(status: HTTPStatus, body: bytes, content_type: str) -> Response:
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body))),
                       ("Cache-Control", "no-store")])
    return Response(status.value, status.phrase, headers, body)
