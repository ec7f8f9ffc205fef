"""What detection is asked to do: its options, apart from the detector.

Options travel with every face request, so they are built where the request arrives (the API
process) and read where it runs (an inference process); this module imports no numpy or OpenCV
so the API process need not either.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from faceflow.config import DetectionSettings


class SmallFaces(StrEnum):
    """Whether to look for faces too small for the single 640 px pass."""

    OFF = "off"
    AUTO = "auto"
    """Tiles when the photo is large and the first pass found a group or a small face."""
    TILES = "tiles"
    """Always, on large photos and small ones alike (a small photo is enlarged)."""


@dataclass(frozen=True, slots=True)
class DetectOptions:
    score_threshold: float = 0.7
    nms_threshold: float = 0.3
    min_face_px: int = 20
    max_faces: int = 100
    small_faces: SmallFaces = SmallFaces.AUTO

    @classmethod
    def from_settings(cls, settings: DetectionSettings) -> DetectOptions:
        return cls(
            score_threshold=settings.score_threshold,
            nms_threshold=settings.nms_threshold,
            min_face_px=settings.min_face_px,
            max_faces=settings.max_faces,
        )
