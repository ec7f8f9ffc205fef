"""The commands' shared helpers (cli/common.py): output names, writing an output file, logging."""

from __future__ import annotations

import errno
import io
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from faceflow.cli.common import STDIN, OutputFolderFull, OutputNames, write_output
from faceflow.errors import InvalidParameter


class _StoppedMidWrite(io.BytesIO):
    """An opened output whose write is stopped by ``error`` (a Ctrl-C, a full disk)."""

    def __init__(self, target: Path, error: BaseException) -> None:
        super().__init__()
        # Opened for writing: created or truncated, as open("wb") leaves it (not through
        # Path.open, which the test replaced).
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC))
        self._error = error

    def write(self, _: Any) -> int:
        raise self._error


def stop_writes_to(monkeypatch: pytest.MonkeyPatch, target: Path, error: BaseException) -> None:
    opened = Path.open

    def open_stopped(self: Path, *args: Any, **kwargs: Any) -> Any:
        return _StoppedMidWrite(self, error) if self == target else opened(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", open_stopped)


def test_an_output_whose_write_fails_is_removed_and_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "photo.jpg"
    # FAT's 4 GB a file, or a ulimit -f: this file's own trouble, not the folder's.
    stop_writes_to(monkeypatch, target, OSError(errno.EFBIG, "File too large"))

    with pytest.raises(InvalidParameter, match=r"cannot write .*photo\.jpg: File too large"):
        write_output(target, b"\xff\xd8")

    assert not target.exists()


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EROFS])
def test_an_output_the_folder_can_take_no_more_of_stops_the_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    # Not one file's failure: every write after it fails the same way.
    target = tmp_path / "photo.jpg"
    stop_writes_to(monkeypatch, target, OSError(code, os.strerror(code)))

    with pytest.raises(OutputFolderFull, match=rf"cannot write .*photo\.jpg: {os.strerror(code)}"):
        write_output(target, b"\xff\xd8")

    assert not target.exists()


def test_an_output_interrupted_mid_write_is_removed_and_the_interrupt_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Ctrl-C between the open and the end of the write left an empty or partial file.
    target = tmp_path / "photo.jpg"
    stop_writes_to(monkeypatch, target, KeyboardInterrupt())

    with pytest.raises(KeyboardInterrupt):
        write_output(target, b"\xff\xd8")

    assert not target.exists()


def test_an_output_is_written_whole(tmp_path: Path) -> None:
    target = tmp_path / "photo.jpg"

    write_output(target, b"\xff\xd8\xff")

    assert target.read_bytes() == b"\xff\xd8\xff"


def names_searched_from_one(sources: list[Path], taken_by_inputs: set[str]) -> list[str]:
    """Output names as the first version gave them: each searched from the bare stem up."""
    used: set[str] = set()
    names = []
    for source in sources:
        stem = "stdin" if source == STDIN else source.stem
        candidate, serial = stem, 1
        while candidate in used or candidate in taken_by_inputs:
            serial += 1
            candidate = f"{stem}-{serial}"
        used.add(candidate)
        names.append(candidate)
    return names


def test_output_names_are_those_searched_from_the_stem_up(tmp_path: Path) -> None:
    # Same-named inputs, inputs named as another's serial (x-2.jpg, x-2-2.png), standard input,
    # and outputs that would replace an input (out/x-3.json is one): the names as before.
    out = tmp_path / "out"
    out.mkdir()
    inputs = [out / "x-3.json", out / "stdin-2.json"]
    for path in inputs:
        path.write_text("{}")
    stems = ["x", "x", "x-2", "x-2-2", "y", "x-3", "x", "stdin", "x-4"]
    rng = random.Random(15)
    sources = [
        *inputs,
        *(Path(f"d{i}") / f"{rng.choice(stems)}.jpg" for i in range(400)),
        STDIN,
        STDIN,
    ]
    rng.shuffle(sources)

    names = OutputNames(sources, lambda stem: [out / f"{stem}.json"])
    got = [names.unique(source) for source in sources]

    assert got == names_searched_from_one(sources, {"x-3", "stdin-2"})
    assert len(set(got)) == len(got)


def test_each_output_name_is_tried_once_however_many_inputs_share_it(tmp_path: Path) -> None:
    # Each search began at the bare stem: 5,000 inputs named a.jpg tried 12.5 million names
    # (3.5 s) before the first photo, and checked an output taken by an input each time.
    taken = tmp_path / "a.json"
    taken.write_text("{}")
    tried: list[str] = []

    def outputs(stem: str) -> list[Path]:
        tried.append(stem)
        return [tmp_path / f"{stem}.json"]

    sources = [taken, *(Path(f"d{i}") / "a.jpg" for i in range(50))]
    names = OutputNames(sources, outputs)
    got = [names.unique(source) for source in sources]

    assert got == ["a-2", *(f"a-{n}" for n in range(3, 53))]
    assert sorted(tried) == sorted(set(tried))


def test_output_names_differ_in_more_than_case(tmp_path: Path) -> None:
    # On a file system that ignores case (exFAT, an SMB share, macOS) Photo.json and photo.json
    # are one file: the second input's output replaced the first's without a word.
    sources = [Path("a/Photo.jpg"), Path("b/photo.jpg"), Path("c/PHOTO-2.png"), Path("d/x.jpg")]
    names = OutputNames(sources, lambda stem: [tmp_path / f"{stem}.json"])

    assert [names.unique(source) for source in sources] == ["Photo", "photo-2", "PHOTO-2-2", "x"]


def test_output_names_fit_the_file_systems_255_bytes_with_their_serials(tmp_path: Path) -> None:
    # A 240-byte stem with ".report.json" after it was "File name too long": the work lost.
    long = "é" * 125 + "x"  # 251 bytes: with ".jpg", the longest name there is
    sources = [Path(f"{long}.jpg"), Path(f"b/{long}.png"), Path("short.jpg")]
    names = OutputNames(
        sources, lambda stem: [tmp_path / f"{stem}.jpg", tmp_path / f"{stem}.report.json"]
    )

    got = [names.unique(source) for source in sources]

    assert got == ["é" * 121, "é" * 120 + "-2", "short"]  # each character cut whole
    assert all(len(os.fsencode(f"{name}.report.json")) <= 255 for name in got)


_LOG_A_LONG_WARNING = """
import logging
from faceflow.cli.common import setup_logging
setup_logging("warning")
logging.getLogger("faceflow.cli.files").warning("cannot fork a worker (%s): 1 at work", "x" * 120)
"""


def test_a_log_record_is_one_line_where_stderr_is_not_a_terminal() -> None:
    # rich's handler set the message in a column of its 80-column table: three lines here,
    # each cut mid-message, in a log file, a CI job's capture or a journal.
    done = subprocess.run(
        [sys.executable, "-c", _LOG_A_LONG_WARNING],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "80"},
        timeout=60,
        check=True,
    )

    [line] = done.stderr.splitlines()
    said = f"WARNING faceflow.cli.files: cannot fork a worker ({'x' * 120}): 1 at work"
    assert line.endswith(said)
