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
    """The age and gender networks (their chips are cut by the :class:`ModelSet`'s aligner)."""

    age: AgeModel
    gender: GenderModel


@dataclass(frozen=True, slots=True)
class ModelSet:
    """The models a faceflow process runs, loaded once at process start and never mutated.

    The detector is always there; the aligner, the attribute models and the segmenter only when
    the process serves operations that use them (each costs memory in every process): the
    aligner (dlib's predictor) cuts age and gender's chips and finds the eye corners an ID photo
    is levelled by. Asking for one that was not loaded raises
    :class:`~faceflow.errors.OperationDisabled` (404), the answer a client gets for an operation
    this server does not offer.
    """

    detector: YuNetDetector
    face_aligner: FaceAligner | None
    attribute_set: FaceAttributeModels | None
    portrait_segmenter: U2NetpSegmenter | None

    @classmethod
    def load(
        cls,
        settings: ModelSettings,
        *,
        aligner: bool = True,
        attributes: bool = True,
        segmenter: bool = True,
    ) -> ModelSet:
        """Load and verify the detector and the models asked for; raises ModelMissing /
        ModelChecksumMismatch."""
        store = ModelStore(settings)
        models = cls(
            detector=YuNetDetector.load(store, settings),
            face_aligner=FaceAligner.load(store) if aligner or attributes else None,
            attribute_set=FaceAttributeModels(
                AgeModel.load(store, settings), GenderModel.load(store, settings)
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
        # Reached by age and gender alone: an ID photo asks for the segmenter first.
        return _loaded(self.face_aligner, "age and gender")

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
