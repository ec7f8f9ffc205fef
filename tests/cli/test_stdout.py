"""Standard output closed, full, or a pipe whose reader is gone, and standard error closed: each
command, a process of its own (the descriptors are the process's, as a shell gives them)."""

from __future__ import annotations

import json
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


def run_with_stderr_closed(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FACEFLOW, *args],
        stdout=subprocess.PIPE,
        text=True,
        timeout=300,
        check=False,
        preexec_fn=lambda: os.close(2),  # `2>&-`
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


@pytest.mark.parametrize("workers", ["1", "2"])
def test_analyze_with_stderr_closed_prints_its_results_and_exits_as_with_it_open(
    tmp_path: Path, testdata: Path, pulled_model_settings: ModelSettings, workers: str
) -> None:
    # With two workers, sys.stderr (None) was flushed before the fork: an AttributeError
    # traceback into nowhere, exit 1, and nothing printed, the photo's result lost too.
    photo, missing = testdata / "obama_small.jpg", tmp_path / "gone.jpg"

    done = run_with_stderr_closed(
        "analyze", "--json", "--workers", workers, str(photo), str(missing)
    )

    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 1
    assert [(line["file"], line.get("face_count"), "error" in line) for line in lines] == [
        (str(photo), 1, False),
        (str(missing), None, True),
    ]


def test_id_photo_with_stderr_closed_exits_1_for_a_file_that_failed(tmp_path: Path) -> None:
    (tmp_path / "bad.jpg").write_bytes(b"not an image")

    done = run_with_stderr_closed("id-photo", str(tmp_path / "bad.jpg"), "-o", str(tmp_path / "o"))

    assert done.returncode == 1
    assert "unsupported_format" in done.stdout


def test_a_closed_standard_descriptor_is_never_given_to_a_file_the_command_opens() -> None:
    # The next file, pipe or shared counter opened took it (descriptor 0 here): what a library
    # writes to standard output or error below Python would have landed in a forked worker's
    # results or in a photo being written.
    script = (
        "import os, sys; from faceflow.cli import main as entry;"
        " entry.app = lambda: sys.exit(os.open(os.devnull, os.O_RDONLY)); entry.main()"
    )

    def close_all() -> None:
        for descriptor in (0, 1, 2):
            os.close(descriptor)

    done = subprocess.run([sys.executable, "-c", script], preexec_fn=close_all, check=False)

    assert done.returncode == 3


def test_id_photo_with_stdout_closed_writes_its_photos_without_the_table(
    tmp_path: Path, testdata: Path, pulled_model_settings: ModelSettings
) -> None:
    # Its results are files (cron's `>&-`): it refused to start, "standard output is closed".
    out = tmp_path / "out"
    photo = testdata / "obama_small.jpg"

    done = run_with_stdout_closed("id-photo", str(photo), "-o", str(out))

    assert (done.returncode, done.stderr) == (0, "")
    assert sorted(path.name for path in out.iterdir()) == [
        "obama_small.cn-1inch.jpg",
        "obama_small.cn-1inch.report.json",
    ]


def test_id_photo_with_stdout_closed_names_each_file_that_failed_on_stderr(
    tmp_path: Path, pulled_model_settings: ModelSettings
) -> None:
    (tmp_path / "bad.jpg").write_bytes(b"not an image")

    done = run_with_stdout_closed("id-photo", str(tmp_path / "bad.jpg"), "-o", str(tmp_path / "o"))

    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"error: {tmp_path}/bad.jpg: unsupported_format: unsupported image format (unknown"
        " format); send JPEG, PNG, WebP or GIF",
        "1 of 1 files failed",
    ]
