"""`faceflow serve`'s start-up check: the model files of the enabled operations, and no others."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from faceflow.config import ModelSettings
from faceflow.models.catalog import model_spec
from faceflow.models.store import ModelState, ModelStore
from tests.fixtures.live_server import LiveServerFactory, pulled_model_dir, server_env
from tests.fixtures.models import flip_a_byte


def store_with(tmp_path: Path, *names: str) -> Path:
    """A model store holding only the named models (copies of the pulled, verified files)."""
    pulled = pulled_model_dir()
    for name in names:
        filename = model_spec(name).filename
        shutil.copyfile(pulled / filename, tmp_path / filename)
    return tmp_path


def test_serve_starts_with_only_the_detector_when_it_serves_detection_only(
    tmp_path: Path, live_server_factory: LiveServerFactory
) -> None:
    store = store_with(tmp_path, "yunet")

    server = live_server_factory(MODELS__DIR=store, RUNTIME__OPERATIONS='["detect"]')
    try:
        info = httpx.get(f"{server.url}/v1/info", timeout=30.0)
    finally:
        server.stop()

    assert info.status_code == 200


def serve_until_refused(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`faceflow serve` on a port it never binds: it is expected to refuse before serving."""
    return subprocess.run(
        [sys.executable, "-m", "faceflow", "serve", "--port", "9"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_serve_refuses_to_start_without_a_model_an_enabled_operation_needs(tmp_path: Path) -> None:
    store = store_with(tmp_path, "yunet")
    env = server_env(store, {"RUNTIME__OPERATIONS": '["detect", "id-photo"]'})

    done = serve_until_refused(env)

    assert done.returncode == 2
    assert "model u2netp is missing" in done.stderr
    assert "age-v1" not in done.stderr  # analyze is not enabled: its models are not asked for
    assert "faceflow models pull" in done.stderr


def test_serve_refuses_a_model_changed_after_it_was_verified(tmp_path: Path) -> None:
    store = store_with(tmp_path, "yunet")
    assert ModelStore(ModelSettings(dir=store)).status(model_spec("yunet")).state is (
        ModelState.VERIFIED  # and stamped so
    )
    flip_a_byte(store / model_spec("yunet").filename)
    env = server_env(store, {"RUNTIME__OPERATIONS": '["detect"]'})

    done = serve_until_refused(env)

    assert done.returncode == 2
    assert "model yunet is corrupt" in done.stderr


def test_serve_on_a_port_in_use_exits_3_at_once_without_starting_inference_processes(
    tmp_path: Path,
) -> None:
    env = server_env(store_with(tmp_path, "yunet"), {"RUNTIME__OPERATIONS": '["detect"]'})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        done = subprocess.run(
            [sys.executable, "-m", "faceflow", "serve", "--port", str(port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    assert done.returncode == 3, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in done.stderr
    assert "inference process" not in done.stderr + done.stdout  # none was spawned


def test_serve_on_a_host_that_reads_as_markup_names_it_and_exits_3(tmp_path: Path) -> None:
    env = server_env(store_with(tmp_path, "yunet"), {"RUNTIME__OPERATIONS": '["detect"]'})

    done = subprocess.run(
        [sys.executable, "-m", "faceflow", "serve", "--host", "[/x]", "--port", "8000"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 3, done.stderr
    assert "cannot listen on [/x]:8000:" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_hands_the_inference_processes_it_started_first_to_the_app(
    live_server_factory: LiveServerFactory,
) -> None:
    """They are spawned before the web stack is imported, and adopted, not started twice."""
    server = live_server_factory(RUNTIME__PROCESSES=2)
    try:
        log = server.log_path.read_text()
    finally:
        server.stop()

    assert log.count("adopted from the head start") == 2
    assert " started (pid" not in log


def test_sigterm_to_the_whole_process_group_stops_serve_without_respawning(
    live_server_factory: LiveServerFactory,
) -> None:
    """What `kill -- -PGID`, a container runtime or a service manager killing a control group
    does: every process gets SIGTERM at once. The inference processes leave their shutdown to
    the server, which stops them, instead of dying under it and being replaced while it stops."""
    server = live_server_factory(RUNTIME__PROCESSES=2)
    assert server.process is not None
    try:
        os.killpg(server.process.pid, signal.SIGTERM)
        code = server.process.wait(timeout=60)
    finally:
        server.stop()
    log = server.log_path.read_text(errors="replace")

    # uvicorn shuts down gracefully, then re-raises the signal it caught: -SIGTERM.
    assert code in (0, -signal.SIGTERM), log[-2000:]
    assert "Application shutdown complete" in log
    assert "died with exit code" not in log
    assert " started (pid" not in log  # no replacement was spawned
