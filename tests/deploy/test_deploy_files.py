"""The files in deploy/, checked without a Docker engine: the compose file by Compose's own
``config`` validation (the ``docker compose`` plugin is absent here, so Debian's standalone
``docker-compose``) and structurally (services, replicas, dependencies, volumes, Redis roles); the
nginx config by ``nginx -t``; the example config by loading it; the systemd units by parsing.
"""

from __future__ import annotations

import configparser
import ipaddress
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from faceflow.cli.serve import KEEP_ALIVE_S
from faceflow.config import JobSettings, Settings, load_settings
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


def test_compose_redis_keep_images_on_disk_no_more_than_jobs_need() -> None:
    """Uploads and results reach a Redis's disk only where jobs need it: the queue's AOF. The
    queue Redis also took Redis's default save rules, a second copy in RDB snapshots."""
    services = compose()["services"]
    for name in ("queue-redis", "cache-redis"):
        command = services[name]["command"]
        assert command[command.index("--save") + 1] == "", name
    cache = services["cache-redis"]["command"]
    assert cache[cache.index("--appendonly") + 1] == "no"


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
    # Access lines carry the path without its query: an ID photo's source= renders the photo.
    log_format = text[text.index("log_format") : text.index(";", text.index("log_format"))]
    assert "$uri" in log_format
    assert not any(name in log_format for name in ("$request ", '$request"', "$args", "$query"))


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


# --- the promises the README makes, checked in the files themselves (issue 16) ---

_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def _nginx() -> str:
    return (DEPLOY / "nginx.conf").read_text()


def _directive(text: str, name: str) -> list[str]:
    """Every value of nginx directive ``name`` (comments stripped)."""
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    return [m.group(1).strip() for m in re.finditer(rf"(?m)^\s*{name}\s+([^;]+);", code)]


def _bytes(size: str) -> int:
    match = re.fullmatch(r"(\d+)([kmg]?)(b?)", size.strip().lower())
    assert match is not None, size
    return int(match.group(1)) * _SIZE_UNITS[match.group(2)]


def _seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(ms|s|m)?", value.strip())
    assert match is not None, value
    return int(match.group(1)) * {"ms": 0.001, "s": 1, "m": 60, None: 1}[match.group(2)]


def test_nginx_keeps_every_upload_in_memory() -> None:
    """A body larger than client_body_buffer_size is written to a temporary file."""
    text = _nginx()
    (max_body,) = _directive(text, "client_max_body_size")
    (buffer,) = _directive(text, "client_body_buffer_size")
    assert _bytes(buffer) >= _bytes(max_body)
    assert _bytes(max_body) >= Settings().limits.max_upload_bytes
    assert _directive(text, "client_body_in_file_only") in ([], ["off"])


def test_nginx_passes_the_clients_host_and_port() -> None:
    headers = _directive(_nginx(), "proxy_set_header")
    assert "Host $http_host" in headers
    assert "Host $host" not in headers


def test_nginx_retries_what_its_comment_says() -> None:
    text = _nginx()
    (conditions,) = _directive(text, "proxy_next_upstream")
    comment = next(line for line in text.splitlines() if "answers 50" in line)
    for status in re.findall(r"50\d", comment):
        assert f"http_{status}" in conditions.split(), (status, conditions)
    assert "non_idempotent" not in conditions  # POSTs (job submissions) are never retried


def test_nginx_closes_idle_upstream_connections_before_uvicorn_does() -> None:
    upstream = re.search(r"upstream faceflow_api \{(.*?)\}", _nginx(), re.S)
    assert upstream is not None
    # Without the directive nginx keeps idle upstream connections 60 s.
    (upstream_timeout,) = _directive(upstream.group(1), "keepalive_timeout") or ["60s"]
    assert _seconds(upstream_timeout) < KEEP_ALIVE_S


def test_compose_tells_the_api_which_proxy_to_trust() -> None:
    data = compose()
    services = data["services"]
    for name in ("api", "worker"):
        trusted = json.loads(services[name]["environment"]["FACEFLOW_SERVER__TRUSTED_PROXIES"])
        nginx_ip = services["nginx"]["networks"]["default"]["ipv4_address"]
        assert trusted == [nginx_ip]
        subnet = data["networks"]["default"]["ipam"]["config"][0]["subnet"]
        assert ipaddress.ip_address(nginx_ip) in ipaddress.ip_network(subnet)
    # The value is what the setting accepts.
    settings = Settings.model_validate({"server": {"trusted_proxies": trusted}})
    assert settings.server.trusted_proxies == trusted


def test_queue_redis_holds_a_full_queue_of_the_largest_uploads() -> None:
    """maxmemory ≥ max_queued × max_upload_bytes with a quarter to spare for results and
    registries (and beyond it, submissions get queue_full, see test_rq_runner)."""
    queue = compose()["services"]["queue-redis"]["command"]
    maxmemory = _bytes(queue[queue.index("--maxmemory") + 1])
    settings = load_settings(DEPLOY / "faceflow.example.yaml")
    payloads = settings.jobs.max_queued * settings.limits.max_upload_bytes
    assert maxmemory >= 1.25 * payloads, (maxmemory, payloads)


def _unit(name: str) -> tuple[list[str], dict[str, str]]:
    """The unit's non-comment lines, and its Environment= variables (systemd quoting)."""
    lines = [
        line
        for line in (DEPLOY / "systemd" / f"faceflow-{name}.service").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    env: dict[str, str] = {}
    for line in lines:
        if line.startswith("Environment="):
            for word in shlex.split(line.removeprefix("Environment=")):
                key, _, value = word.partition("=")
                env[key] = value
    return lines, env


@pytest.mark.parametrize("unit", ["serve", "worker"])
def test_systemd_units_refer_only_to_files_the_install_creates(unit: str) -> None:
    lines, env = _unit(unit)
    text = "\n".join(lines)
    layout = (DEPLOY / "systemd" / f"faceflow-{unit}.service").read_text()
    for path in sorted(set(re.findall(r"(?<![\w.])/(?:opt|etc|var|usr)/[\w./-]+", text))):
        # Each absolute path is made by a step of the install layout in the unit's header.
        made = re.findall(r"(?m)^#\s+(/\S+)\s", layout)
        assert any(path.startswith(m) or m.startswith(path + "/") for m in made), path
    assert "Documentation=file:" not in text
    assert env["FACEFLOW_CONFIG"] == "/etc/faceflow/faceflow.yaml"
    assert "deploy/faceflow.example.yaml" in layout  # where that file comes from
    assert (DEPLOY / "faceflow.example.yaml").is_file()


def test_one_models_directory_across_units_config_and_image() -> None:
    example = load_settings(DEPLOY / "faceflow.example.yaml").models.dir
    dirs = {"example config": example}
    for unit in ("serve", "worker"):
        _, env = _unit(unit)
        dirs[unit] = (
            Path(env["FACEFLOW_MODELS__DIR"])
            if "FACEFLOW_MODELS__DIR" in env
            else Path(env["XDG_CACHE_HOME"]) / "faceflow" / "models"
        )
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    match = re.search(r"XDG_CACHE_HOME=(\S+)", dockerfile)
    assert match is not None
    dirs["image"] = Path(match.group(1)) / "faceflow" / "models"
    assert len(set(dirs.values())) == 1, dirs


def test_systemd_serve_unit_trusts_the_local_proxy() -> None:
    _, env = _unit("serve")
    trusted = json.loads(env["FACEFLOW_SERVER__TRUSTED_PROXIES"])
    assert "127.0.0.1" in trusted
    Settings.model_validate({"server": {"trusted_proxies": trusted}})


def test_no_setting_injects_test_behaviour() -> None:
    """Crash and hold behaviour for tests is injected in code (tests/jobs/faults.py)."""
    assert not [name for name in JobSettings.model_fields if "test" in name]
