"""Bad settings and unreachable servers: one clear line, never a traceback (running.md)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from ccmon.embedded import free_port, start_tansu
from ccmon.errors import SettingsError
from ccmon.settings import load, parse_duration, parse_windows
from tests.support import ROOT, servers


def ccmon(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ccmon", *args], capture_output=True,
                          text=True, timeout=60, env={**os.environ, **(env or {})},
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize(("args", "env", "named"), [
    (["--windows", "5x"], {}, "--windows"),
    ([], {"CCMON_WINDOWS": "5m,5m"}, "CCMON_WINDOWS"),
    (["--clock", "sundial"], {}, "--clock"),
    ([], {"CCMON_METRICS_PORT": "99999"}, "CCMON_METRICS_PORT"),
    (["--brokers", "nohostport"], {}, "--brokers"),
    (["--service-level-by-queue", "billing"], {}, "--service-level-by-queue"),
    ([], {"CCMON_EVAL_INTERVAL": "2s"}, "CCMON_EVAL_INTERVAL"),
])
def test_bad_setting_is_one_line_naming_it(args, env, named):
    result = ccmon("worker", *args, env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0] and lines[0].startswith("ccmon: ")
    assert "Traceback" not in result.stdout + result.stderr


def test_metrics_port_in_use_is_one_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = ccmon("worker", "--metrics-port", str(port))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"ccmon: cannot listen on 127.0.0.1:{port} (CCMON_METRICS_PORT): Address already in use")


def test_unreachable_broker_is_said_once_and_retried(tmp_path):
    port = free_port()  # nothing listens there yet
    process = subprocess.Popen(
        [sys.executable, "-m", "ccmon", "worker", "--brokers", f"127.0.0.1:{port}",
         "--metrics-port", str(free_port())],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    try:
        first = process.stdout.readline()
        assert first.strip() == f"ccmon: cannot reach Kafka at 127.0.0.1:{port}; retrying every 2s"
        with start_tansu(port, log_path=tmp_path / "tansu.log"):
            assert process.stdout.readline().strip() == \
                f"ccmon: Kafka at 127.0.0.1:{port} is reachable again"
            assert process.stdout.readline().startswith("ccmon: worker ccmon: consuming")
            process.terminate()
            rest = process.communicate(timeout=30)[0]
    finally:
        if process.poll() is None:
            process.kill()
    assert "Traceback" not in rest


def test_flag_wins_over_variable():
    import argparse

    args = argparse.Namespace(windows="1h", clock=None)
    settings = load(args, environ={"CCMON_WINDOWS": "5m", "CCMON_CLOCK": "event"})
    assert settings.windows == (("1h", 3600.0),)
    assert settings.clock == "event"


def test_setting_parsers():
    assert parse_duration("1.5h") == 5400
    assert parse_windows("5m, 1d") == (("5m", 300.0), ("1d", 86400.0))
    with pytest.raises(SettingsError, match="CCMON_SHORT_ABANDON_SECONDS"):
        load(environ={"CCMON_SHORT_ABANDON_SECONDS": "-1"})


def test_eval_interval_is_100ms_to_1s_in_whole_milliseconds():
    assert load(environ={}).eval_interval == 0.25  # alerts.md 1.1's default
    for text, seconds in (("100ms", 0.1), ("1s", 1.0), ("0.5s", 0.5), ("333ms", 0.333)):
        assert load(environ={"CCMON_EVAL_INTERVAL": text}).eval_interval == seconds
    for bad in ("99ms", "1001ms", "2s", "0.1005s", "0ms", "fast", "9" * 400 + "ms"):
        with pytest.raises(SettingsError, match="CCMON_EVAL_INTERVAL"):
            load(environ={"CCMON_EVAL_INTERVAL": bad})


def one_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2 and "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_gateway_without_redis_or_with_a_bad_tokens_file_is_one_line(tmp_path):
    assert one_line(ccmon("gateway", env={"CCMON_REDIS_URL": ""})).startswith(
        "ccmon: the gateway needs CCMON_REDIS_URL")
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text('tokens:\n  - name: alice\n    token: "s3cret"\n    queues: billing\n')
    line = one_line(ccmon("gateway", "--tokens", str(tokens), "--redis-url", "redis://x:1"))
    assert line == ("ccmon: token 'alice': field `queues`: a non-empty list of queue names, "
                    'or ["*"] for every queue')
    assert "s3cret" not in line


def test_worker_with_a_bad_rules_file_is_one_line_naming_rule_and_field(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - name: long-queue\n    metric: ccmon_queue_waiting_contacts\n"
                     "    op: '=='\n    threshold: 10\n")
    line = one_line(ccmon("worker", "--rules", str(rules), "--brokers", "127.0.0.1:1"))
    assert line == "ccmon: rule 'long-queue': field `op`: '==' is not one of > >= < <="


def test_unreachable_redis_is_said_once_and_retried(tmp_path):
    port = free_port()
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text('tokens:\n  - name: alice\n    token: "s3cret"\n    queues: ["*"]\n')
    process = subprocess.Popen(
        [sys.executable, "-m", "ccmon", "gateway", "--redis-url", f"redis://127.0.0.1:{port}/0",
         "--tokens", str(tokens), "--ws-port", str(free_port())],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    try:
        assert process.stdout.readline().startswith("ccmon: gateway ccmon: supervisor page")
        refused = process.stdout.readline().strip()
        assert refused.startswith(f"ccmon: cannot reach Redis at redis://127.0.0.1:{port}/0 (")
        assert refused.endswith("); retrying")
        with servers.start_redis(tmp_path, port=port):
            assert process.stdout.readline().strip() == "ccmon: alert store reachable again"
        assert process.poll() is None
    finally:
        process.terminate()
        assert process.wait(30) == 0


def test_python_m_ccmon_from_the_checkout_without_the_editable_install():
    """`python -m ccmon` in the repository root after a plain `pip install .`: the checkout's
    `ccmon/` shadows the installed package and must find `stream/` & co. beside it."""
    root = ROOT
    only_the_checkout = (
        "import sys; sys.meta_path[:] = [f for f in sys.meta_path "
        "if 'editable' not in repr(f).lower()]; "
        "sys.modules.pop('ccmon', None); "
        "import runpy; sys.argv = ['ccmon', '--help']; "
        "runpy.run_module('ccmon', run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", only_the_checkout], cwd=root,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "usage: ccmon" in result.stdout
