"""Slow work for the service's inference processes, injected by tests (never by a setting).

Module-level so the pool can send them by reference to its spawned processes."""

from __future__ import annotations

import time
from pathlib import Path

from faceflow.runtime.context import WorkerContext


def stuck(context: WorkerContext, seconds: float) -> float:
    """Busy for ``seconds`` without a single checkpoint: only killing the process stops it."""
    time.sleep(seconds)
    return seconds


def held(context: WorkerContext, gate: str) -> str:
    """Busy until the file ``gate`` exists (at most two minutes)."""
    deadline = time.monotonic() + 120.0
    while not Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return gate
