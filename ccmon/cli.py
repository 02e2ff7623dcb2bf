"""The `ccmon` console script (running.md)."""

from __future__ import annotations

import argparse
import sys

from ccmon import settings as settings_module
from ccmon.console import STOP_SIGNALS, say
from ccmon.errors import CcmonError, EmbeddedBrokerError, SettingsError
from ccmon.settings import KAFKA_SETTINGS, REDIS_SETTINGS

WORKER_SETTINGS = (*KAFKA_SETTINGS, *REDIS_SETTINGS, "app_id", "metrics_port", "clock",
                   "windows", "short_abandon_seconds", "service_level_seconds",
                   "service_level_by_queue", "rules", "topic_prefix", "partitions",
                   "contact_retention", "bind", "session_timeout", "instance_id", "ws_port",
                   "tokens", "agents_window")
GATEWAY_SETTINGS = (*REDIS_SETTINGS, "app_id", "ws_port", "tokens", "bind", "agents_window")


def _worker(args: argparse.Namespace) -> int:
    from ccmon.consumers.run import run_worker

    return run_worker(settings_module.load(args), loglevel=args.loglevel,
                      with_gateway=args.with_gateway)


def _demo(args: argparse.Namespace) -> int:
    from ccmon.demo import run_demo

    return run_demo(settings_module.load(args), args)


def _simulate(args: argparse.Namespace) -> int:
    from ccmon.produce import run_simulate

    return run_simulate(args) or 0


def _replay(args: argparse.Namespace) -> int:
    from ccmon.produce import run_replay

    return run_replay(args) or 0


def _gateway(args: argparse.Namespace) -> int:
    from ccmon.alerts.serve import run_gateway

    return run_gateway(settings_module.load(args))


def _broker(args: argparse.Namespace) -> int:
    """The demo's embedded broker on its own: somewhere to replay into without a Kafka."""
    import signal
    import socket

    from ccmon.embedded import start_tansu

    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", args.port)) == 0:
            raise SettingsError(f"port {args.port} is in use: is a broker running there already?")
    try:
        broker = start_tansu(args.port)
    except EmbeddedBrokerError as exc:
        raise SettingsError(f"the embedded broker did not start: {exc}") from None
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)  # after tansu: it must not inherit it
    say(f"embedded broker (tansu, in memory) on {broker.bootstrap}; Ctrl-C stops it")
    try:
        signal.sigwait(STOP_SIGNALS)
    finally:
        broker.stop()
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="ccmon", description="Real-time contact-centre monitor. Every setting is a flag "
        "and a CCMON_* variable; the flag wins.")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="the whole system on this machine, embedded broker")
    settings_module.add_arguments(demo)
    demo.add_argument("--seed", type=int, default=None, help="simulation seed (default: random)")
    demo.add_argument("--scale", type=float, default=1.0,
                      help="size of the simulated centre (default 1: about 4,000 contacts a day)")
    demo.set_defaults(run=_demo)

    worker = commands.add_parser("worker", help="the stream processor: state, /metrics, alerts")
    settings_module.add_arguments(worker, WORKER_SETTINGS)
    worker.add_argument("--loglevel", default="WARNING", help="Faust log level")
    worker.add_argument("--with-gateway", action="store_true",
                        help="also serve the gateway in this process (as `ccmon demo` does); "
                        "alerts stay in memory unless CCMON_REDIS_URL is set")
    worker.set_defaults(run=_worker)

    gateway = commands.add_parser("gateway", help="the WebSocket gateway for supervisors")
    settings_module.add_arguments(gateway, GATEWAY_SETTINGS)
    gateway.set_defaults(run=_gateway)

    from ccmon.produce import add_replay_arguments, add_simulate_arguments

    simulate = commands.add_parser("simulate", help="realistic synthetic traffic into Kafka")
    add_simulate_arguments(simulate)
    simulate.set_defaults(run=_simulate)

    broker = commands.add_parser(
        "broker", help="an embedded Kafka-compatible broker (tansu, in memory) to try ccmon on")
    broker.add_argument("--port", type=int, default=9092, help="port on 127.0.0.1 (9092)")
    broker.set_defaults(run=_broker)

    replay = commands.add_parser("replay", help="send a JSON-lines file of events to Kafka")
    add_replay_arguments(replay)
    replay.set_defaults(run=_replay)

    ingest = commands.add_parser(
        "ingest", help="a contact-centre platform's own records into v1 events (adapters.md)")
    platforms = ingest.add_subparsers(dest="platform", required=True, metavar="PLATFORM")
    from ccmon import ingest_asterisk, ingest_connect, ingest_taskrouter

    asterisk = platforms.add_parser("asterisk", help="an Asterisk queue_log file "
                                    "(app_queue), read to its end or followed")
    ingest_asterisk.add_arguments(asterisk)
    asterisk.set_defaults(run=ingest_asterisk.run)
    connect = platforms.add_parser("connect", help="Amazon Connect contact events and agent "
                                   "event stream, bridged to a Kafka topic")
    ingest_connect.add_arguments(connect)
    connect.set_defaults(run=ingest_connect.run)
    taskrouter = platforms.add_parser("taskrouter", help="Twilio TaskRouter (Flex) event "
                                      "callbacks, received over HTTP")
    ingest_taskrouter.add_arguments(taskrouter)
    taskrouter.set_defaults(run=ingest_taskrouter.run)
    return top


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        code = args.run(args)
    except CcmonError as exc:  # a setting or a server to fix: its one line, no traceback
        say(str(exc))
        code = 2
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)
