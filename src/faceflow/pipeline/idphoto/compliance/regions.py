"""Where the checks look (the central face, boxes around landmarks) and the face's unit of size."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from faceflow.domain import Face, Point
from faceflow.pipeline.idphoto.matte import Matte

# A cheek patch less opaque than this (turned away, cut by the frame) is not compared.
LIGHTING_MIN_ALPHA = 0.9


def face_region(matte: Matte, face: Face) -> NDArray[np.uint8]:
    """The central face (brows to mouth, between the outer eye corners) from the matte, RGB."""
    marks = face.landmarks
    eye_distance = max(1.0, marks.left_eye.x - marks.right_eye.x)
    mouth_y = max(marks.mouth_left.y, marks.mouth_right.y)
    top_left = matte.to_matte_px(
        Point(
            marks.right_eye.x - 0.3 * eye_distance,
            min(marks.right_eye.y, marks.left_eye.y) - 0.3 * eye_distance,
        )
    )
    bottom_right = matte.to_matte_px(
        Point(marks.left_eye.x + 0.3 * eye_distance, mouth_y + 0.1 * eye_distance)
    )
    height, width = matte.alpha.shape
    x1, y1 = max(0, int(top_left.x)), max(0, int(top_left.y))
    x2, y2 = min(width, math.ceil(bottom_right.x)), min(height, math.ceil(bottom_right.y))
    return matte.foreground[y1:y2, x1:x2]


def forehead_pixels(matte: Matte, face: Face) -> NDArray[np.uint8]:
    """The forehead's opaque pixels, (N, 3) RGB: a box ±0.45 eye distances wide, 0.35–0.95 above
    the eye line, above the central face, where a flash's reflection on the skin sits."""
    marks = face.landmarks
    distance = eye_distance_px(face)
    centre = Point(
        (marks.right_eye.x + marks.left_eye.x) / 2,
        (marks.right_eye.y + marks.left_eye.y) / 2 - 0.65 * distance,
    )
    rows, cols = matte_box(matte, centre, 0.45 * distance, 0.3 * distance)
    # Only the person: what lies beside a small forehead (or above a head the frame cuts) is
    # the old backdrop, often a bright wall.
    opaque = matte.alpha[rows, cols] >= LIGHTING_MIN_ALPHA
    return np.asarray(matte.foreground[rows, cols][opaque], dtype=np.uint8)


def pixel_luma(region: NDArray[np.uint8]) -> NDArray[np.float32]:
    """Each pixel's luma (BT.601), 0–255: what the exposure and clipping checks read."""
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.asarray(region.reshape(-1, 3).astype(np.float32) @ weights, dtype=np.float32)


def matte_box(matte: Matte, centre: Point, half_w: float, half_h: float) -> tuple[slice, slice]:
    """The rows and columns of the matte in a box around a source point, sizes in source px:
    the part of the box inside the matte, empty (start = stop) when none is. Clipped at 0 alone,
    a box wholly above or left of the matte (a face near the photo's edge) ended at a negative
    index, which numpy counts from the far edge: most of the matte's rows or columns."""
    k = 1.0 / matte.source_px_per_matte_px
    at = matte.to_matte_px(centre)
    height, width = matte.alpha.shape
    x1 = min(width, max(0, round(at.x - half_w * k)))
    y1 = min(height, max(0, round(at.y - half_h * k)))
    x2 = max(x1, min(width, round(at.x + half_w * k) + 1))
    y2 = max(y1, min(height, round(at.y + half_h * k) + 1))
    return slice(y1, y2), slice(x1, x2)


def matte_top(matte: Matte, x: float, half_w: float) -> int | None:
    """The first row of the matte where a column ``half_w`` either side of ``x`` (both in matte
    px) is over half opaque on average: the top of the cut-out there (a head's, or what it
    wears); None when the column lies beside the matte or holds none of the cut-out."""
    column = matte.alpha[:, max(0, round(x - half_w)) : max(0, round(x + half_w) + 1)]
    if column.size == 0:
        return None
    rows = np.nonzero(column.mean(axis=1) > 0.5)[0]
    return int(rows[0]) if rows.size else None


def lab_patch(
    lab: NDArray[np.float32], matte: Matte, centre: Point, half_w: float, half_h: float
) -> NDArray[np.float32]:
    """A box of ``lab`` (the matte's pixels in Lab) around a source point, sizes in source px."""
    rows, cols = matte_box(matte, centre, half_w, half_h)
    return lab[rows, cols].reshape(-1, 3)


def eye_distance_px(face: Face) -> float:
    """Between the eyes' centres, in source px (at least 1): the face checks' unit of size."""
    marks = face.landmarks
    return max(
        1.0, math.hypot(marks.left_eye.x - marks.right_eye.x, marks.left_eye.y - marks.right_eye.y)
    )


def cie(lab: NDArray[np.float32]) -> NDArray[np.float32]:
    """OpenCV's 8-bit Lab (L* × 255/100, a* and b* + 128) as CIE L*a*b*."""
    out = lab.astype(np.float32) - np.array([0.0, 128.0, 128.0], np.float32)
    out[..., 0] *= np.float32(100 / 255)
    return np.asarray(out, dtype=np.float32)
