"""What one inference process holds: its settings and its models, loaded once at start."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import cv2
import numpy as np

from faceflow.config import Settings
from faceflow.models.registry import ModelSet
from faceflow.pipeline.analyze import AttributeModels
from faceflow.pipeline.detect import DetectOptions, detect_faces

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WorkerContext:
    """Per-process state handed to every task; immutable so no request can change another's."""

    settings: Settings
    models: ModelSet

    @property
    def attribute_models(self) -> AttributeModels:
        return AttributeModels(self.models.aligner, self.models.age, self.models.gender)

    @property
    def detect_defaults(self) -> DetectOptions:
        return DetectOptions.from_settings(self.settings.detection)


def load_context(settings_json: str) -> WorkerContext:
    """Build a process's context; the pool calls this once in each freshly spawned process.

    Settings cross the process boundary as JSON, the same explicit form they are validated in.
    """
    settings = Settings.model_validate_json(settings_json)
    # One image at a time per process, one process per core: OpenCV's own thread pool would only
    # make the processes fight over the cores (measured: 52 → 48 CPU ms per image with 1 thread).
    cv2.setNumThreads(1)
    return WorkerContext(settings=settings, models=ModelSet.load(settings.models))


def load_pool_context(settings_json: str) -> WorkerContext:
    """:func:`load_context` for an inference-pool process, which also lowers its CPU priority.

    Inference saturates every core it is given; at a lower priority it yields at once to the API
    process beside it, whose work per request is tiny but latency-critical (cache hits, 503s).
    """
    context = load_context(settings_json)
    if context.settings.runtime.nice:
        os.nice(context.settings.runtime.nice)
    return context


def warm_up(context: WorkerContext) -> None:
    """Run every model once so the first real request pays no lazy-initialisation cost."""
    blank = np.full((480, 640, 3), 128, dtype=np.uint8)
    detect_faces(blank, context.models.detector, context.detect_defaults)
    models = context.models
    models.age.predict(np.zeros((1, models.age.chip_px, models.age.chip_px, 3), np.uint8))
    models.gender.predict(np.zeros((1, models.gender.chip_px, models.gender.chip_px, 3), np.uint8))
    models.segmenter.predict(np.full((320, 240, 3), 128, dtype=np.uint8))
    log.info("inference process warmed up")
