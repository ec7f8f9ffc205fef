"""The commands' shared helpers (cli/common.py): output names, writing an output file, logging."""

from __future__ import annotations

import errno
import os
import random
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from faceflow.cli.common import (
    STDIN,
    OutputFolderFull,
    OutputNames,
    make_output_folder,
    stderr_console,
    write_output,
    write_outputs,
)
from faceflow.errors import InvalidParameter


def stop_writes(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    """Every output's data written, then ``error`` as it is flushed to the disk: where a full
    disk or a quota shows with delayed allocation, NFS or a FUSE mount."""

    def stopped(_descriptor: int) -> None:
        raise error

    monkeypatch.setattr(os, "fsync", stopped)


def test_an_output_whose_write_fails_is_removed_and_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "photo.jpg"
    # FAT's 4 GB a file, or a ulimit -f: this file's own trouble, not the folder's.
    stop_writes(monkeypatch, OSError(errno.EFBIG, "File too large"))

    with pytest.raises(InvalidParameter, match=r"cannot write .*photo\.jpg: File too large"):
        write_output(target, b"\xff\xd8")

    assert list(tmp_path.iterdir()) == []  # nor its temporary file


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EROFS])
def test_an_output_the_folder_can_take_no_more_of_stops_the_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    # Not one file's failure: every write after it fails the same way.
    target = tmp_path / "photo.jpg"
    stop_writes(monkeypatch, OSError(code, os.strerror(code)))

    with pytest.raises(OutputFolderFull, match=rf"cannot write .*photo\.jpg: {os.strerror(code)}"):
        write_output(target, b"\xff\xd8")

    assert list(tmp_path.iterdir()) == []


def test_an_output_interrupted_mid_write_leaves_the_old_file_and_the_interrupt_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Ctrl-C between the open and the end of the write left an empty or partial file, the
    # old one truncated: it is now the old one, whole, and no temporary file.
    target = tmp_path / "photo.jpg"
    target.write_bytes(b"old photo")
    stop_writes(monkeypatch, KeyboardInterrupt())

    with pytest.raises(KeyboardInterrupt):
        write_output(target, b"\xff\xd8")

    assert list(tmp_path.iterdir()) == [target]
    assert target.read_bytes() == b"old photo"


def test_an_output_is_written_whole(tmp_path: Path) -> None:
    target = tmp_path / "photo.jpg"

    write_output(target, b"\xff\xd8\xff")

    assert target.read_bytes() == b"\xff\xd8\xff"
    assert list(tmp_path.iterdir()) == [target]


def test_a_new_output_has_the_mode_the_umask_gives_a_new_file(tmp_path: Path) -> None:
    # As open("wb") gave it: 0o666 less the umask (mkstemp's 0o600 would hide it from a group
    # that reads the folder).
    target = tmp_path / "photo.jpg"
    umask = os.umask(0o027)
    try:
        write_output(target, b"\xff\xd8\xff")
    finally:
        os.umask(umask)

    assert stat.S_IMODE(target.stat().st_mode) == 0o640


# Writes an output over an old one with its size limited (ulimit -f) to half of the new data,
# and SIGXFSZ's default action restored (Python ignores it): the kernel kills the process as
# its write passes the limit, mid-file, no cleanup of Python's run, as SIGKILL or the OOM
# killer would.
_KILLED_MID_WRITE = """
import resource, signal, sys
from pathlib import Path
from faceflow.cli.common import write_output
target, size = Path(sys.argv[1]), int(sys.argv[2])
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
resource.setrlimit(resource.RLIMIT_FSIZE, (size // 2, size // 2))
write_output(target, b"n" * size)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs SIGXFSZ")
def test_a_process_killed_mid_write_leaves_the_old_output_whole(tmp_path: Path) -> None:
    # Written in place, the photo was truncated by the open, then half-written: a broken JPEG
    # under its final name, read as done by the next step (an upload script).
    target = tmp_path / "photo.jpg"
    target.write_bytes(b"o" * 1000)

    done = subprocess.run(
        [sys.executable, "-B", "-c", _KILLED_MID_WRITE, str(target), str(64 * 1024)],
        capture_output=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == -signal.SIGXFSZ, done.stderr.decode()
    assert target.read_bytes() == b"o" * 1000
    # What the kill left is a hidden temporary file, never a name a reader takes for an output.
    [left] = [path.name for path in tmp_path.iterdir() if path != target]
    assert re.fullmatch(r"\.faceflow-\w+\.tmp", left)


# Writes a photo, its sheet and its report over their old versions, killed (SIGKILL, sent by
# the process to itself) as it starts its rename number argv[2]: each point a crash can stop
# it between the files.
_KILLED_AT_A_RENAME = """
import os, signal, sys
from pathlib import Path
from faceflow.cli.common import write_outputs
folder, kill_at = Path(sys.argv[1]), int(sys.argv[2])
renames = 0
real_replace = os.replace
def replace(source, target):
    global renames
    renames += 1
    if renames == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    real_replace(source, target)
os.replace = replace
write_outputs([(folder / name, b"new " + name.encode()) for name in sys.argv[3:]])
"""


@pytest.mark.parametrize("kill_at", [1, 2, 3])
def test_a_report_is_never_left_beside_a_photo_of_another_run(tmp_path: Path, kill_at: int) -> None:
    # Written one after the other in place, a run killed after the photo left the new photo
    # with the old run's report (its verdict, its sizes), read as the new photo's.
    names = ["a.jpg", "a.sheet-6inch.jpg", "a.report.json"]
    for name in names:
        (tmp_path / name).write_bytes(b"old " + name.encode())

    done = subprocess.run(
        [sys.executable, "-c", _KILLED_AT_A_RENAME, str(tmp_path), str(kill_at), *names],
        capture_output=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == -signal.SIGKILL, done.stderr.decode()
    left = {
        path.name: path.read_bytes().split()[0]
        for path in tmp_path.iterdir()
        if not path.name.startswith(".")
    }
    # The old report gone before the first rename, the new one renamed last: the photo and
    # sheet each old or new, without a report (unfinished), never beside one of another run.
    assert left == {
        "a.jpg": b"new" if kill_at > 1 else b"old",
        "a.sheet-6inch.jpg": b"new" if kill_at > 2 else b"old",
    }


def test_a_run_completes_a_photo_its_sheet_and_report_over_the_old_ones(tmp_path: Path) -> None:
    names = ["a.jpg", "a.sheet-6inch.jpg", "a.report.json"]
    for name in names:
        (tmp_path / name).write_bytes(b"old")

    write_outputs([(tmp_path / name, b"new " + name.encode()) for name in names])

    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == {
        name: b"new " + name.encode() for name in names
    }


def test_a_run_removes_the_temporary_files_a_killed_one_left_once_they_are_old(
    tmp_path: Path,
) -> None:
    # Each SIGKILL mid-write left one; a younger one may be another run's, still at work.
    old, young = tmp_path / ".faceflow-0123abcd.tmp", tmp_path / ".faceflow-4567ef01.tmp"
    for left in (old, young, tmp_path / "photo.tmp", tmp_path / ".faceflow-notes"):
        left.write_bytes(b"x")
    two_hours_ago = time.time() - 2 * 3600
    for path in (old, tmp_path / "photo.tmp", tmp_path / ".faceflow-notes"):
        os.utime(path, (two_hours_ago, two_hours_ago))

    make_output_folder(stderr_console(), tmp_path, "--out")

    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        [young.name, "photo.tmp", ".faceflow-notes"]
    )


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


@pytest.mark.parametrize("command", [["analyze", "-"], ["id-photo", "-", "-o", "OUT"]])
def test_dash_with_a_terminal_on_standard_input_is_refused_at_once(
    tmp_path: Path, command: list[str]
) -> None:
    # `faceflow analyze -` typed without a pipe waited, without a word, for an image to be
    # typed. A pseudo-terminal stands for the user's; nothing is ever written to it.
    import pty

    terminal, user_side = pty.openpty()
    out = tmp_path / "out"
    try:
        done = subprocess.run(
            [sys.executable, "-m", "faceflow", *[str(out) if w == "OUT" else w for w in command]],
            stdin=user_side,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(terminal)
        os.close(user_side)

    assert done.returncode == 2, done.stderr
    assert "standard input, which is a terminal" in done.stderr
    assert not out.exists()
