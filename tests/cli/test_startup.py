"""The CLI starts light: help and the listing commands import no part of the heavy stack.

Checked by what a fresh interpreter has imported when the command exits, not by a stopwatch
(the machine may be busy); `python -X importtime -m faceflow --help` shows the cost itself.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = (
    "onnxruntime",
    "onnx",
    "cv2",
    "numpy",
    "PIL",
    "fastapi",
    "starlette",
    "uvicorn",
    "redis",
    "rq",
    "httpx",
    "prometheus_client",
)

_PROBE = """
import atexit, json, sys
heavy = json.loads(sys.argv[1])
atexit.register(lambda: print(json.dumps(sorted(m for m in heavy if m in sys.modules))))
sys.argv = ["faceflow", *sys.argv[2:]]
from faceflow.cli.main import app
app()
"""


def _imported_by(*args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(HEAVY), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("id-photo-specs",),
        ("models", "list"),
        ("analyze", "--help"),
        ("serve", "--help"),
        ("worker", "--help"),
        ("bench", "--help"),
        ("id-photo", "--help"),
    ],
    ids=lambda a: " ".join(a),
)
def test_command_imports_no_heavy_module(args: tuple[str, ...]) -> None:
    assert _imported_by(*args) == []


@pytest.mark.parametrize(
    "args",
    [("--help",), ("id-photo-specs",), ("--version",), ("models", "--help")],
    ids=lambda a: " ".join(a),
)
def test_commands_without_settings_import_no_pydantic(args: tuple[str, ...]) -> None:
    """typer would build a pydantic adapter for its own unset flags (see faceflow.cli.flags)."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(["pydantic"]), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    assert "pydantic" not in loaded
