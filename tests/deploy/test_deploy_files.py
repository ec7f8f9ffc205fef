"""The files in deploy/: structure checks that need no Docker engine.

``docker compose config`` is run as well when the Compose client plugin is installed; it is not
on the development and CI machines (no Docker here), so the compose file is checked structurally:
services, replicas, dependencies, volumes and mounted files, and the Redis roles.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from faceflow.config import Settings, load_settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def test_compose_has_the_scale_out_services() -> None:
    services = compose()["services"]
    assert set(services) == {"api", "worker", "cache-redis", "queue-redis", "nginx"}
    assert services["api"]["deploy"]["replicas"] == 2
    assert services["worker"]["deploy"]["replicas"] == 2
    assert services["api"]["command"][0] == "serve"
    assert services["worker"]["command"][0] == "worker"
    for name in ("api", "worker"):
        env = services[name]["environment"]
        assert env["FACEFLOW_JOBS__REDIS_URL"].startswith("redis://queue-redis:")
        assert env["FACEFLOW_CACHE__REDIS_URL"].startswith("redis://cache-redis:")
        assert (
            DEPLOY / services[name]["build"]["context"] / services[name]["build"]["dockerfile"]
        ).is_file()


def test_compose_redis_roles() -> None:
    services = compose()["services"]
    queue = " ".join(services["queue-redis"]["command"])
    assert "--appendonly yes" in queue
    assert "--maxmemory-policy noeviction" in queue
    cache = " ".join(services["cache-redis"]["command"])
    assert "allkeys-lru" in cache


def test_compose_references_resolve() -> None:
    data = compose()
    services = data["services"]
    declared_volumes = set(data.get("volumes") or {})
    for name, service in services.items():
        for dependency in service.get("depends_on") or {}:
            assert dependency in services, (name, dependency)
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).is_file(), (name, source)
            else:
                assert source in declared_volumes, (name, source)
        assert "healthcheck" in service or name in ("worker", "nginx"), name


def test_docker_compose_accepts_the_file_when_available() -> None:
    docker = shutil.which("docker")
    if (
        docker is None
        or subprocess.run(
            [docker, "compose", "version"], capture_output=True, check=False
        ).returncode
    ):
        pytest.skip("no `docker compose` client plugin here; structure checked by the tests above")
    result = subprocess.run(
        [docker, "compose", "-f", str(DEPLOY / "compose.yaml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_example_config_documents_and_loads_every_setting() -> None:
    path = DEPLOY / "faceflow.example.yaml"
    data = yaml.safe_load(path.read_text())
    assert set(data) == set(Settings.model_fields)
    for group, field in Settings.model_fields.items():
        model = field.annotation
        assert model is not None
        assert set(data[group]) == set(model.model_fields), group
    settings = load_settings(path)
    assert settings.jobs.redis_url is not None
    assert settings.jobs.test_crash_marker is None
    text = path.read_text()
    for line in text.splitlines():
        if line.startswith("  ") and not line.lstrip().startswith("#") and ":" in line:
            assert "#" in line, f"undocumented setting: {line.strip()}"


def test_dockerfile_pulls_models_at_build_time() -> None:
    lines = (DEPLOY / "Dockerfile").read_text().splitlines()
    runs = [line for line in lines if line.startswith("RUN")]
    assert any("faceflow models pull" in line for line in runs)
    assert lines[0].startswith("#")
    assert any(line.startswith("FROM python:3.") for line in lines)


def test_nginx_balances_caps_bodies_and_times_out() -> None:
    text = (DEPLOY / "nginx.conf").read_text()
    assert text.count("{") == text.count("}")
    for directive in (
        "upstream faceflow_api",
        "least_conn",
        "client_max_body_size",
        "proxy_read_timeout",
        "proxy_connect_timeout",
        "client_body_timeout",
    ):
        assert directive in text, directive


@pytest.mark.parametrize(("unit", "command"), [("serve", "serve"), ("worker", "worker")])
def test_systemd_units(unit: str, command: str) -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read(DEPLOY / "systemd" / f"faceflow-{unit}.service")
    service = parser["Service"]
    assert service["ExecStart"].split()[-1] == command
    assert service["KillSignal"] == "SIGTERM"
    assert service["KillMode"] == "mixed"
    assert int(service["TimeoutStopSec"]) > 30
    assert parser["Install"]["WantedBy"] == "multi-user.target"
