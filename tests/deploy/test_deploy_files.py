"""The files in deploy/, checked without a Docker engine: the compose file by Compose's own
``config`` validation (the ``docker compose`` plugin is absent here, so Debian's standalone
``docker-compose``) and structurally (services, replicas, dependencies, volumes, Redis roles); the
nginx config by ``nginx -t``; the example config by loading it; the systemd units by parsing.
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
from tests.fixtures.environment import require

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


def _compose_command() -> list[str] | None:
    """`docker compose` (the v2 plugin) if present, else the standalone `docker-compose`."""
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    return [standalone] if standalone is not None else None


def test_compose_config_accepts_the_file() -> None:
    """Validated by Compose itself against the Compose Specification schema (no engine needed).
    Here that is Debian's `docker-compose` (scripts/system-deps.sh installs it); the `docker
    compose` plugin is used instead wherever it is installed."""
    command = _compose_command()
    require(command is not None, "neither `docker compose` nor `docker-compose` is installed")
    assert command is not None
    result = subprocess.run(
        [*command, "-f", str(DEPLOY / "compose.yaml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr + result.stdout


def test_nginx_accepts_the_config(tmp_path: Path) -> None:
    # Debian puts nginx in /usr/sbin, which is not on every user's PATH.
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    require(nginx is not None, "nginx is not installed")
    assert nginx is not None
    # The upstream host only resolves inside compose; everything else is checked as written.
    text = (DEPLOY / "nginx.conf").read_text().replace("server api:8000", "server 127.0.0.1:8000")
    (tmp_path / "nginx.conf").write_text(text)
    result = subprocess.run(
        [
            nginx,
            "-t",
            "-q",
            "-p",
            str(tmp_path),
            "-e",
            "stderr",
            "-c",
            str(tmp_path / "nginx.conf"),
        ],
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
