"""The `faceflow` entry point."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main
from pydantic import BaseModel
from typer.testing import CliRunner

from faceflow import __version__
from faceflow.cli.common import TERMINATED_STATUS
from faceflow.cli.main import app
from faceflow.cli.stdout import BROKEN_PIPE_STATUS
from faceflow.domain import Operation
from faceflow.operations.faces import FACE_OPTIONS
from faceflow.operations.idphoto import PhotoOptions
from faceflow.operations.parse import option_names
from tests.fixtures.cli_parse import parse_command_line
from tests.fixtures.environment import PROJECT_ROOT

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


def test_every_option_and_argument_of_every_command_has_help() -> None:
    missing: list[str] = []

    def walk(command: object, path: str) -> None:
        for param in getattr(command, "params", []):
            if not getattr(param, "help", None):
                missing.append(f"{path} {param.name}")
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{path} {name}")

    walk(typer.main.get_command(app), "faceflow")

    assert missing == []


def test_every_paragraph_of_every_commands_help_is_one_line() -> None:
    # Typer shows a command's help with its line breaks kept: the summary in `faceflow --help`
    # and the paragraphs of `faceflow serve --help` came out broken mid-sentence where the
    # docstring wraps in the source (cli.common.reflowed joins them).
    long: list[str] = []

    def walk(command: object, path: str) -> None:
        for name, sub in getattr(command, "commands", {}).items():
            paragraphs = (getattr(sub, "help", None) or "").strip().split("\n\n")
            long.extend(f"{path} {name}: {text!r}" for text in paragraphs if "\n" in text)
            walk(sub, f"{path} {name}")

    walk(typer.main.get_command(app), "faceflow")

    assert long == []


def _leaf_commands(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The path of every command that runs (not a group), ``models`` and its own below it."""
    subcommands = getattr(command, "commands", None)
    if subcommands is None:
        return [path]
    return [
        leaf for name, sub in subcommands.items() for leaf in _leaf_commands(sub, (*path, name))
    ]


LEAF_COMMANDS = _leaf_commands(typer.main.get_command(app))


def _groups(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The path of every group of commands, `faceflow` itself (the empty path) first."""
    subcommands = getattr(command, "commands", None)
    if subcommands is None:
        return []
    return [path] + [
        group for name, sub in subcommands.items() for group in _groups(sub, (*path, name))
    ]


GROUPS = _groups(typer.main.get_command(app))
HELP_PAGES = [*GROUPS, *LEAF_COMMANDS]
"""Every command whose --help a user reads: the groups' (`faceflow --help`, `faceflow models
--help`) too, which had no examples where every command's ended with some."""


def _shown_examples(command: tuple[str, ...]) -> list[str]:
    """The lines under "Examples:" in the command's help as a 60-column terminal shows it."""
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "60"})
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.output.splitlines()]
    assert "Examples:" in lines, f"faceflow {' '.join(command)} --help has no examples"
    return [line for line in lines[lines.index("Examples:") + 1 :] if line]


def _faceflow_words(line: str) -> list[str]:
    """An example's ``faceflow`` command, split as a shell splits it: of a pipeline, the part
    that runs faceflow. Empty if no part does, as for a line the help wrapped in two."""
    for part in line.split("|"):
        words = shlex.split(part, comments=True)
        if words[:1] == ["faceflow"]:
            return words[1:]
    return []


def test_every_command_that_runs_is_found() -> None:
    # The tests of every command's help below are parametrised by this list: one it misses is
    # untested.
    assert {"analyze", "id-photo", "id-photo-specs", "serve", "worker", "bench"} <= {
        " ".join(path) for path in LEAF_COMMANDS
    }
    assert {("models", "pull"), ("models", "list"), ("models", "verify")} <= set(LEAF_COMMANDS)
    assert GROUPS == [(), ("models",)]


@pytest.mark.parametrize("command", HELP_PAGES, ids=lambda c: " ".join(("faceflow", *c)))
def test_every_commands_help_shows_examples_of_it_each_whole_on_a_line_at_60_columns(
    command: tuple[str, ...],
) -> None:
    # A user reads the examples to copy one: each must be a faceflow command line, and one the
    # help did not wrap (the wrapped half would not start with faceflow, and a pasted half fails).
    shown = _shown_examples(command)

    assert 2 <= len(shown) <= 4, shown
    assert all(_faceflow_words(line) for line in shown), shown
    assert any(_faceflow_words(line)[: len(command)] == list(command) for line in shown), shown


@pytest.mark.parametrize("command", HELP_PAGES, ids=lambda c: " ".join(("faceflow", *c)))
def test_every_example_in_help_parses_as_written(
    command: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each is parsed by the command's own parser (typer's click) without running it, as
    # tests/test_readme.py parses the README's: a flag renamed or a value no longer taken
    # (a choice, a range) is an error here, so the examples cannot rot. The files they
    # name exist (empty) where they are parsed, as parsing checks some do.
    monkeypatch.chdir(tmp_path)
    for folder in ("photos", "more", "staff"):
        (tmp_path / folder).mkdir()
    for name in ("photo.jpg", "portrait.jpg", "group.jpg", "a.jpg", "b.jpg", "faceflow.yaml"):
        (tmp_path / name).touch()
    for line in _shown_examples(command):
        parse_command_line(["faceflow", *_faceflow_words(line)])


@pytest.mark.parametrize("command", LEAF_COMMANDS, ids=" ".join)
def test_every_usage_line_names_its_arguments_in_upper_case(command: tuple[str, ...]) -> None:
    # As [OPTIONS] and NAME=VALUE are: typer showed the parameter's Python name, `analyze
    # [OPTIONS] {paths}...`, which reads as a literal word to type.
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    [usage] = [line for line in result.output.splitlines() if "Usage:" in line]
    arguments = re.findall(r"[{\[]([^}\]]+)[}\]]", usage.split(" ".join(command), 1)[1])

    assert [name for name in arguments if name != name.upper()] == [], usage


def test_invalid_settings_exit_2_naming_each_problem_and_its_variable() -> None:
    result = CliRunner().invoke(
        app, ["models", "list"], env={"FACEFLOW_CACHE__MEMORY_BYTE": "5", "COLUMNS": "200"}
    )

    assert result.exit_code == 2
    assert "invalid settings" in result.stderr
    assert (
        "cache.memory_byte (FACEFLOW_CACHE__MEMORY_BYTE): unknown setting "
        "(did you mean 'cache.memory_bytes'?)"
    ) in result.stderr


def test_a_malformed_config_file_exits_2_in_one_line_without_a_traceback(tmp_path: Path) -> None:
    config = tmp_path / "faceflow.yaml"
    config.write_text("server:\n  port: [1\n", encoding="utf-8")

    result = CliRunner().invoke(app, ["models", "list", "-c", str(config)], env={"COLUMNS": "200"})

    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stderr.startswith("invalid settings: config file")
    assert "not valid YAML" in result.stderr


def test_a_worker_given_a_queue_url_with_a_port_out_of_range_exits_2_saying_so() -> None:
    # redis-py reads the port only as it connects: the worker printed a traceback there and
    # did not exit until killed.
    done = subprocess.run(
        [str(FACEFLOW), "worker", "--queue-url", "redis://127.0.0.1:99999/0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )

    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "Port out of range" in done.stderr


def test_a_worker_given_a_queue_url_that_is_no_redis_url_exits_2_saying_so() -> None:
    done = subprocess.run(
        [str(FACEFLOW), "worker", "--queue-url", "http://queue:6379"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )

    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    # Named by the flag given, not by the variable the flag is passed on in (which was named).
    assert "jobs.redis_url (--queue-url): not a Redis URL" in done.stderr
    assert "FACEFLOW_JOBS__REDIS_URL" not in done.stderr


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--port", "99999"], "server.port (--port): Input should be less than or equal to 65535"),
        (["--port", "0"], "server.port (--port): Input should be greater than or equal to 1"),
        (["--http-workers", "65"], "server.http_workers (--http-workers): "),
    ],
)
def test_serve_names_a_bad_flag_by_the_flag(flags: list[str], named: str) -> None:
    # It said "server.port (FACEFLOW_SERVER__PORT)": a variable the user never set.
    done = subprocess.run(
        [str(FACEFLOW), "serve", *flags],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )

    assert done.returncode == 2, done.stderr
    assert named in done.stderr
    assert "FACEFLOW_SERVER__" not in done.stderr


def test_a_bad_variable_beside_serve_flags_is_still_named_by_its_variable() -> None:
    done = subprocess.run(
        [str(FACEFLOW), "serve", "--port", "18999"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "200", "FACEFLOW_SERVER__HTTP_WORKERS": "0"},
    )

    assert done.returncode == 2, done.stderr
    assert "server.http_workers (FACEFLOW_SERVER__HTTP_WORKERS): " in done.stderr


@pytest.mark.parametrize(
    ("command", "model"),
    [("analyze", FACE_OPTIONS[Operation.ANALYZE]), ("id-photo", PhotoOptions)],
)
def test_the_dash_o_example_in_help_is_an_option_the_command_takes(
    command: str, model: type[BaseModel]
) -> None:
    commands = getattr(typer.main.get_command(app), "commands", {})
    [param] = [p for p in commands[command].params if p.name == "option"]
    [example] = re.findall(r"-O (\w+)=", param.help or "")

    assert example in option_names(model)


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["analyze", "-O", "max_facess=1", "x.jpg"], {}),
        (["id-photo", "-O", "head_mmm=30", "x.jpg", "-o", "out"], {}),
        (["analyze", "x.jpg"], {"FACEFLOW_SERVER__TRUSTED_PROXIES": "127.0.0.1"}),
    ],
)
def test_an_error_is_one_line_where_stderr_is_not_a_terminal(
    args: list[str], env: dict[str, str]
) -> None:
    # rich folded it at 80 columns into a log or a pipe: a grep for the error found half of it.
    result = CliRunner().invoke(app, args, env={"COLUMNS": "80", **env})

    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert len(line) > 80


def test_the_exit_statuses_in_help_are_the_readmes() -> None:
    # A script's author reads them in `faceflow --help`; the README's table has the details.
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "500"})
    [said] = [line for line in result.output.splitlines() if "Exit status:" in line]
    in_help = {int(code) for code in re.findall(r"[:;] (\d+) ", said)}
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("| exit status | when |")
    rows = readme[start:].split("\n\n", 1)[0].splitlines()[2:]
    in_readme = {int(code) for row in rows for code in re.findall(r"\d+", row.split("|")[1])}

    assert in_help == in_readme
    assert {TERMINATED_STATUS, BROKEN_PIPE_STATUS, 130} <= in_help
