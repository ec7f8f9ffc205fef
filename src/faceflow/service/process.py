"""Process-wide settings of an HTTP worker: its heap, made as its app starts and once it has
started, and its garbage collector.

* **Heap**: every thread it starts allocates from the main heap
  (:func:`faceflow.runtime.heap.share_one_arena`), and it keeps up to an upload's worth of free
  heap, so a cache hit does not fault its upload's pages in afresh
  (:func:`faceflow.runtime.heap.keep_heap`; every malloc setting is made and explained there).
* **Collector**: what start-up allocated (modules, the app, the models' metadata) lives as long
  as the process, so it is moved out of the collector's generations (``gc.freeze``): a full
  collection then walks only what requests left behind, not the whole FastAPI and pydantic stack.
"""

from __future__ import annotations

import gc
import logging

from faceflow.runtime.heap import keep_heap, share_one_arena

log = logging.getLogger(__name__)


def before_threads() -> None:
    """As the app's start-up begins, before it starts a thread (the inference pool's readers and
    senders, the thread pool): have all its threads share the main heap."""
    if not share_one_arena():
        log.debug("the C library's malloc arenas were left as they are")


def settle() -> None:
    """Once start-up is over: keep the heap (:func:`~faceflow.runtime.heap.keep_heap`) and
    freeze what start-up left in the collector's care."""
    if not keep_heap():
        log.debug("the C library's heap thresholds were left as they are")
    # No gc.collect() first: over start-up's 100,000 objects it held the worker's start by
    # 0.2-0.9 s on a busy machine, for the little cyclic garbage importing leaves.
    gc.freeze()
