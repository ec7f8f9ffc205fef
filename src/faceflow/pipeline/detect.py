"""detect: every face in an image, with box, score and five landmarks in source pixels."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from faceflow.config import DetectionSettings
from faceflow.domain import Box, Face, Landmarks, Point
from faceflow.imaging.colour import rgb_to_bgr
from faceflow.models.detector import INPUT_SIZE_PX, YuNetDetector


@dataclass(frozen=True, slots=True)
class DetectOptions:
    score_threshold: float = 0.7
    nms_threshold: float = 0.3
    min_face_px: int = 20
    max_faces: int = 100

    @classmethod
    def from_settings(cls, settings: DetectionSettings) -> DetectOptions:
        return cls(
            score_threshold=settings.score_threshold,
            nms_threshold=settings.nms_threshold,
            min_face_px=settings.min_face_px,
            max_faces=settings.max_faces,
        )


def fit_to_detector(rgb: NDArray[np.uint8]) -> tuple[NDArray[np.uint8], float]:
    """``rgb`` resized so its long side is the detector's 640 px; and the factor back to ``rgb``.

    Small images are enlarged too: YuNet finds faces down to about 10 px at its input, so a
    200 px thumbnail's faces are easier to find at 640.
    """
    height, width = rgb.shape[:2]
    factor = INPUT_SIZE_PX / max(height, width)
    if factor == 1.0:
        return rgb, 1.0
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(rgb, size, interpolation=interpolation)
    return np.asarray(resized, dtype=np.uint8), 1.0 / factor


def detect_faces(
    rgb: NDArray[np.uint8],
    detector: YuNetDetector,
    options: DetectOptions,
    *,
    source_scale: float = 1.0,
) -> tuple[Face, ...]:
    """Faces in ``rgb``, largest first, in source pixels (``rgb`` pixels × ``source_scale``).

    ``source_scale`` is :attr:`DecodedImage.scale`: how many source pixels one pixel of ``rgb``
    stands for when the decoder shrank the image. Faces narrower than ``min_face_px`` source pixels
    are dropped, then at most ``max_faces`` of the largest are kept.
    """
    small, back = fit_to_detector(rgb)
    raw = detector.detect(rgb_to_bgr(small), options.score_threshold, options.nms_threshold)
    to_source = back * source_scale
    height_px, width_px = rgb.shape[0] * source_scale, rgb.shape[1] * source_scale
    faces: list[Face] = []
    for box, score, marks in zip(raw.boxes, raw.scores, raw.landmarks, strict=True):
        x1, y1, x2, y2 = (float(v) * to_source for v in box)
        clipped = Box(max(0.0, x1), max(0.0, y1), min(width_px, x2), min(height_px, y2))
        if min(clipped.width_px, clipped.height_px) < max(1, options.min_face_px):
            continue
        points = [Point(float(x) * to_source, float(y) * to_source) for x, y in marks]
        faces.append(Face(box=clipped, score=float(score), landmarks=Landmarks(*points)))
    faces.sort(key=lambda face: face.box.area_px, reverse=True)
    return tuple(faces[: options.max_faces])
