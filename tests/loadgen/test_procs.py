"""Process facts the benchmarks report: the process tree, its memory and CPU, and a served
`faceflow serve` that is stopped by PID."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from faceflow.config import ModelSettings
from faceflow.loadgen.procs import (
    ServiceProcess,
    cpu_seconds,
    load_average,
    process_tree,
    rss_bytes,
)


def test_the_tree_holds_a_process_and_its_children() -> None:
    # The child says when its interpreter is up: just after Popen it may not have exec'd yet,
    # and a process still being forked holds a fraction of a MB.
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"up\n"
        tree = process_tree(os.getpid())
        assert tree[0] == os.getpid()
        assert child.pid in tree
        assert rss_bytes([child.pid]) > 1_000_000
        assert rss_bytes([os.getpid(), child.pid]) > rss_bytes([child.pid])
    finally:
        child.kill()
        child.wait()


def test_cpu_seconds_grow_with_work() -> None:
    before = cpu_seconds([os.getpid()])
    sum(i * i for i in range(3_000_000))

    assert cpu_seconds([os.getpid()]) > before


def test_a_vanished_process_counts_as_nothing() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()

    assert rss_bytes([gone.pid]) == 0
    assert cpu_seconds([gone.pid]) == 0


def test_load_average_is_three_figures() -> None:
    assert len([float(x) for x in load_average().split(", ")]) == 3


def test_a_service_process_is_ready_then_stopped(
    tmp_path: Path, pulled_model_settings: ModelSettings
) -> None:
    # Detection only: its inference process loads the detector alone; the whole model set
    # is not what this checks (readiness, and that the whole tree stops).
    env = {
        "FACEFLOW_RUNTIME__PROCESSES": "1",
        "FACEFLOW_RUNTIME__OPERATIONS": '["detect"]',
        "FACEFLOW_MODELS__DIR": str(pulled_model_settings.dir),
    }
    with ServiceProcess(env, tmp_path / "serve.log") as server:
        assert httpx.get(f"{server.url}/readyz").status_code == 200
        assert server.ready_after_s > 0
        pids = server.pids()
        assert len(pids) >= 2  # the API process and its inference process
    # Stopped means the whole tree, not only the server: nothing it started is left running.
    assert all(rss_bytes([pid]) == 0 for pid in pids)
