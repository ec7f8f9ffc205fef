"""The README is the front door: its settings table, its two commands and its examples must stay
true."""

from __future__ import annotations

import json
import os
import re
import runpy
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from pydantic import BaseModel

import faceflow
from faceflow import errors
from faceflow.config import ModelSettings, Settings
from faceflow.library import FlowClosed
from faceflow.pipeline.idphoto.compliance.hints import HINTS
from faceflow.service import errors as service_errors
from faceflow.service.metrics import Metrics
from tests.fixtures.cli_parse import parse_command_line
from tests.fixtures.environment import PROJECT_ROOT, require
from tests.fixtures.live_server import LiveServer

README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_documented_with_its_environment_variable() -> None:
    settings = Settings()
    missing = []
    for group in Settings.model_fields:
        values = getattr(settings, group)
        assert isinstance(values, BaseModel)
        for name in type(values).model_fields:
            if f"`FACEFLOW_{group.upper()}__{name.upper()}`" not in README:
                missing.append(f"{group}.{name}")
    assert not missing, f"README configuration table lacks {missing}; run scripts/config_table.py"


def test_each_setting_has_one_row_in_the_configuration_table() -> None:
    # jobs.max_queued_per_client had two rows (one hand-edited, one pasted from the script),
    # which a reader must compare to learn they say the same.
    rows = [line.split("|")[2].strip() for line in README.splitlines() if line.startswith("| `")]
    variables = [cell for cell in rows if cell.startswith("`FACEFLOW_")]
    twice = sorted({cell for cell in variables if variables.count(cell) > 1})
    assert not twice, f"README configuration table has more than one row for {twice}"


def test_the_configuration_table_says_what_the_settings_model_says() -> None:
    # A default or a meaning changed in config.py and not in the README is a table that misleads
    # (the row's code spans aside: the README may mark up a name the model's text leaves plain).
    printed = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "scripts" / "config_table.py")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()[2:]
    in_readme = {
        line.split("|")[1].strip(): line.replace("`", "")
        for line in README.splitlines()
        if line.startswith("| `") and "`FACEFLOW_" in line
    }
    stale = [
        row.split("|")[1].strip()
        for row in printed
        if in_readme.get(row.split("|")[1].strip()) != row.replace("`", "")
    ]
    assert not stale, f"README rows differ from scripts/config_table.py's for {stale}"


def test_readme_gives_the_two_commands_and_ci_runs_the_same_test_command() -> None:
    assert "make serve" in README
    assert "make test" in README
    ci = (PROJECT_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in ci


def test_every_metric_is_documented() -> None:
    # Counters are scraped with a _total suffix, and the README names them as scraped.
    scraped = [
        f"{family.name}_total" if family.type == "counter" else family.name
        for family in Metrics().registry.collect()
    ]
    missing = [name for name in scraped if f"`{name}`" not in README]
    assert not missing, f"README's metrics table lacks {missing}"


def try_it_commands() -> list[list[str]]:
    """The curl commands of the README's "Try it" block, split as a shell splits them (comments
    dropped)."""
    block = README.split("## Try it", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    return [
        shlex.split(line, comments=True) for line in block.splitlines() if line.startswith("curl ")
    ]


def run_curl(argv: list[str], server: LiveServer, cwd: Path, handle: str) -> tuple[int, str]:
    """``argv`` against ``server`` (the README's ``localhost:8000`` and ``HANDLE`` replaced):
    the HTTP status and what curl wrote to standard output."""
    host = server.url.removeprefix("http://")
    argv = [arg.replace("localhost:8000", host).replace("HANDLE", handle) for arg in argv]
    done = subprocess.run(
        [*argv, "-w", "\n%{http_code}"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, (argv, done.stderr)
    body, _, status = done.stdout.rpartition("\n")
    return int(status), body


def test_the_try_it_commands_answer_as_the_readme_says(
    live_server: LiveServer, testdata: Path, tmp_path: Path
) -> None:
    # Run as a reader would paste them: a drifted route, option or value in the README (a
    # renamed spec, an option the API no longer takes) is an error here.
    require(shutil.which("curl") is not None, "curl not found (scripts/system-deps.sh installs it)")
    shutil.copyfile(testdata / "obama.jpg", tmp_path / "photo.jpg")
    shutil.copyfile(testdata / "portrait_2.jpg", tmp_path / "portrait.jpg")
    commands = try_it_commands()
    assert len(commands) >= 9, commands
    handle = ""
    for argv in commands:
        status, body = run_curl(argv, live_server, tmp_path, handle)
        url = next(arg for arg in argv if "localhost:8000" in arg)
        if "/v1/jobs" in url and "-F" in argv:
            assert status == 202, (url, body)
            handle = json.loads(body)["handle"]
            continue
        assert status == 200, (url, body)
        if "-o" in argv:
            with Image.open(tmp_path / argv[argv.index("-o") + 1]) as image:
                assert image.format == "JPEG", url
            if "max_kb=30" in url:
                assert (tmp_path / argv[argv.index("-o") + 1]).stat().st_size <= 30_000
        else:
            assert isinstance(json.loads(body), dict), url
    assert handle, "the README's jobs example gave no handle"


def cli_examples() -> list[list[str]]:
    """The ``faceflow`` commands of the README's command-line block, split as a shell splits
    them (comments dropped, a pipe's left side too)."""
    block = README.split("The same from the command line", 1)[1].split("```sh", 1)[1]
    lines = block.split("```", 1)[0].splitlines()
    return [
        shlex.split(line.split("|", 1)[-1], comments=True) for line in lines if "faceflow " in line
    ]


def test_the_command_line_examples_parse_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each is parsed by the command's own parser (typer's click) without running it: a renamed
    # flag or a value the flag no longer takes in the README is an error here. The files they
    # name exist (empty) where they are parsed, as parsing checks some do.
    monkeypatch.chdir(tmp_path)
    for folder in ("photos", "more", "staff"):
        (tmp_path / folder).mkdir()
    for name in ("photo.jpg", "portrait.jpg", "group.jpg", "more/a.jpg"):
        (tmp_path / name).touch()
    examples = cli_examples()
    assert len(examples) >= 10, examples
    for argv in examples:
        parse_command_line(argv)


def test_the_library_example_runs_as_written(
    pulled_model_settings: ModelSettings,
    testdata: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The README's Python block, run as written beside a group photo and a portrait; only
    # FaceFlow() is given this run's pulled models (where a reader's `models pull` puts them).
    code = README.split("```python", 1)[1].split("```", 1)[0]
    shutil.copyfile(testdata / "two_people.jpg", tmp_path / "group.jpg")
    shutil.copyfile(testdata / "portrait_2.jpg", tmp_path / "me.jpg")
    monkeypatch.chdir(tmp_path)
    with_models = faceflow.FaceFlow(Settings(models=pulled_model_settings))
    monkeypatch.setattr(faceflow, "FaceFlow", lambda: with_models)

    exec(compile(code, "README.md", "exec"), {})  # the README's own code

    *faces, answer, status = capsys.readouterr().out.splitlines()
    assert len(faces) == 2, faces
    assert json.loads(answer)["face_count"] == 2
    assert all("Gender.MALE" in face for face in faces), faces  # two men
    assert status in {"pass", "warn", "fail"}
    with Image.open(tmp_path / "me-2inch.jpg") as image:
        assert image.size == (413, 579)  # cn-2inch: 35 × 49 mm at 300 dpi


def test_the_configuration_table_is_the_same_on_any_machine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A default made from the machine (its cores, its home) printed as found is a README that
    # says this machine's value for everyone's: `jobs.worker_processes` read `2`, not "cores".
    rows = runpy.run_path(str(PROJECT_ROOT / "scripts" / "config_table.py"))["rows"]
    here = rows()
    monkeypatch.setattr(os, "cpu_count", lambda: 97)
    monkeypatch.setenv("HOME", "/elsewhere")
    monkeypatch.setenv("XDG_CACHE_HOME", "/elsewhere/cache")
    assert rows() == here


ERROR_CODE = re.compile(r"`([a-z]+(?:_[a-z]+)*)`")

NOT_ANSWERED = {cls.code for cls in errors._all_subclasses(errors.ModelError)} | {FlowClosed.code}
"""Codes no HTTP client gets: a model missing, corrupt or unknown stops `faceflow serve` at start
(and `faceflow models` says it), so no request meets one; a library `FaceFlow` used after its
close() is the library's alone (and found here only once `faceflow.library` is imported)."""

NOT_CODES = {
    "chunked",
    "identity",
    "coding",
    "parameter",
    "min",
    "max",
    "max_chunks",
    "allowed",
    "detected",
    "format",
    "max_pieces",
    "face_count",
    "failure",
    "max_bytes",
    "max_fields",
}
"""The lower-case words in code spans of the README's error table that are not codes: an error's
details, and HTTP's own words (`Transfer-Encoding` ending in `chunked`, `Content-Encoding`
`identity`)."""


def readme_error_table() -> dict[str, set[int]]:
    """The README's error table: each word in code spans, with the statuses of its row."""
    table = README.split("Errors are always", 1)[1].split("\n\n", 2)[1]
    found: dict[str, set[int]] = {}
    for row in table.splitlines():
        cells = row.split("|")
        if len(cells) < 4 or not cells[1].strip()[:1].isdigit():
            continue
        statuses = {int(status) for status in re.findall(r"\d{3}", cells[1])}
        for word in ERROR_CODE.findall("|".join(cells[2:])):
            found.setdefault(word, set()).update(statuses)
    return found


def answered_codes() -> dict[str, int]:
    """Every error code the service can answer, with its status: the error tree's, and those
    the one HTTP error handler names for Starlette's own refusals (405)."""
    codes = {
        cls.code: cls.status
        for cls in errors._all_subclasses(errors.FaceflowError)
        if cls.code not in NOT_ANSWERED
    }
    codes["method_not_allowed"] = 405
    return codes


def test_every_error_code_is_in_the_readme_under_its_status() -> None:
    table = readme_error_table()
    wrong = {
        code: (status, sorted(table.get(code, ())))
        for code, status in answered_codes().items()
        if status not in table.get(code, set())
    }
    assert not wrong, f"README's error table lacks these codes or gives another status: {wrong}"


def test_every_code_in_the_readme_error_table_is_one_the_code_has() -> None:
    # A renamed or misspelt code in the table is one a client waits for in vain.
    known = (
        set(answered_codes()) | set(service_errors._HTTP_CODES.values()) | NOT_ANSWERED | NOT_CODES
    )
    unknown = sorted(set(readme_error_table()) - known)
    assert not unknown, f"README's error table names codes faceflow does not have: {unknown}"


def test_the_checks_table_names_every_check_of_the_report() -> None:
    # A check the report gives and the README's table leaves out is one a reader meets without
    # its thresholds; one the table names and the report lacks, a check that is not made.
    table = README.split("| check | fails / warns when |", 1)[1].split("\n\n", 1)[0]
    named = re.findall(r"^\| `([a-z_]+)` \|", table, flags=re.MULTILINE)
    assert sorted(named) == sorted(HINTS)
