"""What one inference process holds: its settings and its models, loaded once at start.

numpy, OpenCV and the model and pipeline modules are imported by the functions that use them:
the API process imports this module only to name :func:`load_server_pool_context` and
:func:`warm_up` to the inference pool, and ``faceflow serve`` does that before it spawns the
pool's processes, ahead of its own web-stack imports (see
:class:`~faceflow.runtime.pool.HeadStart`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from faceflow.config import Settings
from faceflow.logs import configure_logging
from faceflow.runtime.heap import trim_heap

if TYPE_CHECKING:
    from faceflow.models.registry import ModelSet
    from faceflow.pipeline.analyze import AttributeModels
    from faceflow.pipeline.detect_options import DetectOptions

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WorkerContext:
    """Per-process state handed to every task; immutable so no request can change another's."""

    settings: Settings
    models: ModelSet

    @property
    def attribute_models(self) -> AttributeModels:
        from faceflow.pipeline.analyze import AttributeModels

        return AttributeModels(self.models.aligner, self.models.age, self.models.gender)

    @property
    def detect_defaults(self) -> DetectOptions:
        from faceflow.pipeline.detect_options import DetectOptions

        return DetectOptions.from_settings(self.settings.detection)


def load_context(settings_json: str) -> WorkerContext:
    """Build a process's context; the pool calls this once in each freshly spawned process.

    Settings cross the process boundary as JSON, the same explicit form they are validated in.
    """
    return _load(Settings.model_validate_json(settings_json))


def _load(settings: Settings) -> WorkerContext:
    import cv2

    from faceflow.models.catalog import ModelRole, roles_for
    from faceflow.models.registry import ModelSet

    roles = roles_for(settings.runtime.operations)
    # One image at a time per process, one process per core: OpenCV's own thread pool would only
    # make the processes fight over the cores (measured: 52 → 48 CPU ms per image with 1 thread).
    cv2.setNumThreads(1)
    models = ModelSet.load(
        settings.models,
        aligner=ModelRole.ALIGNER in roles,
        attributes=ModelRole.AGE in roles,
        segmenter=ModelRole.MATTE in roles,
    )
    return WorkerContext(settings=settings, models=models)


def load_pool_context(settings_json: str) -> WorkerContext:
    """:func:`load_context` for an inference-pool process, which also lowers its CPU priority.

    Inference saturates every core it is given; at a lower priority it yields at once to the API
    process beside it, whose work per request is tiny but latency-critical (cache hits, 503s).
    Lowered before the models are imported and loaded, not after: when ``faceflow serve``
    starts, the API process is still importing its web stack beside them, and its imports are
    what readiness waits for (see bench/startup.py in docs/performance.md).
    """
    settings = Settings.model_validate_json(settings_json)
    if settings.runtime.nice:
        os.nice(settings.runtime.nice)
    return _load(settings)


def load_server_pool_context(settings_json: str) -> WorkerContext:
    """:func:`load_pool_context` for one of `faceflow serve`'s inference processes, whose log
    lines are then written as the server's own (``server.log_level``, ``server.log_json``),
    each naming its process (``inference-<pid>``).

    A spawned process starts with no logging set up: its info lines (a colour profile not
    applied, documented as logged at info; its warm-up) were never written, and a task's
    traceback ("stays in this process's log") came out bare on stderr, without a time, and as
    plain text among the JSON lines of ``--log-json``.
    """
    settings = Settings.model_validate_json(settings_json)
    configure_logging(
        settings.server.log_level, settings.server.log_json, process=f"inference-{os.getpid()}"
    )
    return load_pool_context(settings_json)


def warm_up(context: WorkerContext) -> None:
    """Run every enabled operation once at a real photo's size, so the process holds what real
    requests make it hold before it is ready (see :mod:`faceflow.runtime.warmup`), then give the
    heap that loading and warming freed back to the system."""
    import numpy as np

    from faceflow.runtime.warmup import warm_up_operations

    ran = warm_up_operations(context)
    segmenter = context.models.portrait_segmenter
    if segmenter is not None and context.settings.models.segmenter_arena:
        # Only with the arena, which the first run fills and keeps. Without it (the default)
        # u2netp keeps nothing between runs: each run plans and allocates its own block, and a
        # first run cost what the next two did (CPU, 4 fresh processes on this VM at load
        # average 13–19: first 1.58–1.95 s, then 1.52–2.05 s), while running it here held each
        # process back from ready by a whole run (≈ 0.7 s of a core on an idle machine).
        segmenter.predict(np.full((320, 240, 3), 128, dtype=np.uint8))
    trim_heap()
    log.info("inference process warmed up: %s", ", ".join(ran))
