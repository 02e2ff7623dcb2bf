"""Secured Kafka and Redis (running.md 1.1) on real servers: SASL_SSL with SCRAM-SHA-512 and with
PLAIN, mutual TLS, `rediss://` with a password. Workers export exactly the engine's figures
and deliver alerts through them; a refused password, an untrusted certificate or the wrong
protocol ends a command with exit code 2 and one line naming the server and the cause; no
password ever shows in an output, a log or a command line."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import yaml

from ccmon.embedded import free_port
from ccmon.errors import SettingsError
from ccmon.figures import engine_figures
from ccmon.settings import env_name, load
from ccmon.stream.simulate import Simulation
from tests.integration.test_alerts_live import expected_messages, with_abandons
from tests.integration.test_alerts_live import lines as scenario_lines
from tests.integration.test_worker import wait_for_figures
from tests.support import DATA
from tests.support.alerting import LONG_QUEUE, LOW_SL, Client, Gateway, long_queue_day, write_tokens
from tests.support.deployment import DEADLINE, Deployment
from tests.support.secured import (
    PLAIN_USER,
    SCRAM_USER,
    SecuredKafka,
    SecuredRedis,
    start_secured_kafka,
    start_secured_redis,
)
from tests.support.tls import CertificateAuthority

pytestmark = pytest.mark.kafka

START = 1_763_802_000.0  # 2025-11-22T09:00:00Z
COMMAND_SECONDS = 120.0
_files = itertools.count()


@pytest.fixture(scope="module")
def secured_kafka(workdir: Path) -> Iterator[SecuredKafka]:
    kafka = start_secured_kafka(workdir)
    yield kafka
    kafka.server.stop()


@pytest.fixture(scope="module")
def secured_redis(workdir: Path) -> Iterator[SecuredRedis]:
    redis = start_secured_redis(workdir)
    yield redis
    redis.server.stop()


def secret_file(folder: Path, name: str, secret: str) -> Path:
    path = folder / f"{next(_files)}-{name}"
    path.write_text(secret + "\n")  # as an editor saves it: the line break is not the password
    path.chmod(0o600)
    return path


def sasl(kafka: SecuredKafka, folder: Path, mechanism: str, password: str | None = None
         ) -> dict[str, object]:
    user = SCRAM_USER if mechanism.startswith("SCRAM") else PLAIN_USER
    return {"brokers": kafka.sasl_ssl, "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_mechanism": mechanism, "kafka_sasl_username": user,
            "kafka_sasl_password_file": secret_file(
                folder, f"{user}.password", password or kafka.passwords[user]),
            "kafka_ca_file": kafka.ca.ca_file}


def mutual_tls(kafka: SecuredKafka) -> dict[str, object]:
    return {"brokers": kafka.mutual_tls, "kafka_security_protocol": "SSL",
            "kafka_ca_file": kafka.ca.ca_file, "kafka_cert_file": kafka.client.cert,
            "kafka_key_file": kafka.client.key}


def rediss(redis: SecuredRedis, folder: Path, password: str | None = None) -> dict[str, object]:
    return {"redis_url": redis.server.url, "redis_ca_file": redis.ca.ca_file,
            "redis_password_file": secret_file(folder, "redis.password",
                                               password or redis.password)}


def assert_no_secret(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text, "a password leaked"


def command_line(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def run_ccmon(command: list[str], values: dict[str, object]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCMON_")}
    env |= {env_name(name): str(value) for name, value in values.items()}
    return subprocess.run([sys.executable, "-m", "ccmon", *command], env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=COMMAND_SECONDS, check=False)


# -- the worker, simulate and replay through each kind of security ----------------------------

def simulated(seed: int, seconds: float) -> list[bytes]:
    return [orjson.dumps(e) for e in Simulation(seed, START).events_until(START + seconds)]


@pytest.mark.parametrize("how", ["scram-replay", "plain-simulate", "mtls-replay"])
def test_a_worker_on_secured_kafka_exports_exactly_the_engines_figures(
        secured_kafka: SecuredKafka, tmp_path: Path, how: str):
    security = {"scram-replay": lambda: sasl(secured_kafka, tmp_path, "SCRAM-SHA-512"),
                "plain-simulate": lambda: sasl(secured_kafka, tmp_path, "PLAIN"),
                "mtls-replay": lambda: mutual_tls(secured_kafka)}[how]()
    deployment = Deployment(secured_kafka.server, tmp_path, **security)
    try:
        lines = simulated(seed=11, seconds=1800)
        wanted = engine_figures(lines, deployment.settings)
        worker = deployment.start_worker()
        producer_values = {**deployment.values}
        if how.endswith("simulate"):  # `ccmon simulate` makes the same events, 30 min in 3 s
            sent = run_ccmon(["simulate", "--seed", "11", "--start", str(START), "--speed",
                              "600", "--duration", "30m"], producer_values)
        else:
            path = tmp_path / "events.jsonl"
            path.write_bytes(b"\n".join(lines) + b"\n")
            sent = run_ccmon(["replay", str(path), "--no-progress"], producer_values)
        assert sent.returncode == 0, sent.stderr
        wait_for_figures([worker.metrics_url], wanted, deployment)
        assert "--kafka" not in command_line(worker.pid)  # settings travel as variables
        assert_no_secret(deployment.log_tail() + sent.stdout + sent.stderr,
                         *secured_kafka.passwords.values())
    finally:
        deployment.stop_all()


# -- alerts through rediss:// with a password --------------------------------------------------

async def test_worker_and_gateway_deliver_alerts_through_redis_on_tls_with_a_password(
        secured_kafka: SecuredKafka, secured_redis: SecuredRedis, tmp_path: Path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"rules": [LONG_QUEUE, LOW_SL]}))
    redis = rediss(secured_redis, tmp_path)
    deployment = Deployment(secured_kafka.server, tmp_path, partitions=1, rules=rules,
                            **sasl(secured_kafka, tmp_path, "SCRAM-SHA-512"), **redis)
    gateway = Gateway({**redis, "app_id": deployment.values["app_id"],
                       "tokens": write_tokens(tmp_path / "tokens.yaml")},
                      tmp_path / "gateway.log")
    client = await Client.open(gateway.ws_url, "carol")
    try:
        await client.until(lambda m: m["type"] == "snapshot", "the snapshot")
        scenario = with_abandons(long_queue_day())
        wanted = expected_messages(scenario)
        await asyncio.to_thread(deployment.start_worker)
        await deployment.send_async(scenario_lines(scenario))
        await client.until(lambda m: m.get("id") == wanted[-1]["id"]
                           and m["status"] == "resolved", "the last transition", DEADLINE)
        assert client.alerts() == wanted
    finally:
        await client.close()
        gateway.stop()
        deployment.stop_all()
    assert_no_secret(gateway.log() + deployment.log_tail(), secured_redis.password,
                     *secured_kafka.passwords.values())


# -- refusals: one line, exit code 2 ------------------------------------------------------------

WRONG = "wrong-pw-3f9c2a"


def refusal_cases(kafka: SecuredKafka, redis: SecuredRedis, folder: Path
                  ) -> dict[str, tuple[list[str], dict[str, object], str, str]]:
    """name -> (command, settings, the server named, the cause)."""
    other_ca = CertificateAuthority(folder, "unknown").ca_file
    events = folder / "one.jsonl"
    events.write_text('{"event_id": "x"}\n')
    queue_log = folder / "queue_log"
    queue_log.write_bytes((DATA / "queue_log").read_bytes())
    gateway = ["gateway"]
    tokens = {"tokens": write_tokens(folder / "tokens.yaml"), "ws_port": free_port()}
    host_port = redis.server.address
    return {
        "worker, wrong SCRAM password": (
            ["worker"], sasl(kafka, folder, "SCRAM-SHA-512", WRONG), kafka.sasl_ssl,
            "refused the login (SASL_SSL, SCRAM-SHA-512 as 'scram-user'): Authentication "
            "failed"),
        "replay, wrong PLAIN password": (
            ["replay", str(events)], sasl(kafka, folder, "PLAIN", WRONG), kafka.sasl_ssl,
            "refused the login (SASL_SSL, PLAIN as 'plain-user'): Authentication failed"),
        "simulate, unknown CA": (
            ["simulate", "--duration", "1m"],
            {**sasl(kafka, folder, "PLAIN"), "kafka_ca_file": other_ca},
            kafka.sasl_ssl, "has a TLS certificate we do not trust"),
        "worker, plaintext against TLS": (
            ["worker"], {"brokers": kafka.sasl_ssl}, kafka.sasl_ssl,
            "speaks TLS and we sent plaintext: check CCMON_KAFKA_SECURITY_PROTOCOL"),
        "replay, TLS against plaintext": (
            ["replay", str(events)], {**mutual_tls(kafka), "brokers": kafka.server.address},
            kafka.server.address, "does not speak TLS"),
        "worker, no client certificate": (
            ["worker"], {**mutual_tls(kafka), "kafka_cert_file": "", "kafka_key_file": ""},
            kafka.mutual_tls, "wants a client certificate"),
        "ingest asterisk, wrong SCRAM password": (
            ["ingest", "asterisk", str(queue_log), "--state", str(folder / "position")],
            {**sasl(kafka, folder, "SCRAM-SHA-512", WRONG), "metrics_port": free_port()},
            kafka.sasl_ssl, "refused the login (SASL_SSL, SCRAM-SHA-512 as 'scram-user')"),
        "demo, wrong PLAIN password": (
            ["demo"], {**sasl(kafka, folder, "PLAIN", WRONG), "metrics_port": free_port(),
                       "ws_port": free_port()},
            kafka.sasl_ssl, "refused the login (SASL_SSL, PLAIN as 'plain-user')"),
        "gateway, wrong Redis password": (
            gateway, {**rediss(redis, folder, WRONG), **tokens}, host_port,
            "refused the password"),
        "gateway, Redis certificate of an unknown CA": (
            gateway, {**rediss(redis, folder), "redis_ca_file": other_ca, **tokens}, host_port,
            "has a TLS certificate we do not trust"),
        "gateway, redis:// against TLS": (
            gateway, {**rediss(redis, folder), "redis_ca_file": "", **tokens,
                      "redis_url": f"redis://{host_port}/0"}, host_port,
            "speaks TLS and we sent plaintext"),
        "worker, wrong Redis password": (
            ["worker"], {**sasl(kafka, folder, "SCRAM-SHA-512"),
                         **rediss(redis, folder, WRONG)}, host_port, "refused the password"),
    }


def test_refusals_are_one_line_naming_the_server_and_the_cause(
        secured_kafka: SecuredKafka, secured_redis: SecuredRedis, tmp_path: Path):
    secrets = (WRONG, secured_redis.password, *secured_kafka.passwords.values())
    failures = []
    for name, (command, values, server, cause) in refusal_cases(
            secured_kafka, secured_redis, tmp_path).items():
        if command == ["worker"]:
            values = {**values, "metrics_port": free_port()}
        done = run_ccmon(command, values)
        lines = done.stderr.splitlines()
        assert_no_secret(done.stdout + done.stderr, *secrets)
        if (done.returncode != 2 or len(lines) != 1 or not lines[0].startswith("ccmon: ")
                or server not in lines[0] or cause not in lines[0]):
            failures.append(f"{name}: exit {done.returncode}, stderr {done.stderr!r}")
    assert not failures, "\n".join(failures)


# -- settings that cannot work: before any connection ---------------------------------------

@pytest.mark.parametrize(("environ", "line"), [
    ({"CCMON_KAFKA_SECURITY_PROTOCOL": "TLS"},
     "bad setting CCMON_KAFKA_SECURITY_PROTOCOL: 'TLS' is not one of PLAINTEXT, SSL, "
     "SASL_PLAINTEXT, SASL_SSL"),
    ({"CCMON_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "CCMON_KAFKA_SASL_USERNAME": "u"},
     "CCMON_KAFKA_SECURITY_PROTOCOL SASL_SSL needs CCMON_KAFKA_SASL_USERNAME and "
     "CCMON_KAFKA_SASL_PASSWORD_FILE"),
    ({"CCMON_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "CCMON_KAFKA_SASL_USERNAME": "u",
      "CCMON_KAFKA_SASL_PASSWORD_FILE": "/nonexistent/pw"},
     "cannot read CCMON_KAFKA_SASL_PASSWORD_FILE /nonexistent/pw: No such file or directory"),
    ({"CCMON_KAFKA_CA_FILE": "/etc/hostname"},
     "CCMON_KAFKA_CA_FILE and CCMON_KAFKA_CERT_FILE need CCMON_KAFKA_SECURITY_PROTOCOL SSL or "
     "SASL_SSL"),
    ({"CCMON_KAFKA_SECURITY_PROTOCOL": "SSL", "CCMON_KAFKA_CA_FILE": "/etc/hostname"},
     "cannot use CCMON_KAFKA_CA_FILE /etc/hostname: no PEM certificate in it"),
    ({"CCMON_REDIS_URL": "redis://localhost:6379/0", "CCMON_REDIS_CA_FILE": "/etc/hostname"},
     "CCMON_REDIS_CA_FILE needs a rediss:// CCMON_REDIS_URL"),
    ({"CCMON_KAFKA_SECURITY_PROTOCOL": "SSL", "CCMON_METRICS_PORT": "0", "CCMON_WS_PORT": "0"},
     "the embedded broker speaks plaintext only: with CCMON_KAFKA_SECURITY_PROTOCOL set "
     "CCMON_BROKERS too"),
])
def test_unusable_security_settings_are_one_line(environ: dict[str, str], line: str):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCMON_")} | environ
    command = (["gateway"] if "CCMON_REDIS_URL" in environ else
               ["demo"] if "CCMON_WS_PORT" in environ else ["replay", "/dev/null"])
    done = subprocess.run([sys.executable, "-m", "ccmon", *command], env=env,
                          capture_output=True, text=True, timeout=COMMAND_SECONDS, check=False)
    assert (done.returncode, done.stderr) == (2, f"ccmon: {line}\n")


def test_a_password_on_the_command_line_is_refused():
    parser_args = type("Args", (), {"redis_url": "rediss://:s3cret@redis:6380/0"})()
    with pytest.raises(SettingsError) as refused:
        load(parser_args, environ={})
    assert "s3cret" not in str(refused.value)
    assert "CCMON_REDIS_PASSWORD_FILE" in str(refused.value)
