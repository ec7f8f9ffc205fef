"""Loaded by every Python process whose path starts with this directory (bench/hit_gc.py puts it
first in ``PYTHONPATH``): times every garbage collection in the thread's CPU time (a process
losing its core mid-collection does not count) and writes the tally, and each full collection,
to ``$FACEFLOW_GC_PROBE_DIR/gc-PID.json`` at most once a second and after every full one."""

from __future__ import annotations

import gc
import json
import os
import time
from pathlib import Path
from typing import Any

_DIR = os.environ.get("FACEFLOW_GC_PROBE_DIR")
_started: dict[int, float] = {}
_tally = {generation: [0, 0.0, 0.0] for generation in range(3)}  # count, CPU s, max CPU s
_full: list[tuple[float, float, int]] = []  # (monotonic time, CPU ms, objects collected)
_written = [time.monotonic()]


def _probe(phase: str, info: dict[str, Any]) -> None:
    generation = info["generation"]
    if phase == "start":
        _started[generation] = time.thread_time()
        return
    spent = time.thread_time() - _started.pop(generation, time.thread_time())
    tally = _tally[generation]
    tally[0] += 1
    tally[1] += spent
    tally[2] = max(tally[2], spent)
    now = time.monotonic()
    if generation == 2:
        _full.append((now, spent * 1e3, info["collected"]))
    if generation == 2 or now - _written[0] > 1.0:
        _written[0] = now
        state = {"frozen": gc.get_freeze_count(), "tally": _tally, "full": _full}
        Path(_DIR or ".", f"gc-{os.getpid()}.json").write_text(json.dumps(state))


if _DIR:
    gc.callbacks.append(_probe)
if os.environ.get("FACEFLOW_TAIL_PROBE_DIR"):
    import tail_probe  # noqa: F401 - installs itself (bench/hit_tail.py)
