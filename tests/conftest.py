"""Session-wide real servers for the tests: Apache Kafka, tansu and Redis, each started once.

Each fixture yields a `servers.Server` (`.address`, `.url`, `.stop()`, `.kill()`); the servers'
logs are in the session's `workdir`. A test that stops or kills a server must start its own
instead of using these.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.support import servers
from tests.support.deployment import Deployment

# Property-based tests: thorough by default; quick and repeatable for the mutation runs
# (scripts/mutation), which run the pure tests once per mutant.
settings.register_profile("thorough", max_examples=200, deadline=None)
settings.register_profile("mutation", max_examples=20, deadline=None, derandomize=True,
                          database=None)
settings.load_profile(os.environ.get("CCMON_HYPOTHESIS_PROFILE", "thorough"))


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("servers")


@pytest.fixture(scope="session")
def kafka(workdir: Path) -> Iterator[servers.Server]:
    server = servers.start_kafka(workdir)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tansu(workdir: Path) -> Iterator[servers.Server]:
    server = servers.start_tansu(workdir)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server(workdir: Path) -> Iterator[servers.Server]:
    server = servers.start_redis(workdir)
    yield server
    server.stop()


@pytest.fixture
def deployment(kafka, tmp_path: Path) -> Iterator[Deployment]:
    """A ccmon deployment of its own on the session's Kafka; its workers stop at the end."""
    deployment = Deployment(kafka, tmp_path)
    yield deployment
    deployment.stop_all()


@pytest.fixture
def day_deployment(kafka, tmp_path: Path) -> Iterator[Deployment]:
    """A deployment with one window of a day: figures of a day worked out by hand."""
    deployment = Deployment(kafka, tmp_path, windows="1d")
    yield deployment
    deployment.stop_all()


@pytest.fixture
async def stack(redis_server, tmp_path: Path):
    """Gateways, supervisors and the store of an app id of its own on the session's Redis;
    all closed at the end."""
    from tests.support.alerting import AlertStack

    stack = AlertStack(redis_server.url, tmp_path)
    yield stack
    await stack.close()
