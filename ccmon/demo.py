"""`ccmon demo`: the whole system on one machine, in one terminal.

An embedded broker (tansu) unless `CCMON_BROKERS` is set, then a worker and the simulator as
child processes, each with its own log file. The demo prints the URLs and a live status line,
and stops everything in order on Ctrl-C or SIGTERM: traffic first, then the worker, then the
broker. A child that dies is reported in one line with its log, and the demo exits non-zero.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import fields
from pathlib import Path

import ccmon.alerts
from ccmon.console import STOP_SIGNALS, check_port_free, say
from ccmon.embedded import start_tansu, stop_process
from ccmon.errors import EmbeddedBrokerError, SettingsError
from ccmon.kafka import wait_for_brokers
from ccmon.launch import Samples, ccmon_process, total, try_scrape
from ccmon.security import kafka_options
from ccmon.settings import FILE_SETTINGS, KAFKA_SETTINGS, Settings, env_name

EXAMPLE_RULES = Path(ccmon.alerts.__file__).resolve().parent / "examples" / "rules.yaml"

# On tansu a worker needs about half its session timeout to join its group: keep it short, as
# the demo is one worker that nobody else shares partitions with.
DEMO_SESSION_TIMEOUT = 6
STATUS_EVERY_S = 1.0
STATUS_LINE_EVERY_S = 30.0  # when stdout is not a terminal: a plain line now and then
WORKER_STOP_S = 15.0


def child_settings(settings: Settings, args: argparse.Namespace, bootstrap: str,
                   environ: dict[str, str]) -> dict[str, object]:
    """The demo's settings for its children: the flags it was given, the broker it runs."""
    values: dict[str, object] = {field.name: getattr(args, field.name)
                                 for field in fields(Settings)
                                 if getattr(args, field.name, None) is not None}
    values["brokers"] = bootstrap
    for name in FILE_SETTINGS:  # the children run in the demo's folder
        path = values.get(name) or environ.get(env_name(name))
        if path:
            values[name] = os.path.abspath(path)
    if "session_timeout" not in values and env_name("session_timeout") not in environ:
        values["session_timeout"] = DEMO_SESSION_TIMEOUT
    return values


def status(samples: Samples | None) -> str:
    if samples is None:
        return "worker starting…"
    return (f"events {total(samples, 'ccmon_events_total'):,.0f} · "
            f"waiting {total(samples, 'ccmon_queue_waiting_contacts'):.0f} · "
            f"talking {total(samples, 'ccmon_contacts_in_conversation'):.0f} · "
            f"on hold {total(samples, 'ccmon_contacts_on_hold'):.0f} · "
            f"agents available {total(samples, 'ccmon_agents', state='available'):.0f} · "
            f"dead-lettered {total(samples, 'ccmon_events_invalid_total'):,.0f} · "
            f"alerts firing {total(samples, 'ccmon_alerts_firing'):.0f}")


class Demo:
    def __init__(self, settings: Settings, args: argparse.Namespace) -> None:
        self.settings = settings
        self.args = args
        self.stopping = threading.Event()
        self.log_dir = Path(tempfile.mkdtemp(prefix="ccmon-demo-"))
        self.children: dict[str, subprocess.Popen] = {}
        self.broker = None
        self.token: str | None = None  # the demo's own supervisor token, if it made one

    def _on_signal(self, signum: int, frame: object) -> None:
        self.stopping.set()

    def run(self) -> int:
        if self.settings.metrics_port == self.settings.ws_port != 0:  # one process, two servers
            raise SettingsError(f"CCMON_METRICS_PORT and CCMON_WS_PORT are both "
                                f"{self.settings.ws_port}: the demo serves both, on two ports")
        check_port_free(self.settings.bind, self.settings.metrics_port, "CCMON_METRICS_PORT")
        check_port_free(self.settings.bind, self.settings.ws_port, "CCMON_WS_PORT")
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._on_signal)
        try:
            bootstrap = self._broker()
            if bootstrap is None:
                return 0
            values = child_settings(self.settings, self.args, bootstrap, dict(os.environ))
            values |= self._alert_files()
            seed = self.args.seed if self.args.seed is not None else int(time.time()) % 100_000
            metrics_url = f"http://{self.settings.bind}:{self.settings.metrics_port}/metrics"
            self._start("worker", ["worker", "--with-gateway"], values)
            traffic = ["simulate", "--seed", str(seed), "--scale", str(self.args.scale),
                       "--opening-incident"]
            self._start("simulator", traffic,
                        {name: values[name] for name in (*KAFKA_SETTINGS, "topic_prefix",
                                                         "partitions") if name in values})
            self._banner(bootstrap, metrics_url, seed)
            return self._watch(metrics_url)
        finally:
            self._stop_all()

    def _broker(self) -> str | None:
        security = kafka_options(self.settings)
        if self.settings.brokers:
            waiting = asyncio.new_event_loop()
            try:
                task = waiting.create_task(wait_for_brokers(self.settings.brokers,
                                                            security=security))
                while not task.done() and not self.stopping.is_set():
                    waiting.run_until_complete(asyncio.wait({task}, timeout=0.2))
                task.cancel()
                if task.done() and not task.cancelled():
                    task.result()  # the brokers refused us: KafkaRefused, one line
            finally:
                waiting.close()
            return None if self.stopping.is_set() else self.settings.brokers
        if security["security_protocol"] != "PLAINTEXT":
            raise SettingsError(f"the embedded broker speaks plaintext only: with "
                                f"{env_name('kafka_security_protocol')} set CCMON_BROKERS too")
        say("starting the embedded broker (tansu)…")
        self.broker = start_tansu(log_path=self.log_dir / "tansu.log")
        return self.broker.bootstrap

    def _alert_files(self) -> dict[str, str]:
        """The example rules unless rules are configured; a fresh token unless tokens are."""
        files: dict[str, str] = {}
        if not self.settings.rules:
            if any(label == "15m" for label, _ in self.settings.windows):
                files["rules"] = str(EXAMPLE_RULES)
            else:
                say("no CCMON_RULES, and the example rules need a 15m window: no alerts")
        if not self.settings.tokens:
            self.token = secrets.token_urlsafe(12)
            path = self.log_dir / "tokens.yaml"
            path.write_text(f'tokens:\n  - name: supervisor\n    token: "{self.token}"\n'
                            f'    queues: ["*"]\n')
            path.chmod(0o600)
            files["tokens"] = str(path)
        return files

    def _start(self, name: str, command: list[str], values: dict[str, object]) -> None:
        self.children[name] = ccmon_process(command, values, self.log_dir / f"{name}.log",
                                            # Ctrl-C reaches the demo only: it stops
                                            # the children itself, in order.
                                            start_new_session=True,
                                            # Faust's data folder goes there, not where
                                            # the user typed the command.
                                            cwd=self.log_dir)

    def _banner(self, bootstrap: str, metrics_url: str, seed: int) -> None:
        broker = "embedded tansu" if self.broker is not None else "CCMON_BROKERS"
        settings = self.settings
        page = f"http://{settings.bind}:{settings.ws_port}/"
        sign_in = f"sign in with token {self.token}" if self.token else "tokens of CCMON_TOKENS"
        rules = settings.rules or f"{EXAMPLE_RULES} (example)"
        store = "Redis at CCMON_REDIS_URL" if settings.redis_url else "in memory"
        print(f"ccmon demo\n"
              f"  supervisors  {page} ({sign_in})\n"
              f"  websocket    ws://{settings.bind}:{settings.ws_port}/ws\n"
              f"  metrics      {metrics_url}\n"
              f"  rules        {rules}; alerts {store}\n"
              f"  broker       {bootstrap} ({broker})\n"
              f"  traffic      ccmon simulate --seed {seed} --scale {self.args.scale:g} "
              f"--opening-incident: voice, chat and social on the wall clock; first, billing's "
              f"voice agents go into a 30 s huddle during a surge of calls\n"
              f"  logs         {self.log_dir}\n"
              f"Ctrl-C stops everything.", flush=True)

    def _watch(self, metrics_url: str) -> int:
        tty = sys.stdout.isatty()
        last_line = 0.0
        while not self.stopping.wait(STATUS_EVERY_S):
            for name, child in self.children.items():
                if child.poll() is not None:
                    self._end_status_line(tty)
                    say(f"the {name} exited with code {child.returncode}; its log: "
                        f"{self.log_dir / (name + '.log')}")
                    return 1
            if self.broker is not None and not self.broker.alive():
                self._end_status_line(tty)
                say(f"the embedded broker exited; its log: {self.broker.log_path}")
                return 1
            line = f"{time.strftime('%H:%M:%S')}  {status(try_scrape(metrics_url))}"
            if tty:
                print(f"\r\033[K{line}", end="", flush=True)
            elif time.monotonic() - last_line >= STATUS_LINE_EVERY_S:
                print(line, flush=True)
                last_line = time.monotonic()
        self._end_status_line(tty)
        say("stopping…")
        return 0

    @staticmethod
    def _end_status_line(tty: bool) -> None:
        if tty:
            print(flush=True)

    def _stop_all(self) -> None:
        # Traffic first, so the worker has nothing left half-read; then the worker; the broker last.
        for name in ("simulator", "worker"):
            child = self.children.get(name)
            if child is not None:
                stop_process(child, WORKER_STOP_S)
        if self.broker is not None:
            self.broker.stop()
        if self.children or self.broker is not None:
            say(f"stopped; logs in {self.log_dir}")


def run_demo(settings: Settings, args: argparse.Namespace) -> int:
    try:
        return Demo(settings, args).run()
    except EmbeddedBrokerError as exc:
        say(f"the embedded broker did not start: {str(exc).splitlines()[0]}")
        return 1
