"""glibc's heap, in one place: what a process keeps of the memory it freed, and giving it back.

Every malloc setting faceflow makes is here (the inference processes' ``GLIBC_TUNABLES``, read
by glibc before Python starts, are put in their environment by
:func:`faceflow.runtime.pool.child_glibc_tunables`):

* an inference process trims its free heap after a task once it has grown past a slack, and
  all of it once it has been idle a while (:class:`HeapKeeper`);
* an HTTP worker keeps up to an upload's worth of free heap (:func:`keep_heap`) and has all its
  threads share one malloc arena (:func:`share_one_arena`).

Standard library only: the pool's worker loop (:mod:`faceflow.runtime.child`) uses it, and a
spawned worker must not import the heavy stack before its context factory does.

Why a process would hold free memory at all: glibc keeps what a request freed in its heap for
the next one, and a request that decodes a large photo or cuts a portrait out frees tens of MB
in blocks below its dynamic mmap threshold (up to 32 MB), which stay resident between requests;
which ones a process happens to keep depends on the order of the photos it was sent, so its
size drifted by tens of MB between samples (bench/rss.py in docs/performance.md).
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

TRIM_SLACK_BYTES = 16 * 1024 * 1024
"""How far a process may grow past its size after its last trim before the next task's end trims
again. Trimming after every task would give back, then fault in again, the blocks the next
photo of the same size reuses; most face requests stay under this and pay nothing.

16 MB, not 8: in an inference process an ``analyze`` of a 95 KB photo (decoded at 1280 px)
leaves it 11-13 MB past its trimmed size, so at 8 MB nearly every task trimmed (199 of 201) and
the next one faulted ≈ 1,000-1,600 pages back in: ≈ 4 ms of a 27 ms miss's CPU, in system time
(docs/performance.md, The service). 24 MB was measured before as too loose for flat memory.
A photo decoded larger (970×2204 decodes at full size) still outgrows 16 MB and trims each task."""

IDLE_TRIM_S = 2.0
"""How long an inference process waits for its next task before it gives back what it holds past
its floor, the slack's worth included. Under load the slack serves the next photo; a server that
has gone quiet (a burst over, the night) goes back to its size at ready, where it stayed up to
the two processes' slack above it (+6 % in bench/rss.py) for as long as no task came. A task
after a pause this long pays the page faults the slack would have spared it (≈ 4 ms), once."""

IDLE_SLACK_BYTES = 1024 * 1024
"""What an idle process may keep past its floor without a trim: less is not worth the call."""

HEAP_KEPT_BYTES = 16 * 1024 * 1024
"""Above the largest single image (``limits.max_upload_bytes``, 10 MiB by default)."""

_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def trim_heap() -> None:
    """Return free heap pages to the system (glibc ``malloc_trim``; elsewhere nothing)."""
    # The process's own symbols, libc's among them; musl and macOS have no malloc_trim.
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
    if trim is not None:
        trim(0)


def keep_heap(size: int = HEAP_KEPT_BYTES) -> bool:
    """Serve allocations under ``size`` from the heap and keep up to ``size`` of it free (glibc
    only; False where there is no ``mallopt`` or it refuses).

    For an HTTP worker: glibc gives the top of its heap back to the kernel once more than 128 KiB
    of it is free, so a process that allocates and frees an upload's bytes on every request (the
    body, the image cut from a form) faults the same pages in again on the next one — 7 to 19
    page faults per cache hit of a 95 KB image, a quarter of the hit's served CPU in system time
    (measured with ``bench/hit_cpu.py``-style runs, ``/proc/PID/stat`` minor faults). Uploads up
    to ``size`` are therefore served from the heap (not from a fresh ``mmap`` each) and that much
    free heap is kept: at most that much more resident memory per HTTP worker, the same glibc
    settles on by itself after the first freed upload of that size.
    """
    # mallopt answers 1 when it took the value (musl's answers 0 and does nothing).
    return _mallopt(_M_MMAP_THRESHOLD, size) and _mallopt(_M_TRIM_THRESHOLD, size)


def share_one_arena() -> bool:
    """Have every thread started from now on allocate from the main heap, not from an arena of
    its own (glibc only; False where there is no ``mallopt`` or it refuses).

    For an HTTP worker, called before it starts any thread: the inference pool's reader threads
    unpickle every reply (annotated images, ID photos) and the answers the result cache keeps
    are allocated there; in arenas of their own each kept the free space and the gaps the
    cache's evictions left (besides the main heap's :func:`keep_heap` allowance), ≈ 6 MB more
    once the cache was full (bench/rss.py in docs/performance.md). Every such thread allocates while
    holding the GIL, so one arena costs them no waiting on each other.
    """
    return _mallopt(_M_ARENA_MAX, 1)


def _mallopt(parameter: int, value: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(parameter, value))


def resident_bytes() -> int:
    """This process's resident set (what ``ps`` shows as RSS); 0 where /proc is absent."""
    try:
        return int(Path("/proc/self/statm").read_bytes().split()[1]) * _PAGE_BYTES
    except (OSError, IndexError, ValueError):
        return 0


class HeapKeeper:
    """Keeps a worker near its warmed-up size: :meth:`after_task` trims the heap once the process
    has grown more than ``slack_bytes`` past its size after the last trim, and :meth:`idle`, once
    no task has come for :data:`IDLE_TRIM_S`, trims what is left past it."""

    def __init__(self, slack_bytes: int = TRIM_SLACK_BYTES) -> None:
        self._slack = slack_bytes
        self._floor = resident_bytes()
        self._held = False

    @property
    def idle_trim_due(self) -> bool:
        """Whether the last task left the process over :data:`IDLE_SLACK_BYTES` past its floor
        (read by :meth:`after_task`: asking costs no system call)."""
        return self._held

    def after_task(self) -> bool:
        """Trim if the process has grown past its floor and slack; True when it trimmed."""
        resident = resident_bytes()
        if resident <= self._floor + self._slack:
            self._held = resident > self._floor + IDLE_SLACK_BYTES
            return False
        self._trim()
        return True

    def idle(self) -> bool:
        """For a process with no task for :data:`IDLE_TRIM_S`: trim if the last task left it
        holding past its floor (:attr:`idle_trim_due`); True when it trimmed."""
        if not self._held:
            return False
        self._trim()
        return True

    def _trim(self) -> None:
        trim_heap()
        # What a trim cannot give back (an onnxruntime arena's peak, code pages first run) is
        # the new floor: the next task is measured against what the process really keeps.
        self._floor = resident_bytes()
        self._held = False
