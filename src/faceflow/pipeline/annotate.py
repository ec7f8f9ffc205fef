"""annotate: the image with every face's box, landmarks and an "F 33" label drawn on it."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from numpy.typing import NDArray

from faceflow.domain import Face, Gender

_BOX_RGB = (0, 220, 90)
_LANDMARK_RGB = (255, 60, 60)
_TEXT_RGB = (255, 255, 255)
_LABEL_BG_RGB = (0, 120, 50)


def face_label(face: Face) -> str:
    """'F 33' / 'M 41' / '33' / 'F', or the detection score when no attribute was asked for."""
    parts = []
    if face.gender is not None:
        parts.append("F" if face.gender.label is Gender.FEMALE else "M")
    if face.age is not None:
        parts.append(str(round(face.age.years)))
    return " ".join(parts) if parts else f"{face.score:.2f}"


def annotate(
    rgb: NDArray[np.uint8], faces: Sequence[Face], *, source_scale: float = 1.0
) -> NDArray[np.uint8]:
    """A copy of ``rgb`` with faces drawn; strokes and text scale with the image to stay legible.

    ``faces`` are in source pixels; ``source_scale`` is source pixels per ``rgb`` pixel.
    """
    canvas = np.ascontiguousarray(rgb.copy())
    height, width = canvas.shape[:2]
    unit = max(1.0, max(height, width) / 640)
    thickness = max(1, round(2 * unit))
    font_scale = 0.5 * unit
    font = cv2.FONT_HERSHEY_SIMPLEX
    for face in faces:
        box = face.box
        p1 = (round(box.x1 / source_scale), round(box.y1 / source_scale))
        p2 = (round(box.x2 / source_scale), round(box.y2 / source_scale))
        cv2.rectangle(canvas, p1, p2, _BOX_RGB, thickness, cv2.LINE_AA)
        for point in face.landmarks.points():
            centre = (round(point.x / source_scale), round(point.y / source_scale))
            cv2.circle(canvas, centre, max(2, thickness + 1), _LANDMARK_RGB, -1, cv2.LINE_AA)
        label = face_label(face)
        (text_w, text_h), baseline = cv2.getTextSize(label, font, font_scale, thickness)
        pad = max(2, thickness)
        # Above the box when there is room, otherwise just inside its top edge.
        top = p1[1] - text_h - baseline - 2 * pad
        if top < 0:
            top = p1[1]
        bottom = top + text_h + baseline + 2 * pad
        cv2.rectangle(canvas, (p1[0], top), (p1[0] + text_w + 2 * pad, bottom), _LABEL_BG_RGB, -1)
        cv2.putText(
            canvas,
            label,
            (p1[0] + pad, bottom - baseline - pad),
            font,
            font_scale,
            _TEXT_RGB,
            thickness,
            cv2.LINE_AA,
        )
    return canvas
