"""The Docker Compose stack (docker-compose.yml, Dockerfile, prometheus/, grafana/provisioning/).

No Docker engine runs here, so this checks what can be checked without one: Compose itself
validates the file (`docker compose config`; scripts/test builds the Compose plugin), every
image is pinned, the services reach each other, every file mounted is in the repo, and the
Prometheus config passes the real promtool with the rule files it mounts.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from typing import Any

import pytest
import yaml

from tests.support import ROOT

COMPOSE = ROOT / "docker-compose.yml"
SERVICES = {"kafka", "redis", "worker-1", "worker-2", "gateway", "simulator", "prometheus",
            "grafana"}
WORKERS = ("worker-1", "worker-2")
# An exact version: no `latest`, no bare major (`7`) or major.minor alone is accepted.
PINNED_TAG = re.compile(r"v?\d+\.\d+\.\d+([.-][0-9A-Za-z.-]+)?")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())  # merge keys (<<) resolved as Compose does


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict[str, Any]]:
    return compose["services"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host path relative to the repo, container path) of each bind mount of a service."""
    mounts = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                mounts.append((volume["source"], volume["target"]))
            continue
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/", "~")):  # otherwise a named volume
            mounts.append((source, target))
    return mounts


def test_docker_compose_accepts_the_file():
    docker = shutil.which("docker")
    assert docker, "the docker client is missing"
    version = subprocess.run([docker, "compose", "version"], capture_output=True, text=True,
                             timeout=60)
    assert version.returncode == 0, (
        "the Docker Compose plugin is missing: scripts/test builds it with Go "
        f"(see its 'Docker Compose' step)\n{version.stdout}{version.stderr}")
    result = subprocess.run([docker, "compose", "-f", str(COMPOSE), "config", "-q"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_stack_has_every_service(compose, services):
    assert "version" not in compose  # the Compose specification has none
    assert set(services) >= SERVICES, SERVICES - set(services)


def test_every_image_is_pinned_or_built_here(services):
    for name, service in services.items():
        image = service.get("image")
        if image is None:
            assert "build" in service, f"{name}: neither image nor build"
            continue
        reference, _, tag = image.rpartition(":")
        assert reference and "/" not in tag, f"{name}: image {image} has no tag"
        assert tag != "latest" and PINNED_TAG.fullmatch(tag), f"{name}: {image} is not pinned"


def test_the_ccmon_image_is_built_from_this_repo_at_its_version(services):
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for name in (*WORKERS, "gateway", "simulator"):
        service = services[name]
        assert service["build"] in (".", {"context": "."}), name
        assert service["image"] == f"ccmon:{version}", name
        assert service.get("pull_policy") == "build", name  # never pulled from a registry
    dockerfile = (ROOT / "Dockerfile").read_text()
    base = re.search(r"^FROM\s+(\S+)", dockerfile, re.MULTILINE)
    assert base, "Dockerfile has no FROM"
    assert PINNED_TAG.match(base.group(1).rpartition(":")[2]), base.group(1)
    assert re.search(r"^USER\s+(?!root\b|0\b)\S+", dockerfile, re.MULTILINE), "runs as root"
    assert 'ENTRYPOINT ["ccmon"]' in dockerfile


def test_ccmon_services_reach_kafka_redis_and_each_other(services):
    advertised = environment(services["kafka"])["KAFKA_ADVERTISED_LISTENERS"]
    for name in (*WORKERS, "gateway", "simulator"):
        env = environment(services[name])
        if name != "gateway":
            assert env["CCMON_BROKERS"] == "kafka:9092", name
            assert "kafka" in services[name]["depends_on"], name
        if name != "simulator":
            # The default 127.0.0.1 would not be reachable from Prometheus or the host.
            assert env["CCMON_BIND"] == "0.0.0.0", name
            assert env["CCMON_REDIS_URL"] == "redis://redis:6379/0", name
    assert "PLAINTEXT://kafka:9092" in advertised.split(",")
    for name in WORKERS:
        env = environment(services[name])
        assert env["CCMON_METRICS_PORT"] == "9464", name
        mounted = {target for _, target in bind_mounts(services[name])}
        assert env["CCMON_RULES"] in mounted, name
    gateway = environment(services["gateway"])
    assert gateway["CCMON_TOKENS"] in {target for _, target in bind_mounts(services["gateway"])}
    assert f"{gateway['CCMON_WS_PORT']}:{gateway['CCMON_WS_PORT']}" in services["gateway"]["ports"]


def test_redis_keeps_its_data_in_an_append_only_file_on_a_volume(compose, services):
    redis = services["redis"]
    command = [str(word) for word in redis["command"]]
    assert command[0] == "redis-server"
    options = dict(zip(command[1::2], command[2::2], strict=True))
    assert options == {"--appendonly": "yes", "--appendfsync": "everysec"}
    volumes = {volume.split(":")[1]: volume.split(":")[0] for volume in redis["volumes"]}
    assert volumes["/data"] in compose["volumes"]  # named: it outlives the container


def test_every_mounted_file_is_in_the_repo(services):
    mounted = 0
    for name, service in services.items():
        for source, _ in bind_mounts(service):
            path = (ROOT / source).resolve()
            assert path.is_relative_to(ROOT), f"{name} mounts {source}, outside the repo"
            assert path.exists(), f"{name} mounts {source}, which does not exist"
            mounted += 1
    assert mounted >= 8


def prometheus_config() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())


def test_prometheus_scrapes_both_workers_as_job_ccmon_and_the_gateway(services):
    config = prometheus_config()
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}

    def targets(job: str) -> set[str]:
        return {target for static in jobs[job]["static_configs"] for target in static["targets"]}

    # Job "ccmon": the SRE rules (up{job="ccmon"}) and the dashboards select it.
    assert targets("ccmon") == {f"{name}:9464" for name in WORKERS}
    assert targets("ccmon-gateway") == {"gateway:8765"}
    assert jobs["ccmon-gateway"].get("metrics_path", "/metrics") == "/metrics"
    assert config["global"]["scrape_interval"] == "15s"
    # Its rule files are exactly the two rule files of the repo, mounted where it reads them.
    mounts = {target: source for source, target in bind_mounts(services["prometheus"])}
    assert {mounts[path] for path in config["rule_files"]} == {
        "./alerts/prometheus/ccmon-sre.rules.yml", "./prometheus/ccmon-recording.rules.yml"}
    assert mounts["/etc/prometheus/prometheus.yml"] == "./prometheus/prometheus.yml"


def test_prometheus_config_passes_promtool(services, tmp_path):
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: scripts/test installs Debian's prometheus package"
    config = prometheus_config()
    mounts = {target: source for source, target in bind_mounts(services["prometheus"])}
    config["rule_files"] = [str((ROOT / mounts[path]).resolve()) for path in config["rule_files"]]
    copy = tmp_path / "prometheus.yml"
    copy.write_text(yaml.safe_dump(config))
    result = subprocess.run([promtool, "check", "config", str(copy)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 2 rule files found" in result.stdout + result.stderr


def test_grafana_has_the_datasource_and_the_dashboards_provisioned(services):
    grafana = services["grafana"]
    mounts = {target: source for source, target in bind_mounts(grafana)}
    assert mounts["/etc/grafana/provisioning"] == "./grafana/provisioning"
    provisioning = ROOT / "grafana" / "provisioning"
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    [source] = datasources["datasources"]
    assert (source["type"], source["uid"], source["url"], source["isDefault"]) == (
        "prometheus", "prometheus", "http://prometheus:9090", True)

    providers = yaml.safe_load((provisioning / "dashboards" / "ccmon.yml").read_text())
    [provider] = providers["providers"]
    assert (provider["type"], provider["folder"], provider["allowUiUpdates"]) == (
        "file", "ccmon", False)
    path = provider["options"]["path"]
    dashboards = ROOT / mounts[path]
    assert sorted(dashboards.glob("*.json")), f"no dashboard in {mounts[path]}"

    home = environment(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(path + "/")
    assert (dashboards / home.removeprefix(path + "/")).is_file(), home
