"""analyze: detect, then enrich every face with the selected attributes (age, gender)."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from faceflow.domain import Attribute, Face
from faceflow.models.age_gender import AgeModel, GenderModel
from faceflow.models.aligner import FaceAligner
from faceflow.models.detector import YuNetDetector
from faceflow.pipeline.detect import DetectOptions, detect_faces


@dataclass(frozen=True, slots=True)
class AttributeModels:
    """The per-face models analyze needs, loaded once by the caller."""

    aligner: FaceAligner
    age: AgeModel
    gender: GenderModel


def enrich_faces(
    rgb: NDArray[np.uint8],
    faces: tuple[Face, ...],
    models: AttributeModels,
    attributes: Collection[Attribute],
    *,
    source_scale: float = 1.0,
) -> tuple[Face, ...]:
    """``faces`` with age and/or gender filled in; every face goes through each model in one call.

    ``faces`` are in source pixels; ``rgb`` is the decoded image, ``source_scale`` source pixels
    per ``rgb`` pixel (as for :func:`detect_faces`).
    """
    if not faces or not attributes:
        return faces
    landmarks = [face.landmarks.scaled(1.0 / source_scale) for face in faces]
    sizes = []
    if Attribute.AGE in attributes:
        sizes.append(models.age.chip_px)
    if Attribute.GENDER in attributes:
        sizes.append(models.gender.chip_px)
    chips = models.aligner.chips(rgb, landmarks, sizes)
    ages = models.age.predict(chips[models.age.chip_px]) if Attribute.AGE in attributes else None
    genders = (
        models.gender.predict(chips[models.gender.chip_px])
        if Attribute.GENDER in attributes
        else None
    )
    return tuple(
        dataclasses.replace(
            face,
            age=ages[i] if ages is not None else None,
            gender=genders[i] if genders is not None else None,
        )
        for i, face in enumerate(faces)
    )


def analyze_faces(
    rgb: NDArray[np.uint8],
    detector: YuNetDetector,
    models: AttributeModels,
    options: DetectOptions,
    attributes: Collection[Attribute] = (Attribute.AGE, Attribute.GENDER),
    *,
    source_scale: float = 1.0,
) -> tuple[Face, ...]:
    """:func:`detect_faces`, then :func:`enrich_faces`."""
    faces = detect_faces(rgb, detector, options, source_scale=source_scale)
    return enrich_faces(rgb, faces, models, attributes, source_scale=source_scale)
