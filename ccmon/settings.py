"""Settings of running.md: each one a command-line flag and a `CCMON_*` variable; the flag wins.

A bad value raises `SettingsError` with one line naming the setting; the CLI prints it and exits 2.
"""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ccmon.errors import SettingsError
from ccmon.stream.durations import parse_duration

CHANNELS = ("voice", "chat", "social")


def parse_windows(text: str) -> tuple[tuple[str, float], ...]:
    """`5m,15m,1h,today` -> (("5m", 300.0), ..., ("today", 0.0)), labels kept as written (they
    are label values); `today`, the calendar window of CCMON_TIMEZONE, has the width 0."""
    windows = []
    for part in text.split(","):
        label = part.strip()
        windows.append((label, 0.0 if label == "today" else parse_duration(label)))
    labels = [label for label, _ in windows]
    if len(set(labels)) != len(labels):
        raise ValueError(f"{text!r} names a window twice")
    return tuple(windows)


def parse_brokers(text: str) -> str:
    for server in text.split(","):
        host, _, port = server.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"{text!r} is not host:port[,host:port]")
    return text


def parse_port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise ValueError(f"{text!r} is not a TCP port")
    return port


def parse_seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise ValueError(f"{text!r} is negative")
    return value


def parse_timezone(text: str) -> str:
    try:
        ZoneInfo(text)
    except (ValueError, ZoneInfoNotFoundError):
        raise ValueError(f"{text!r} is not an IANA time zone like UTC or Europe/Berlin") from None
    return text


def parse_ratio(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise ValueError(f"{text!r} is not a ratio above 0 and at most 1, like 0.8")
    return value


def parse_eval_interval(text: str) -> float:
    """alerts.md 1.1: from `100ms` to `1s`, in whole milliseconds (the rules' resolution)."""
    seconds = parse_duration(text)
    ms = seconds * 1000
    if not 100 <= ms <= 1000 or abs(ms - round(ms)) > 1e-6:
        raise ValueError(f"{text!r} is not a whole number of milliseconds from 100ms to 1s")
    return round(ms) / 1000


def parse_clock(text: str) -> str:
    if text not in ("wall", "event"):
        raise ValueError(f"{text!r} is neither wall nor event")
    return text


def parse_per_queue_seconds(text: str) -> dict[str, float]:
    """`billing=30,sales=10` -> per-queue overrides of the service-level threshold."""
    result: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        queue, sep, seconds = part.partition("=")
        if not sep or not queue:
            raise ValueError(f"{part!r} is not queue=seconds")
        result[queue.strip()] = parse_seconds(seconds)
    return result


SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def _one_of(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text.upper() not in choices:
            raise ValueError(f"{text!r} is not one of {', '.join(choices)}")
        return text.upper()
    return parse


def parse_window(text: str) -> str:
    """One window label of CCMON_WINDOWS (`15m`, `today`), as written there."""
    if "," in text:
        raise ValueError(f"{text!r} is not one window like 15m")
    return parse_windows(text)[0][0]


DEFAULT_WINDOWS = parse_windows("5m,15m,1h")
DEFAULT_RETENTION = parse_duration("1d")
DEFAULT_CASE_TIMEOUT = parse_duration("7d")


def _setting(default: object, parse: Callable[[str], object], help: str):
    metadata = {"parse": parse, "help": help}
    if isinstance(default, dict):
        return field(default_factory=dict, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Settings:
    brokers: str = _setting(
        "", parse_brokers, "Kafka bootstrap servers host:port[,host:port] "
        "(default: embedded broker for demo, localhost:9092 otherwise)")
    app_id: str = _setting("ccmon", str, "consumer group and internal topic prefix")
    metrics_port: int = _setting(9464, parse_port, "port of the worker's /metrics")
    ws_port: int = _setting(8765, parse_port, "port of the gateway (/ws and the supervisor page)")
    clock: str = _setting("wall", parse_clock, "monitor clock: wall or event")
    eval_interval: float = _setting(
        0.25, parse_eval_interval, "alert evaluation interval E, 100ms-1s: the rules are "
        "evaluated at every multiple of E on the monitor clock")
    windows: tuple[tuple[str, float], ...] = _setting(
        DEFAULT_WINDOWS, parse_windows, "sliding windows, e.g. 5m,15m,1h,1d,today")
    timezone: str = _setting("UTC", parse_timezone, "IANA time zone of the today window")
    case_timeout: float = _setting(
        DEFAULT_CASE_TIMEOUT, parse_duration, "case timeout R: a case with no contact for that "
        "long is dropped, a resolution reopened within it")
    service_level_target: float = _setting(
        0.8, parse_ratio, "service-level target S of the Erlang C figures, 0-1")
    short_abandon_seconds: float = _setting(5.0, parse_seconds, "short-abandon threshold (0: off)")
    service_level_seconds: float = _setting(20.0, parse_seconds, "service-level threshold T")
    service_level_by_queue: dict[str, float] = _setting(  # noqa: RUF009 (a default_factory)
        {}, parse_per_queue_seconds, "per-queue service-level thresholds, e.g. billing=30,vip=10")
    rules: str = _setting("", str, "alert rules file (YAML)")
    tokens: str = _setting("", str, "supervisor tokens file (YAML)")
    agents_window: str = _setting(
        "15m", parse_window, "window of the supervisors' agents view, one of the workers' "
        "CCMON_WINDOWS as written there")
    redis_url: str = _setting(
        "", str, "Redis URL for alert state, history and fan-out (rediss:// for TLS)")
    redis_ca_file: str = _setting(
        "", str, "CA certificates (PEM) to trust for rediss:// (default: the system's)")
    redis_password_file: str = _setting(
        "", str, "file holding the Redis password (instead of one in the URL)")
    kafka_security_protocol: str = _setting(
        "PLAINTEXT", _one_of(SECURITY_PROTOCOLS), "Kafka security protocol: "
        + ", ".join(SECURITY_PROTOCOLS))
    kafka_sasl_mechanism: str = _setting(
        "PLAIN", _one_of(SASL_MECHANISMS), "Kafka SASL mechanism: " + ", ".join(SASL_MECHANISMS))
    kafka_sasl_username: str = _setting("", str, "Kafka SASL user name")
    kafka_sasl_password_file: str = _setting(
        "", str, "file holding the Kafka SASL password (never the password itself)")
    kafka_ca_file: str = _setting(
        "", str, "CA certificates (PEM) to trust for Kafka over TLS (default: the system's)")
    kafka_cert_file: str = _setting("", str, "client certificate (PEM) for Kafka over TLS")
    kafka_key_file: str = _setting("", str, "private key (PEM) of CCMON_KAFKA_CERT_FILE")
    twilio_auth_token_file: str = _setting(
        "", str, "file holding the Twilio account's auth token, to verify TaskRouter's "
        "X-Twilio-Signature (ingest taskrouter; never the token itself)")
    topic_prefix: str = _setting("cc", str, "prefix of the input, dead-letter and agent topics")
    partitions: int = _setting(
        4, int, "partitions of the topics ccmon creates (inputs when missing, internal topics)")
    contact_retention: float = _setting(
        DEFAULT_RETENTION, parse_duration,
        "how long an ended contact is remembered for late surveys and duplicates")
    bind: str = _setting("127.0.0.1", str, "address the HTTP servers listen on")
    session_timeout: float = _setting(
        30.0, parse_seconds, "seconds Kafka waits for a silent worker before its partitions "
        "move to the others (failover time)")
    instance_id: str = _setting(
        "", str, "this worker's stable name in the consumer group (static membership: a "
        "restarted worker takes its partitions back at once); default host name and metrics "
        "port, 'none' to turn static membership off")

    @property
    def channel_topics(self) -> dict[str, str]:
        return {channel: f"{self.topic_prefix}.{channel}" for channel in CHANNELS}

    @property
    def agents_topic(self) -> str:
        return f"{self.topic_prefix}.agents"

    @property
    def deadletter_topic(self) -> str:
        return f"{self.topic_prefix}.deadletter"

    def bootstrap(self) -> str:
        return self.brokers or "localhost:9092"

    def group_instance_id(self) -> str | None:
        """The worker's static group membership id, or None (dynamic membership)."""
        if self.instance_id.lower() == "none":
            return None
        return self.instance_id or f"{socket.gethostname()}-{self.metrics_port}"

    def service_level_threshold(self, queue: str) -> float:
        return self.service_level_by_queue.get(queue, self.service_level_seconds)


# The settings of every command that talks to Kafka, and of every one that talks to Redis.
KAFKA_SETTINGS = ("brokers", "kafka_security_protocol", "kafka_sasl_mechanism",
                  "kafka_sasl_username", "kafka_sasl_password_file", "kafka_ca_file",
                  "kafka_cert_file", "kafka_key_file")
REDIS_SETTINGS = ("redis_url", "redis_ca_file", "redis_password_file")
# Settings naming a file: a child process started elsewhere needs them absolute.
FILE_SETTINGS = ("rules", "tokens", "redis_ca_file", "redis_password_file",
                 "kafka_sasl_password_file", "kafka_ca_file", "kafka_cert_file",
                 "kafka_key_file", "twilio_auth_token_file")


def env_name(name: str) -> str:
    return "CCMON_" + name.upper()


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser, names: tuple[str, ...] | None = None) -> None:
    """Add one flag per setting (all of them, or `names`), each documenting its variable."""
    for f in fields(Settings):
        if names is not None and f.name not in names:
            continue
        parser.add_argument(
            flag_name(f.name), dest=f.name, default=None, metavar="VALUE",
            help=f"{f.metadata['help']} [{env_name(f.name)}]")


def load(args: argparse.Namespace | None = None, environ: Mapping[str, str] | None = None,
         **overrides: object) -> Settings:
    """Settings from flags (`args`), else `CCMON_*` variables, else defaults."""
    environ = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for f in fields(Settings):
        flag_value = getattr(args, f.name, None) if args is not None else None
        if flag_value is not None:
            raw, source = flag_value, flag_name(f.name)
        elif env_name(f.name) in environ:
            raw, source = environ[env_name(f.name)], env_name(f.name)
        else:
            continue
        try:
            values[f.name] = f.metadata["parse"](raw)
        except ValueError as exc:
            reason = str(exc) if "is not" in str(exc) or "names" in str(exc) else f"{raw!r}: {exc}"
            raise SettingsError(f"bad setting {source}: {reason}") from None
    _refuse_password_flag(args)
    values.update(overrides)
    return Settings(**values)


def _refuse_password_flag(args: argparse.Namespace | None) -> None:
    """A command line is visible to every user of the machine (ps): no secret on it."""
    url = getattr(args, "redis_url", None)
    if url and urlsplit(url).password:
        raise SettingsError(f"{flag_name('redis_url')} carries a password, which every user of "
                            f"this machine can read in the process list: put the URL in "
                            f"{env_name('redis_url')} or the password in "
                            f"{env_name('redis_password_file')}")

