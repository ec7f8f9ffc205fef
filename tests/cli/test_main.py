"""The `faceflow` entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from faceflow import __version__
from faceflow.cli.main import app

FACEFLOW = Path(sys.executable).parent / "faceflow"


def test_installed_command_prints_the_version() -> None:
    done = subprocess.run(
        [str(FACEFLOW), "--version"], capture_output=True, text=True, timeout=60, check=False
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"faceflow {__version__}"


def test_no_arguments_prints_help_with_every_command() -> None:
    result = CliRunner().invoke(app, [])

    for command in ("analyze", "models"):
        assert command in result.output
