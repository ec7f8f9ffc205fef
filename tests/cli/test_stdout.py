"""Standard output closed, full, or a pipe whose reader is gone: each command, a process of its
own (the descriptors are the process's, as a shell gives them)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from faceflow.cli.stdout import BROKEN_PIPE_STATUS, LOST_STATUS
from faceflow.config import ModelSettings

FACEFLOW = [sys.executable, "-m", "faceflow"]
CLOSED = "error: cannot write to standard output: standard output is closed"
FULL = "error: cannot write to standard output: No space left on device"


def run_with_stdout_closed(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FACEFLOW, *args],
        stderr=subprocess.PIPE,
        text=True,
        timeout=300,
        check=False,
        preexec_fn=lambda: os.close(1),  # `>&-`
    )


def run_into_dev_full(*args: str) -> subprocess.CompletedProcess[str]:
    with Path("/dev/full").open("w") as full:
        return subprocess.run(
            [*FACEFLOW, *args], stdout=full, stderr=subprocess.PIPE, text=True, timeout=300
        )


def run_into_a_closed_pipe(*args: str) -> subprocess.CompletedProcess[str]:
    """``| head -0``: the reader is gone before the command writes anything."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        return subprocess.run(
            [*FACEFLOW, *args], stdout=writer, stderr=subprocess.PIPE, text=True, timeout=300
        )
    finally:
        os.close(writer)


def test_analyze_with_stdout_closed_fails_before_any_work(testdata: Path) -> None:
    # It exited 0, its analysis written nowhere (rich writes to nothing when sys.stdout is None).
    done = run_with_stdout_closed("analyze", "--json", str(testdata / "obama_small.jpg"))

    assert done.returncode == LOST_STATUS
    assert done.stderr.splitlines() == [CLOSED]


@pytest.mark.parametrize(
    "args",
    [["models", "list"], ["id-photo-specs"], ["--version"], ["--help"], ["models", "--help"]],
)
def test_every_printing_command_says_its_output_is_lost(args: list[str]) -> None:
    closed = run_with_stdout_closed(*args)
    full = run_into_dev_full(*args)

    assert (closed.returncode, closed.stderr.splitlines()) == (LOST_STATUS, [CLOSED])
    assert (full.returncode, full.stderr.splitlines()) == (LOST_STATUS, [FULL])


@pytest.mark.parametrize("args", [["models", "list"], ["--version"]])
def test_a_broken_pipe_exits_as_a_unix_tool_killed_by_sigpipe(args: list[str]) -> None:
    done = run_into_a_closed_pipe(*args)

    assert done.returncode == BROKEN_PIPE_STATUS
    assert done.stderr == ""


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])
def test_analyze_json_into_a_full_disk_stops_with_one_line(
    testdata: Path, pulled_model_settings: ModelSettings, workers: str
) -> None:
    # With two workers the line is printed by the thread reading the forked worker's results:
    # its OutputLost was a traceback ("Exception in thread forked-results") and the run went on.
    full = run_into_dev_full("analyze", "--json", "--workers", workers, str(testdata))
    broken = run_into_a_closed_pipe("analyze", "--json", "--workers", workers, str(testdata))

    assert (full.returncode, full.stderr.splitlines()) == (LOST_STATUS, [FULL])
    assert (broken.returncode, broken.stderr) == (BROKEN_PIPE_STATUS, "")
