"""Starting ccmon processes and reading their metrics: shared by `ccmon demo`, tests, benches."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from ccmon.embedded import die_with_parent
from ccmon.embedded import stop_process as stop
from ccmon.settings import env_name

Samples = dict[tuple[str, frozenset], float]  # (name, labels) -> value

__all__ = ["Samples", "ccmon_process", "scrape", "stop", "total", "try_scrape", "wait_until"]


def ccmon_process(command: list[str], settings: Mapping[str, object], log_path: Path,
                  extra_env: Mapping[str, str] | None = None,
                  **popen_options: object) -> subprocess.Popen:
    """`ccmon COMMAND...` as a child process, settings passed as CCMON_* variables; it ends
    when its parent does."""
    env = dict(os.environ)
    env.update({env_name(name): str(value) for name, value in settings.items()})
    env.update(extra_env or {})
    log = open(log_path, "ab")  # noqa: SIM115 - the child owns it for its lifetime
    return subprocess.Popen([sys.executable, "-m", "ccmon", *command], env=env, stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            preexec_fn=die_with_parent, **popen_options)


def scrape(url: str, timeout: float = 5.0) -> Samples:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def try_scrape(url: str) -> Samples | None:
    try:
        return scrape(url)
    except (OSError, urllib.error.URLError):
        return None


def wait_until(condition: Callable[[], object], deadline_seconds: float, what: str,
               interval: float = 0.2) -> object:
    """Poll `condition` until it returns something truthy; TimeoutError naming `what`."""
    deadline = time.monotonic() + deadline_seconds
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {deadline_seconds:g}s waiting for {what}")
        time.sleep(interval)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of a metric's series, or of those with these label values."""
    wanted = set(labels.items())
    return sum(value for (sample, sample_labels), value in samples.items()
               if sample == name and wanted <= sample_labels)
