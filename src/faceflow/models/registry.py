"""The set of loaded models one process holds."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TypeVar

from faceflow.config import ModelSettings
from faceflow.errors import OperationDisabled
from faceflow.models.age_gender import AgeModel, GenderModel
from faceflow.models.aligner import FaceAligner
from faceflow.models.detector import YuNetDetector
from faceflow.models.segmenter import U2NetpSegmenter
from faceflow.models.store import ModelStore

log = logging.getLogger(__name__)

M = TypeVar("M")


@dataclass(frozen=True, slots=True)
class FaceAttributeModels:
    """What age and gender need: dlib's aligner for the chips and the two networks."""

    aligner: FaceAligner
    age: AgeModel
    gender: GenderModel


@dataclass(frozen=True, slots=True)
class ModelSet:
    """The models a faceflow process runs, loaded once at process start and never mutated.

    The detector is always there; the attribute models and the segmenter only when the process
    serves operations that use them (each costs memory in every process). Asking for one that
    was not loaded raises :class:`~faceflow.errors.OperationDisabled` (404), the answer a client
    gets for an operation this server does not offer.
    """

    detector: YuNetDetector
    attribute_set: FaceAttributeModels | None
    portrait_segmenter: U2NetpSegmenter | None

    @classmethod
    def load(
        cls, settings: ModelSettings, *, attributes: bool = True, segmenter: bool = True
    ) -> ModelSet:
        """Load and verify the detector and the models asked for; raises ModelMissing /
        ModelChecksumMismatch."""
        store = ModelStore(settings)
        models = cls(
            detector=YuNetDetector.load(store, settings),
            attribute_set=FaceAttributeModels(
                FaceAligner.load(store),
                AgeModel.load(store, settings),
                GenderModel.load(store, settings),
            )
            if attributes
            else None,
            portrait_segmenter=U2NetpSegmenter.load(store, settings) if segmenter else None,
        )
        log.info(
            "models loaded from %s (attributes: %s, segmenter: %s)",
            store.directory,
            attributes,
            segmenter,
        )
        return models

    @property
    def aligner(self) -> FaceAligner:
        return self._attributes().aligner

    @property
    def age(self) -> AgeModel:
        return self._attributes().age

    @property
    def gender(self) -> GenderModel:
        return self._attributes().gender

    @property
    def segmenter(self) -> U2NetpSegmenter:
        return _loaded(self.portrait_segmenter, "ID photos")

    def _attributes(self) -> FaceAttributeModels:
        return _loaded(self.attribute_set, "age and gender")


def _loaded(model: M | None, what: str) -> M:
    if model is None:
        raise OperationDisabled(f"{what} are not offered by this server (runtime.operations)")
    return model
