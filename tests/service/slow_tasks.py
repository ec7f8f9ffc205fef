"""Slow work for the service's inference processes, injected by tests (never by a setting).

Module-level so the pool can send them by reference to its spawned processes."""

from __future__ import annotations

import time

from faceflow.runtime.context import WorkerContext


def stuck(context: WorkerContext, seconds: float) -> float:
    """Busy for ``seconds`` without a single checkpoint: only killing the process stops it."""
    time.sleep(seconds)
    return seconds
