"""run_files with more than one worker: this process works from the start, beside copies of
itself forked once its models are loaded or, where a fork is not safe (another thread runs),
beside spawned inference processes that join it once ready; every file is reported exactly once,
in the order of the files, either way."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from faceflow.cli.common import STDIN, Terminated
from faceflow.cli.files import (
    POOL_AFTER_S,
    POOL_WORTH_S,
    FileOutcome,
    _InOrder,
    _Progress,
    _read,
    _terminated_as_interrupt,
    fork_refusal,
    only,
    run_files,
)
from faceflow.config import ModelSettings, RuntimeSettings, Settings
from faceflow.domain import Operation
from faceflow.errors import InvalidParameter, TooLarge
from faceflow.runtime.context import WorkerContext

HANDOVER_TIMEOUT_S = 180.0  # pool start-up on a busy machine; the handover itself is instant


@dataclass(frozen=True, slots=True)
class Probe:
    parent_pid: int
    handed_over: Path  # created by the first file an inference process runs


def wait_for_the_pool(context: WorkerContext, probe: Probe) -> int:
    """In this process: hold the file until an inference process has run one (so the pool must
    have taken over). In an inference process: say so. Returns the PID that ran it."""
    if os.getpid() != probe.parent_pid:
        probe.handed_over.touch()
        return os.getpid()
    deadline = time.monotonic() + HANDOVER_TIMEOUT_S
    while not probe.handed_over.exists():
        assert time.monotonic() < deadline, "the pool never took over"
        time.sleep(0.05)
    return os.getpid()


def twelve_files(folder: Path) -> list[Path]:
    files = [folder / f"{index}.bin" for index in range(12)]
    for path in files:
        path.write_bytes(b"x")
    return files


@pytest.fixture
def a_thread_running() -> Iterator[threading.Thread]:
    """Another thread in this process for the test's length: run_files must not fork then."""
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name="the test's own thread", daemon=True)
    thread.start()
    yield thread
    stop.set()
    thread.join()


def test_with_another_thread_running_a_spawned_pool_joins_this_process_and_no_file_runs_twice(
    tmp_path: Path, pulled_model_settings: ModelSettings, a_thread_running: threading.Thread
) -> None:
    files = twelve_files(tmp_path)
    probe = Probe(os.getpid(), tmp_path / "handed-over")
    outcomes: list[FileOutcome[int]] = []

    run_files(
        Settings(models=pulled_model_settings),
        files,
        lambda _data: probe,
        wait_for_the_pool,
        2,
        outcomes.append,
    )

    assert [o.path for o in outcomes] == files
    assert all(o.error is None for o in outcomes)
    runners = {o.result for o in outcomes}
    assert os.getpid() in runners  # the first file ran here while the pool loaded
    # This process is one of the 2 workers: the pool has one inference process.
    assert len(runners - {os.getpid()}) == 1


def which_process(context: WorkerContext, request: bytes) -> int:
    return os.getpid()


def test_a_batch_done_before_a_spawned_pool_would_pay_never_starts_one(
    tmp_path: Path, pulled_model_settings: ModelSettings, a_thread_running: threading.Thread
) -> None:
    files = twelve_files(tmp_path)
    outcomes: list[FileOutcome[int]] = []

    run_files(
        Settings(models=pulled_model_settings), files, bytes, which_process, 2, outcomes.append
    )

    assert [o.path for o in outcomes] == files
    assert {o.result for o in outcomes} == {os.getpid()}


def test_the_pool_is_started_only_for_enough_work_left() -> None:
    progress = _Progress(started_at=100.0, done=40)
    # Not before this process has worked POOL_AFTER_S alone, however much is left.
    assert not progress.pool_pays(10_000, 100.0 + POOL_AFTER_S / 2)
    now = 100.0 + POOL_AFTER_S
    per_file = POOL_AFTER_S / 40
    assert not progress.pool_pays(int(POOL_WORTH_S / per_file) - 1, now)
    assert progress.pool_pays(int(POOL_WORTH_S / per_file) + 1, now)
    # A first file still running after POOL_AFTER_S counts as one slow file.
    assert _Progress(started_at=100.0, done=0).pool_pays(4, 100.0 + POOL_WORTH_S / 4)


@pytest.mark.parametrize(
    "operation", [Operation.DETECT, Operation.ANALYZE, Operation.ANNOTATE, Operation.ID_PHOTO]
)
def test_a_command_running_one_operation_loads_only_its_models(operation: Operation) -> None:
    settings = Settings(runtime=RuntimeSettings(nice=3))

    narrowed = only(settings, operation)

    assert narrowed.runtime.operations == [operation.value]
    assert narrowed.runtime.nice == 3
    assert Settings.model_validate_json(narrowed.model_dump_json()) == narrowed


def test_a_fork_is_refused_while_another_thread_runs(a_thread_running: threading.Thread) -> None:
    refusal = fork_refusal(library_threads=set())

    assert refusal is not None
    assert a_thread_running.name in refusal


def test_a_fork_is_refused_where_threads_cannot_be_listed() -> None:
    assert fork_refusal(library_threads=None) is not None


def test_outcomes_are_handed_on_in_the_order_of_the_files() -> None:
    paths = [Path(f"{index}.jpg") for index in range(4)]
    seen: list[Path] = []
    in_order: _InOrder[int] = _InOrder(paths, lambda outcome: seen.append(outcome.path))

    for index in (2, 0, 3):
        in_order.add(index, FileOutcome(paths[index], index, None))

    assert seen == paths[:1]
    assert in_order.missing() == [1]
    in_order.add(1, FileOutcome(paths[1], 1, None))
    assert seen == paths
    assert in_order.missing() == []


# Run in a fresh process (the test runner's own may have threads, which rule a fork out). Its
# tasks are defined in __main__, which a spawned process would not have: only a fork runs them.
FORKED_BATCHES = """
import json, os, sys, time
from pathlib import Path
import faceflow.cli.files as files_module
from faceflow.cli.files import run_files
from faceflow.config import Settings

PARENT = os.getpid()
folder = Path(sys.argv[1])
DEADLINE_S = 120.0
LOADS = []
real_load = files_module.load_context

def load_context(settings_json):
    # Which process loaded a context.
    LOADS.append(os.getpid())
    return real_load(settings_json)

files_module.load_context = load_context

def shared(context, folder):
    # Each process holds its first file until both have run one: so each takes part.
    (folder / f"{os.getpid()}.ran").touch()
    deadline = time.monotonic() + DEADLINE_S
    while len(list(folder.glob("*.ran"))) < 2:
        assert time.monotonic() < deadline, "no second process ran a file"
        time.sleep(0.01)
    return [os.getpid(), list(LOADS)]

def dies(context, folder):
    # A child dies on its first file; this process goes on with the others once it has.
    if os.getpid() != PARENT:
        (folder / "died").touch()
        os._exit(3)
    deadline = time.monotonic() + DEADLINE_S
    while not (folder / "died").exists():
        assert time.monotonic() < deadline, "no forked worker took a file"
        time.sleep(0.01)
    return os.getpid()

files = [folder / f"{index}.bin" for index in range(12)]
for path in files:
    path.write_bytes(b"x")
report = {}
for name, task in (("shared", shared), ("dies", dies)):
    markers = folder / name
    markers.mkdir()
    outcomes = []
    run_files(Settings(), files, lambda _data: markers, task, 2, outcomes.append)
    report[name] = [
        [str(o.path), o.result, o.error.code if o.error else None] for o in outcomes
    ]
report["parent"] = PARENT
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def forked_batches(
    tmp_path_factory: pytest.TempPathFactory, pulled_model_settings: ModelSettings
) -> dict[str, list[list[object]]]:
    folder = tmp_path_factory.mktemp("forked")
    done = subprocess.run(
        [sys.executable, "-c", FORKED_BATCHES, str(folder)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, list[list[object]]] = json.loads(done.stdout)
    return report


def test_a_forked_worker_loads_its_own_models_and_no_file_runs_twice(
    forked_batches: dict[str, object],
) -> None:
    outcomes = forked_batches["shared"]
    parent = forked_batches["parent"]
    assert isinstance(outcomes, list)

    assert [Path(path).name for path, _result, _error in outcomes] == [
        f"{index}.bin" for index in range(12)
    ]
    assert all(error is None for _path, _result, error in outcomes)
    runners = {result[0] for _path, result, _error in outcomes}
    assert parent in runners
    assert len(runners - {parent}) == 1
    # No onnxruntime session crosses the fork (DESIGN.md §5): each process loaded its models
    # once, itself, after the fork (a child that inherited the parent's would list its pid).
    for _path, (runner, loads), _error in outcomes:
        assert loads == [runner]


def test_a_forked_worker_that_dies_loses_only_its_file(forked_batches: dict[str, object]) -> None:
    outcomes = forked_batches["dies"]
    assert isinstance(outcomes, list)

    assert len(outcomes) == 12
    errors = [error for _path, _result, error in outcomes if error is not None]
    assert errors == ["worker_crashed"]
    assert {result for _path, result, error in outcomes if error is None} == {
        forked_batches["parent"]
    }


def test_a_session_thread_pool_refuses_the_fork(pulled_model_settings: ModelSettings) -> None:
    # A fresh process, whose only threads are the libraries' own until the models load.
    script = """
from faceflow.cli.files import _library_threads, fork_refusal, only
from faceflow.config import ModelSettings, Settings
from faceflow.domain import Operation
from faceflow.runtime.context import load_context

library_threads = _library_threads()
settings = Settings(models=ModelSettings(intra_op_threads=2))
# Kept: a session dropped would take its pool's threads with it.
context = load_context(only(settings, Operation.ANALYZE).model_dump_json())
print(fork_refusal(library_threads))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
    )

    assert done.returncode == 0, done.stderr
    assert "native thread(s) started" in done.stdout


def test_a_fifo_without_a_writer_reads_as_empty_and_a_pipe_as_sent(tmp_path: Path) -> None:
    # Opening a FIFO waits for a writer: the run hung there, the files after it never read.
    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    assert _read(fifo, 1024) == b""

    # As `faceflow analyze <(curl …)` hands one over: /dev/fd/N, a pipe with its writer.
    reading, writing = os.pipe()
    try:
        os.write(writing, b"jpeg bytes")
        os.close(writing)
        assert _read(Path(f"/dev/fd/{reading}"), 1024) == b"jpeg bytes"
    finally:
        os.close(reading)


def test_a_file_over_the_upload_limit_is_refused_after_one_byte_more(tmp_path: Path) -> None:
    huge = tmp_path / "huge.jpg"
    with huge.open("wb") as file:
        file.truncate(10 * 1024 * 1024)  # sparse: nothing on disk, 10 MiB to read whole
    with pytest.raises(TooLarge) as refused:
        _read(huge, 1000)
    assert refused.value.details == {"limit_bytes": 1000}
    small = tmp_path / "small.jpg"
    small.write_bytes(b"x" * 1000)
    assert _read(small, 1000) == b"x" * 1000


def test_the_input_dash_with_standard_input_closed_is_that_files_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `faceflow analyze - <&-`: Python starts with sys.stdin None, and reading it was an
    # AttributeError traceback that ended the whole run, the other files never read.
    monkeypatch.setattr(sys, "stdin", None)

    with pytest.raises(InvalidParameter, match="standard input is closed"):
        _read(STDIN, 1000)


def test_an_output_lost_in_one_thread_stops_the_others_at_their_next_file() -> None:
    # The thread reading the forked workers' results prints their lines: an error there (the
    # output's reader gone) was that thread's traceback, and the run went on to its end.
    paths = [Path("a.jpg"), Path("b.jpg"), Path("c.jpg")]

    def on_done(outcome: FileOutcome[str]) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    in_order: _InOrder[str] = _InOrder(paths, on_done)
    seen: list[BaseException] = []

    def reader() -> None:
        try:
            in_order.add(0, FileOutcome(paths[0], "a", None))
        except BrokenPipeError as exc:
            seen.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    thread.join()

    assert len(seen) == 1
    with pytest.raises(BrokenPipeError):
        in_order.add(1, FileOutcome(paths[1], "b", None))
    with pytest.raises(BrokenPipeError):
        in_order.check()


@pytest.mark.parametrize("pattern", ["*.jpg", "**/*.JPG", "photo[12].jpg", "none?.png"])
def test_a_glob_that_matched_nothing_says_so(tmp_path: Path, pattern: str) -> None:
    # It said "cannot read …/*.jpg: No such file or directory", as if '*' were a file's name.
    with pytest.raises(InvalidParameter, match=r"^no file matches .*") as raised:
        _read(tmp_path / pattern, 1024)
    assert str(tmp_path / pattern) in raised.value.message


def test_a_missing_file_is_still_one_that_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter, match="No such file or directory"):
        _read(tmp_path / "gone.jpg", 1024)


def _saving_handler(signum: int, frame: object) -> None:  # coverage's, in kind
    raise AssertionError("the handler set aside for the run was called")


@pytest.mark.parametrize("before", [signal.SIG_DFL, _saving_handler], ids=["default", "a handler"])
def test_sigterm_during_the_files_unwinds_them_whatever_handler_was_there(before: object) -> None:
    # Under `make test` every process coverage measures starts with coverage's SIGTERM handler,
    # which dies of the signal again: kept in place, it ended the batch where it stood (-15),
    # the half-written photo left behind. It is set aside for the run and put back after it.
    signal.signal(signal.SIGTERM, before)  # type: ignore[arg-type]
    try:
        with pytest.raises(Terminated), _terminated_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
        assert signal.getsignal(signal.SIGTERM) is before
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def test_an_ignored_sigterm_stays_ignored_during_the_files() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        with _terminated_as_interrupt():
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
