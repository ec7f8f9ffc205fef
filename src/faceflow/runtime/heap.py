"""What a model-running process holds, and giving its free heap back to the system.

Standard library only: the pool's worker loop (:mod:`faceflow.runtime.child`) uses it, and a
spawned worker must not import the heavy stack before its context factory does.

Why a process would hold free memory at all: glibc keeps what a request freed in its heap for
the next one, and a request that decodes a large photo or cuts a portrait out frees tens of MB
in blocks below its dynamic mmap threshold (up to 32 MB), which stay resident between requests;
which ones a process happens to keep depends on the order of the photos it was sent, so its
size drifted by tens of MB between samples (bench/rss.py in the README).
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

TRIM_SLACK_BYTES = 8 * 1024 * 1024
"""How far a process may grow past its size after its last trim before the next task's end trims
again. Trimming after every task would give back, then fault in again, the blocks the next
photo of the same size reuses; most face requests stay under this and pay nothing."""

_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def trim_heap() -> None:
    """Return free heap pages to the system (glibc ``malloc_trim``; elsewhere nothing)."""
    # The process's own symbols, libc's among them; musl and macOS have no malloc_trim.
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
    if trim is not None:
        trim(0)


def resident_bytes() -> int:
    """This process's resident set (what ``ps`` shows as RSS); 0 where /proc is absent."""
    try:
        return int(Path("/proc/self/statm").read_bytes().split()[1]) * _PAGE_BYTES
    except (OSError, IndexError, ValueError):
        return 0


class HeapKeeper:
    """Keeps a worker near its warmed-up size: :meth:`after_task` trims the heap once the process
    has grown more than ``slack_bytes`` past its size after the last trim."""

    def __init__(self, slack_bytes: int = TRIM_SLACK_BYTES) -> None:
        self._slack = slack_bytes
        self._floor = resident_bytes()

    def after_task(self) -> bool:
        """Trim if the process has grown past its floor and slack; True when it trimmed."""
        if resident_bytes() <= self._floor + self._slack:
            return False
        trim_heap()
        # What a trim cannot give back (an onnxruntime arena's peak, code pages first run) is
        # the new floor: the next task is measured against what the process really keeps.
        self._floor = resident_bytes()
        return True
