"""Real servers for the tests, each a subprocess bound to 127.0.0.1 on a free port.

Plain Python (no pytest): `start_kafka`, `start_tansu`, `start_redis` and `start_prometheus`
return a running `Server` once it is ready (polled against a deadline, never a fixed sleep) or
raise `ServerError` with the tail of the server's log file, which lives in the given workdir.

Apache Kafka runs in KRaft mode (controller and broker in one JVM) from the jars that
`mvn -f pom.xml dependency:copy-dependencies` puts in build/kafka/libs; `kafka_libs()` runs that
copy itself when the folder is missing, so a bare `pytest` works too.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import fcntl
import hashlib
import itertools
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import yaml

from ccmon import embedded
from ccmon.embedded import (
    die_with_parent,
    free_port,
    log_tail,
    stop_process,
    wait_for_kafka_process,
)
from ccmon.errors import EmbeddedBrokerError
from tests.support import ROOT

KAFKA_LIBS = ROOT / "build" / "kafka" / "libs"
KAFKA_START_SECONDS = 90.0
REDIS_START_SECONDS = 20.0
PROMETHEUS_START_SECONDS = 30.0
MVN_SECONDS = 600.0
_counter = itertools.count(1)


class ServerError(RuntimeError):
    """A server that could not be started; the message ends with the tail of its log."""


@dataclass
class Server:
    """A server process: `.address` is host:port, `.url` a client URL where one is usual."""

    name: str
    process: subprocess.Popen
    host: str
    port: int
    log_path: Path
    url: str | None = None
    workdir: Path | None = None
    listeners: dict[str, str] = field(default_factory=dict)  # Kafka: extra listener -> address
    _log_file: IO[bytes] | None = field(default=None, repr=False)
    _stopper: object | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        atexit.register(self.stop)  # even if the test run ends without its teardown

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def bootstrap(self) -> str:
        """Same as `.address` (Kafka's word for it)."""
        return self.address

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait up to `timeout` seconds, then SIGKILL. Idempotent."""
        if self._stopper is not None:
            self._stopper.stop(timeout)  # type: ignore[attr-defined]
        else:
            stop_process(self.process, timeout)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        atexit.unregister(self.stop)
        return self.process.returncode

    def kill(self) -> int | None:
        """SIGKILL, no grace: the server dies as in a crash."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        return self.stop()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _server_dir(workdir: str | os.PathLike[str], name: str) -> Path:
    path = Path(workdir) / f"{name}-{next(_counter)}-{os.getpid()}"
    path.mkdir(parents=True, exist_ok=False)
    return path


def _launch(name: str, command: list[str], directory: Path, **kwargs) -> tuple[
        subprocess.Popen, Path, IO[bytes]]:
    log_path = directory / f"{name}.log"
    log_file = open(log_path, "ab")  # noqa: SIM115 - closed by Server.stop
    try:
        process = subprocess.Popen(
            command, cwd=directory, stdin=subprocess.DEVNULL, stdout=log_file,
            stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=die_with_parent, **kwargs)
    except OSError as exc:
        log_file.close()
        raise ServerError(f"cannot run {name} ({command[0]}): {exc}") from exc
    return process, log_path, log_file


# --- Apache Kafka -----------------------------------------------------------------------------


def _pom_stamp() -> str:
    return hashlib.sha256((ROOT / "pom.xml").read_bytes()).hexdigest()


def _libs_current() -> bool:
    stamp = KAFKA_LIBS / ".pom-sha256"
    return (any(KAFKA_LIBS.glob("kafka_2.13-*.jar")) and stamp.exists()
            and stamp.read_text().strip() == _pom_stamp())


def kafka_libs() -> Path:
    """build/kafka/libs with the broker jars of pom.xml, fetched with Maven when missing/stale."""
    if _libs_current():
        return KAFKA_LIBS
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ServerError("Apache Kafka jars are missing in build/kafka/libs and mvn is not "
                          "installed: run scripts/test, or install Maven")
    KAFKA_LIBS.parent.mkdir(parents=True, exist_ok=True)
    with open(KAFKA_LIBS.parent / ".fetch.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two pytest processes must not copy at once
        if not _libs_current():
            partial = KAFKA_LIBS.with_name("libs.partial")
            shutil.rmtree(partial, ignore_errors=True)
            result = subprocess.run(
                [mvn, "-q", "-B", "-f", str(ROOT / "pom.xml"), "dependency:copy-dependencies",
                 f"-DoutputDirectory={partial}"],
                cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                timeout=MVN_SECONDS, check=False)
            if result.returncode != 0 or not any(partial.glob("kafka_2.13-*.jar")):
                tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
                raise ServerError(f"mvn could not fetch the Kafka jars:\n{tail}")
            (partial / ".pom-sha256").write_text(_pom_stamp() + "\n")
            shutil.rmtree(KAFKA_LIBS, ignore_errors=True)
            partial.rename(KAFKA_LIBS)
    return KAFKA_LIBS


def _random_cluster_id() -> str:
    # It may start with "-": pass it as --cluster-id=ID, never as a separate argument.
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


_LOG4J2 = """\
Configuration:
  status: warn
  Appenders:
    Console:
      name: STDOUT
      target: SYSTEM_OUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Logger:
      - name: kafka
        level: INFO
      - name: org.apache.kafka
        level: INFO
      - name: state.change.logger
        level: WARN
      - name: kafka.request.logger
        level: WARN
    Root:
      level: WARN
      AppenderRef:
        - ref: STDOUT
"""


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise ServerError("java is not installed (Apache Kafka needs Java 17 or later)")
    return java


def _free_ports(host: str, count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port(host)
        if port not in ports:
            ports.append(port)
    return ports


def start_kafka(workdir: str | os.PathLike[str], *, timeout: float = KAFKA_START_SECONDS,
                extra_properties: dict[str, str] | None = None,
                extra_listeners: dict[str, str] | None = None,
                format_arguments: Sequence[str] = ()) -> Server:
    """A single-node Apache Kafka (KRaft, controller+broker in one process) on a free port.

    `extra_listeners` (name -> security protocol, e.g. {"SASL_SSL": "SASL_SSL"}) get a free
    port each, their addresses in `.listeners`; `.address` stays the PLAINTEXT listener.
    `format_arguments` go to the storage format (e.g. `--add-scram` users)."""
    libs = kafka_libs()
    directory = _server_dir(workdir, "kafka")
    host = "127.0.0.1"
    extra_listeners = extra_listeners or {}
    port, controller_port, *extra_ports = _free_ports(host, 2 + len(extra_listeners))
    listeners = {"PLAINTEXT": port, **dict(zip(extra_listeners, extra_ports, strict=True))}
    advertised = ",".join(f"{name}://{host}:{p}" for name, p in listeners.items())
    protocols = {"PLAINTEXT": "PLAINTEXT", "CONTROLLER": "PLAINTEXT", **extra_listeners}
    properties = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{host}:{controller_port}",
        "listeners": f"{advertised},CONTROLLER://{host}:{controller_port}",
        "advertised.listeners": advertised,
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": ",".join(f"{k}:{v}" for k, v in protocols.items()),
        "log.dirs": str(directory / "data"),
        "num.partitions": "1",
        "default.replication.factor": "1",
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "4",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "log.segment.bytes": str(16 * 1024 * 1024),
        "log.retention.check.interval.ms": "60000",
        "num.network.threads": "2",
        "num.io.threads": "2",
        "num.recovery.threads.per.data.dir": "1",
    }
    properties.update(extra_properties or {})
    config = directory / "server.properties"
    config.write_text("".join(f"{k}={v}\n" for k, v in properties.items()))
    log4j = directory / "log4j2.yaml"
    log4j.write_text(_LOG4J2)
    java = [
        _java(), "-Xms128m", "-Xmx512m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log4j}", f"-Dkafka.logs.dir={directory}",
        "-cp", f"{libs}/*",
    ]
    log_path = directory / "kafka.log"
    with open(log_path, "ab") as log:
        log.write(b"== kafka.tools.StorageTool format\n")
        log.flush()
        try:
            formatted = subprocess.run(
                # C1 only: this short-lived JVM starts faster without the optimising compiler.
                [*java, "-XX:TieredStopAtLevel=1", "kafka.tools.StorageTool", "format",
                 f"--cluster-id={_random_cluster_id()}", "--config", str(config),
                 *format_arguments],
                cwd=directory, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                timeout=120, check=False)
        except subprocess.TimeoutExpired:
            formatted = None
    if formatted is None or formatted.returncode != 0:
        raise ServerError(f"formatting Kafka storage failed; last lines of {log_path}:\n"
                          f"{log_tail(log_path)}")
    process, log_path, log_file = _launch("kafka", [*java, "kafka.Kafka", str(config)], directory)
    server = Server("kafka", process, host, port, log_path, workdir=directory,
                    listeners={name: f"{host}:{p}" for name, p in listeners.items()
                               if name != "PLAINTEXT"}, _log_file=log_file)
    _wait_or_raise(server, lambda: wait_for_kafka_process(
        process, host, port, name="Apache Kafka", log_path=log_path, timeout=timeout))
    return server


def _wait_or_raise(server: Server, wait) -> None:
    try:
        wait()
    except EmbeddedBrokerError as exc:
        server.stop()
        raise ServerError(str(exc)) from None
    except BaseException:
        server.stop()
        raise


def _poll_ready(server: Server, ready: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `ready` until true; a server that exits or misses the deadline is a ServerError
    with its log's tail (and is stopped)."""

    def wait() -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if server.process.poll() is not None:
                raise ServerError(f"{server.name} exited with code {server.process.returncode}; "
                                  f"last lines of {server.log_path}:\n{log_tail(server.log_path)}")
            if time.monotonic() > deadline:
                raise ServerError(f"{server.name} did not {what} on {server.address} within "
                                  f"{timeout:g}s; last lines of {server.log_path}:\n"
                                  f"{log_tail(server.log_path)}")
            time.sleep(0.05)  # poll pace

    _wait_or_raise(server, wait)


# --- tansu ------------------------------------------------------------------------------------


def start_tansu(workdir: str | os.PathLike[str], *, timeout: float = 30.0) -> Server:
    """tansu, the demo's embedded broker (ccmon.embedded), with its log in workdir."""
    directory = _server_dir(workdir, "tansu")
    try:
        broker = embedded.start_tansu(log_path=directory / "tansu.log", timeout=timeout)
    except EmbeddedBrokerError as exc:
        raise ServerError(str(exc)) from None
    return Server("tansu", broker.process, broker.host, broker.port, broker.log_path,
                  workdir=directory, _stopper=broker)


# --- Redis ------------------------------------------------------------------------------------


def _redis_pong(host: str, port: int, tls: ssl.SSLContext | None = None,
                password: str | None = None) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0) as raw:
            sock = tls.wrap_socket(raw, server_hostname=host) if tls else raw
            if password is not None:
                sock.sendall(f"AUTH {password}\r\n".encode())
                if not sock.recv(64).startswith(b"+OK"):
                    return False
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(workdir: str | os.PathLike[str], *, port: int | None = None,
                timeout: float = REDIS_START_SECONDS, tls: tuple[Path, Path, Path] | None = None,
                password: str | None = None) -> Server:
    """Debian's redis-server on `port` or a free one, nothing persisted (its dir is in
    workdir). With `tls` (certificate, key, CA file: PEM) it listens on TLS only (`.url` is
    `rediss://`, no client certificate asked); with `password` it requires it."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServerError("redis-server is not installed: run scripts/test, or "
                          "apt-get install redis-server")
    directory = _server_dir(workdir, "redis")
    host, port = "127.0.0.1", port or free_port()
    command = [binary, "--bind", host, "--save", "", "--appendonly", "no",
               "--dir", str(directory), "--daemonize", "no", "--logfile", ""]
    if tls is None:
        command += ["--port", str(port)]
        scheme, context = "redis", None
    else:
        cert, key, ca = tls
        command += ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert),
                    "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca),
                    "--tls-auth-clients", "no"]
        scheme, context = "rediss", ssl.create_default_context(cafile=str(ca))
    if password is not None:
        command += ["--requirepass", password]
    process, log_path, log_file = _launch("redis", command, directory)
    server = Server("redis", process, host, port, log_path, url=f"{scheme}://{host}:{port}/0",
                    workdir=directory, _log_file=log_file)

    _poll_ready(server, lambda: _redis_pong(host, port, context, password), timeout,
                "answer PING")
    return server


# --- Prometheus -------------------------------------------------------------------------------


def http_ok(url: str) -> bool:
    """True if `url` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def start_prometheus(workdir: str | os.PathLike[str], scrape_configs: list[dict],
                     rule_files: Sequence[str | os.PathLike[str]] = (), *,
                     scrape_interval: str = "1s",
                     timeout: float = PROMETHEUS_START_SECONDS) -> Server:
    """Debian's prometheus on a free port: it scrapes `scrape_configs` (Prometheus' own
    `scrape_configs` entries) and evaluates `rule_files` (recording and alerting rules) every
    `scrape_interval`; its config, TSDB and log are in workdir. `.url` is the base URL of its
    HTTP API (`/api/v1/query`)."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise ServerError("prometheus is not installed: run scripts/test, or "
                          "apt-get install prometheus")
    missing = [str(path) for path in rule_files if not Path(path).is_file()]
    if missing:  # Prometheus takes them as globs: a missing file would load nothing, silently
        raise ServerError(f"no such rule file: {', '.join(missing)}")
    directory = _server_dir(workdir, "prometheus")
    config = directory / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": scrape_interval, "scrape_timeout": scrape_interval,
                   "evaluation_interval": scrape_interval},
        "rule_files": [str(Path(path).resolve()) for path in rule_files],
        "scrape_configs": scrape_configs,
    }, sort_keys=False))
    host, port = "127.0.0.1", free_port()
    command = [binary, f"--config.file={config}", f"--storage.tsdb.path={directory / 'data'}",
               f"--web.listen-address={host}:{port}", "--log.level=info"]
    process, log_path, log_file = _launch("prometheus", command, directory)
    server = Server("prometheus", process, host, port, log_path, url=f"http://{host}:{port}",
                    workdir=directory, _log_file=log_file)

    _poll_ready(server, lambda: http_ok(f"{server.url}/-/ready"), timeout, "get ready")
    return server


__all__ = ["Server", "ServerError", "kafka_libs", "start_kafka", "start_prometheus",
           "start_redis", "start_tansu"]
