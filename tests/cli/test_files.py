"""run_files with a pool: this process works from the start, and the inference processes join it
once ready; every file is reported exactly once either way."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from faceflow.cli.files import (
    POOL_AFTER_S,
    POOL_WORTH_S,
    FileOutcome,
    _Progress,
    only,
    run_files,
)
from faceflow.config import ModelSettings, RuntimeSettings, Settings
from faceflow.domain import Operation
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


def test_the_pool_joins_this_process_and_no_file_runs_twice(
    tmp_path: Path, pulled_model_settings: ModelSettings
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

    assert sorted(o.path for o in outcomes) == sorted(files)
    assert all(o.error is None for o in outcomes)
    runners = {o.result for o in outcomes}
    assert os.getpid() in runners  # the first file ran here while the pool loaded
    # This process is one of the 2 workers: the pool has one inference process.
    assert len(runners - {os.getpid()}) == 1


def which_process(context: WorkerContext, request: bytes) -> int:
    return os.getpid()


def test_a_batch_done_before_a_pool_would_pay_never_starts_one(
    tmp_path: Path, pulled_model_settings: ModelSettings
) -> None:
    files = twelve_files(tmp_path)
    outcomes: list[FileOutcome[int]] = []

    run_files(
        Settings(models=pulled_model_settings), files, bytes, which_process, 2, outcomes.append
    )

    assert sorted(o.path for o in outcomes) == sorted(files)
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
