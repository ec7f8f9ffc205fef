"""Process-wide settings of an HTTP worker, made once its app has started: its heap and its
garbage collector.

* **Heap**: glibc gives the top of its heap back to the kernel once more than 128 KiB of it is
  free, so a process that allocates and frees an upload's bytes on every request (the body, the
  image cut from a form) faults the same pages in again on the next one — 7 to 19 page faults per
  cache hit of a 95 KB image, a quarter of the hit's served CPU in system time (measured with
  ``bench/hit_cpu.py``-style runs, ``/proc/PID/stat`` minor faults). Uploads up to
  :data:`HEAP_KEPT_BYTES` are therefore served from the heap (not from a fresh ``mmap`` each)
  and that much free heap is kept: at most that much more resident memory per HTTP worker, the
  same glibc settles on by itself after the first freed upload of that size.
* **Collector**: what start-up allocated (modules, the app, the models' metadata) lives as long
  as the process, so it is moved out of the collector's generations (``gc.freeze``): a full
  collection then walks only what requests left behind, not the whole FastAPI and pydantic stack.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import sys

log = logging.getLogger(__name__)

HEAP_KEPT_BYTES = 16 * 1024 * 1024
"""Above the largest single image (``limits.max_upload_bytes``, 10 MiB by default)."""

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_heap(size: int = HEAP_KEPT_BYTES) -> bool:
    """Serve allocations under ``size`` from the heap and keep up to ``size`` of it free (glibc
    only; False where there is no ``mallopt`` or it refuses)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    # mallopt answers 1 when it took the value (musl's answers 0 and does nothing).
    return bool(mallopt(_M_MMAP_THRESHOLD, size)) and bool(mallopt(_M_TRIM_THRESHOLD, size))


def settle() -> None:
    """Once start-up is over: keep the heap (:func:`keep_heap`) and freeze what start-up left in
    the collector's care."""
    if not keep_heap():
        log.debug("the C library's heap thresholds were left as they are")
    # No gc.collect() first: over start-up's 100,000 objects it held the worker's start by
    # 0.2-0.9 s on a busy machine, for the little cyclic garbage importing leaves.
    gc.freeze()
