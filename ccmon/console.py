"""What every ccmon process tells its operator, and how it is stopped (running.md).

One line on stderr per thing worth saying (`say`), an outage said once when it starts and once
when it is over however often the call is retried (`Outage`), a port checked before a server
needs it (`check_port_free`), and Ctrl-C or SIGTERM turned into a clean stop
(`on_stop_signals`).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import Callable

from ccmon.errors import SettingsError

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def say(line: str) -> None:
    """One line for the operator on stderr (not a log record: it must show without logging set)."""
    print(f"ccmon: {line}", file=sys.stderr, flush=True)


class Outage:
    """Whether a server answered the last call: its outage is news once, and so is its end."""

    def __init__(self) -> None:
        self.up: bool | None = None  # None: not asked yet

    def failed(self, line: str | None = None) -> bool:
        """A call failed; True if that is news, and then `line` is said."""
        news, self.up = self.up is not False, False
        if news and line is not None:
            say(line)
        return news

    def answered(self, line: str | None = None) -> bool:
        """A call succeeded; True if the server had been away, and then `line` is said."""
        came_back, self.up = self.up is False, True
        if came_back and line is not None:
            say(line)
        return came_back


def cannot_listen(host: str, port: int, setting: str, exc: OSError) -> SettingsError:
    """The one line of a server that cannot listen where `setting` says."""
    return SettingsError(f"cannot listen on {host}:{port} ({setting}): {exc.strerror}")


def check_port_free(host: str, port: int, setting: str) -> None:
    """A port setting this machine can use now: else the one line naming the setting."""
    with socket.socket() as probe:
        # As the real listener does: connections of a previous run in TIME_WAIT must not
        # keep a restarted process off its port; a listening process still does.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise cannot_listen(host, port, setting, exc) from None


def on_stop_signals(loop: asyncio.AbstractEventLoop, stop: Callable[[], object],
                    signals: tuple[signal.Signals, ...] = STOP_SIGNALS) -> None:
    """Call `stop` on the loop when one of `signals` arrives (where the loop can catch them)."""
    for sig in signals:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop)
