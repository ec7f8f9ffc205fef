"""The CLI starts light: help and the listing commands import no part of the heavy stack.

Checked by what a fresh interpreter has imported when the command exits, not by a stopwatch
(the machine may be busy); `python -X importtime -m faceflow --help` shows the cost itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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

COMMANDS = [
    ("--help",),
    ("id-photo-specs",),
    ("models", "list"),
    ("analyze", "--help"),
    ("serve", "--help"),
    ("worker", "--help"),
    ("bench", "--help"),
    ("id-photo", "--help"),
]

# Runs each command in turn in one fresh interpreter and prints, per command, its exit code and
# the heavy modules first imported while it ran. Imports only accumulate, so a heavy module
# shows under the first command that pulled it in: each command is judged as in a process of its
# own, at one interpreter's start-up instead of eight.
_PROBE = """
import json, sys
heavy, commands = json.loads(sys.argv[1]), json.loads(sys.argv[2])
from faceflow.cli.main import app
seen, found = set(), {}
for args in commands:
    try:
        app(args, prog_name="faceflow")
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    new = sorted(m for m in heavy if m in sys.modules and m not in seen)
    seen.update(new)
    found[" ".join(args)] = {"exit": code, "heavy": new}
print(json.dumps(found))
"""


# Commands that read no settings: typer would build a pydantic adapter for its own unset flags
# (see faceflow.cli.flags), so even these imported pydantic.
WITHOUT_SETTINGS = [("--help",), ("id-photo-specs",), ("--version",), ("models", "--help")]


def _probe(
    modules: tuple[str, ...], commands: list[tuple[str, ...]]
) -> dict[str, dict[str, object]]:
    """Per command (its arguments joined by spaces): its exit code and which of ``modules`` it
    imported first, all commands run in one fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(modules), json.dumps(commands)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, dict[str, object]] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


@pytest.fixture(scope="module")
def imported_by() -> dict[str, dict[str, object]]:
    return _probe(HEAVY, COMMANDS)


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a))
def test_command_imports_no_heavy_module(
    args: tuple[str, ...], imported_by: dict[str, dict[str, object]]
) -> None:
    assert imported_by[" ".join(args)] == {"exit": 0, "heavy": []}


def test_commands_without_settings_import_no_pydantic() -> None:
    found = _probe(("pydantic",), WITHOUT_SETTINGS)

    assert found == {" ".join(args): {"exit": 0, "heavy": []} for args in WITHOUT_SETTINGS}


# Modules a run of `faceflow analyze` needs none of: the event loop of the spawned pool's
# fallback, the rate limiter the settings once imported to check their default, and the
# environment's settings sources when no FACEFLOW_ variable names a setting.
NOT_FOR_ANALYZE = ("asyncio", "limits", "pydantic_settings")


@pytest.mark.usefixtures("pulled_model_settings")
def test_analyzing_a_photo_imports_no_event_loop_rate_limiter_or_settings_sources(
    testdata: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.upper().startswith("FACEFLOW_"):
            monkeypatch.delenv(name)
    args = ("analyze", str(testdata / "obama.jpg"), "--json")

    found = _probe(NOT_FOR_ANALYZE, [args])

    assert found == {" ".join(args): {"exit": 0, "heavy": []}}


# A bad flag value, beside a real photo: refused by the parser before the command runs, so
# before any settings are read, photo read or model loaded (each of these was said by the command
# after OpenCV, numpy and the settings were imported: ≈ 0.45 s of a core).
REFUSED = [
    ("id-photo", "--spec", "icaoo", "-o", "OUT", "PHOTO"),
    ("id-photo", "--background", "blu", "-o", "OUT", "PHOTO"),
    ("id-photo", "--sheet", "a5", "-o", "OUT", "PHOTO"),
    ("id-photo", "--max-kb", "0", "-o", "OUT", "PHOTO"),
    ("analyze", "--attributes", "agee", "PHOTO"),
    ("analyze", "--threshold", "2", "PHOTO"),
]


def test_a_bad_flag_value_is_refused_before_settings_photos_or_models(
    tmp_path: Path, testdata: Path
) -> None:
    where = {"OUT": str(tmp_path / "out"), "PHOTO": str(testdata / "obama_small.jpg")}
    commands = [tuple(where.get(word, word) for word in args) for args in REFUSED]

    found = _probe((*HEAVY, "faceflow.config", "faceflow.runtime.context"), commands)

    assert found == {" ".join(args): {"exit": 2, "heavy": []} for args in commands}
    assert not (tmp_path / "out").exists()
