"""`faceflow serve`'s start-up check: the model files of the enabled operations, and no others."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx

from faceflow.models.catalog import model_spec
from tests.fixtures.live_server import LiveServerFactory, pulled_model_dir, server_env


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


def test_serve_refuses_to_start_without_a_model_an_enabled_operation_needs(tmp_path: Path) -> None:
    store = store_with(tmp_path, "yunet")
    env = server_env(store, {"RUNTIME__OPERATIONS": '["detect", "id-photo"]'})

    done = subprocess.run(
        [sys.executable, "-m", "faceflow", "serve", "--port", "9"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 2
    assert "model u2netp is missing" in done.stderr
    assert "age-v1" not in done.stderr  # analyze is not enabled: its models are not asked for
    assert "faceflow models pull" in done.stderr
