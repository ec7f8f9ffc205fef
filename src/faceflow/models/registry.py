"""The set of loaded models one process holds."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from faceflow.config import ModelSettings
from faceflow.models.age_gender import AgeModel, GenderModel
from faceflow.models.aligner import FaceAligner
from faceflow.models.detector import YuNetDetector
from faceflow.models.segmenter import U2NetpSegmenter
from faceflow.models.store import ModelStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ModelSet:
    """Every model a faceflow process runs, loaded once at process start and never mutated."""

    detector: YuNetDetector
    aligner: FaceAligner
    age: AgeModel
    gender: GenderModel
    segmenter: U2NetpSegmenter

    @classmethod
    def load(cls, settings: ModelSettings) -> ModelSet:
        """Load and verify every required model; raises ModelMissing / ModelChecksumMismatch."""
        store = ModelStore(settings)
        models = cls(
            detector=YuNetDetector.load(store, settings),
            aligner=FaceAligner.load(store),
            age=AgeModel.load(store, settings),
            gender=GenderModel.load(store, settings),
            segmenter=U2NetpSegmenter.load(store, settings),
        )
        log.info("models loaded from %s", store.directory)
        return models
