"""analyze: detect, then enrich every face with the selected attributes (age, gender)."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from faceflow.domain import Attribute, Face, Landmarks, Point
from faceflow.models.age_gender import AgeModel, GenderModel
from faceflow.models.aligner import FaceAligner, dlib_box_from_landmarks, turn_points
from faceflow.models.detector import YuNetDetector
from faceflow.pipeline.detect import detect_faces
from faceflow.pipeline.detect_options import DetectOptions
from faceflow.pipeline.quality import RELIABLE_SCORE, face_quality


@dataclass(frozen=True, slots=True)
class AttributeModels:
    """The per-face models analyze needs, loaded once by the caller."""

    aligner: FaceAligner
    age: AgeModel
    gender: GenderModel


def upright_chips(
    rgb: NDArray[np.uint8],
    landmarks: Sequence[Landmarks],
    rolls: Sequence[float],
    aligner: FaceAligner,
    sizes: Sequence[int],
) -> dict[int, NDArray[np.uint8]]:
    """Chips of every face, each cut from the image turned by the quarter turns that bring the
    face nearest upright (``np.rot90``; none for most faces).

    A face lying on its side is aligned exactly as it would be in the photo turned upright: the
    age model answers years apart for the same face resampled half a pixel differently, so
    turning only the face's own region would not give the upright photo's answer.
    """
    out = {size: np.zeros((len(landmarks), size, size, 3), dtype=np.uint8) for size in sizes}
    turns = [round(roll / 90.0) % 4 for roll in rolls]
    height, width = rgb.shape[:2]
    for turn in sorted(set(turns)):
        members = [i for i, t in enumerate(turns) if t == turn]
        image = np.ascontiguousarray(np.rot90(rgb, turn)) if turn else rgb
        local = [_turned_landmarks(landmarks[i], turn, width, height) for i in members]
        for size, chips in aligner.chips(image, local, sizes).items():
            out[size][members] = chips
    return out


def _turned_landmarks(landmarks: Landmarks, turns: int, width_px: int, height_px: int) -> Landmarks:
    if not turns:
        return landmarks
    points = np.array([(p.x, p.y) for p in landmarks.points()], dtype=np.float64)
    turned = turn_points(points, turns, width_px, height_px, edges=True)
    return Landmarks(*(Point(float(x), float(y)) for x, y in turned))


def enrich_faces(
    rgb: NDArray[np.uint8],
    faces: tuple[Face, ...],
    models: AttributeModels,
    attributes: Collection[Attribute],
    *,
    source_scale: float = 1.0,
) -> tuple[Face, ...]:
    """``faces`` with age and/or gender and their quality filled in; every face goes through each
    model in one call. Attributes of a face whose quality is below ``RELIABLE_SCORE`` are marked
    unreliable (widened age range, tempered gender probability).

    ``faces`` are in source pixels; ``rgb`` is the decoded image, ``source_scale`` source pixels
    per ``rgb`` pixel (as for :func:`detect_faces`).
    """
    if not faces or not attributes:
        return faces
    landmarks = [face.landmarks.scaled(1.0 / source_scale) for face in faces]
    # The age chip is always cut: quality is read from it, and the gender chip derives from it.
    sizes = [models.age.chip_px, models.gender.chip_px]
    chips = upright_chips(rgb, landmarks, [face.roll for face in faces], models.aligner, sizes)
    qualities = [
        face_quality(chip, face.landmarks, dlib_box_from_landmarks(face.landmarks).width_px)
        for chip, face in zip(chips[models.age.chip_px], faces, strict=True)
    ]
    reliable = [quality.score >= RELIABLE_SCORE for quality in qualities]
    ages = (
        models.age.predict(chips[models.age.chip_px], reliable)
        if Attribute.AGE in attributes
        else None
    )
    genders = (
        models.gender.predict(chips[models.gender.chip_px], reliable)
        if Attribute.GENDER in attributes
        else None
    )
    return tuple(
        dataclasses.replace(
            face,
            age=ages[i] if ages is not None else None,
            gender=genders[i] if genders is not None else None,
            quality=qualities[i],
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
