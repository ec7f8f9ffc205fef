"""Face alignment with dlib's 5-point shape predictor, producing the chips age/gender models read.

The predictor was trained on boxes from dlib's HOG frontal-face detector, so it is fed a box of that
style: square, built from YuNet's landmarks (:func:`dlib_box_from_landmarks`). YuNet's own box is
taller and sits higher on the head; feeding it shifts predicted ages by years.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np
from numpy.typing import NDArray

from faceflow.domain import Box, Landmarks, Point
from faceflow.models.catalog import ModelSpec, model_spec
from faceflow.models.store import ModelStore

if TYPE_CHECKING:
    import dlib

# Eye corners are found on a face enlarged to about this many pixels across, when smaller.
CORNER_FACE_PX = 200.0
CHIP_PADDING = 0.2  # dlib's default for get_face_chip; the Cydral models were trained with it

# A dlib HOG box, measured against YuNet landmarks on frontal faces: its side is about this many
# times the distance between the eye midpoint and the mouth midpoint, and its centre lies this
# fraction of that distance below the eye midpoint: medians over the test photos where both ran (see
# tests/models/test_aligner.py for the check against dlib's own detector).
_SIDE_PER_EYE_MOUTH = 2.3
_CENTRE_BELOW_EYES = 0.5
# Faces are shrunk to about this many box pixels per chip pixel before chips are cut.
_FACE_PX_PER_CHIP_PX = 1.25
# The area shrunk around a face reaches one box side beyond it on every side (its left and top
# edges fix the resampling grid, which the age model is sensitive to: see _antialiased_region),
# but only the part the chip reads is shrunk to the right and below. The chip (padding 0.2) is a
# square about _CHIP_PER_BOX box sides wide, turned with the eye line: it reaches
# _CHIP_PER_BOX / 2 · (|cos| + |sin|) − 1/2 box sides beyond the box (0.2 upright, 0.37 at 18°,
# 0.49 at 45°, past which faces are turned upright first), and _CHIP_SLACK more are kept.
_CHIP_PER_BOX = 1.4
_CHIP_SLACK = 0.08


def dlib_box_from_landmarks(landmarks: Landmarks) -> Box:
    """A square dlib-style face box derived from five landmarks, in the same pixel space."""
    eye_centre, mouth_centre = landmarks.eye_centre, landmarks.mouth_centre
    eyes = np.array([eye_centre.x, eye_centre.y])
    mouth = np.array([mouth_centre.x, mouth_centre.y])
    eye_mouth = float(np.hypot(*(mouth - eyes)))
    inter_eye = float(
        np.hypot(
            landmarks.left_eye.x - landmarks.right_eye.x,
            landmarks.left_eye.y - landmarks.right_eye.y,
        )
    )
    # A face tipped up or down foreshortens the eye–mouth distance; the eye distance (about the
    # same on a frontal face) then sets a floor so the box does not collapse.
    scale = max(eye_mouth, 0.9 * inter_eye, 1.0)
    centre = eyes + (mouth - eyes) * _CENTRE_BELOW_EYES / max(eye_mouth, 1e-6) * scale
    half = _SIDE_PER_EYE_MOUTH * scale / 2
    return Box(
        float(centre[0] - half),
        float(centre[1] - half),
        float(centre[0] + half),
        float(centre[1] + half),
    )


class FaceAligner:
    """Aligns faces and cuts fixed-size RGB chips."""

    spec: ModelSpec = model_spec("dlib-5pt")

    def __init__(self, predictor: dlib.shape_predictor) -> None:
        self._predictor = predictor

    @classmethod
    def load(cls, store: ModelStore) -> FaceAligner:
        # dlib is imported by the processes that align faces or level ID photos only (≈ 11 MB
        # each): detection alone uses this module's geometry.
        import dlib

        return cls(dlib.shape_predictor(str(store.verified_path(cls.spec))))

    def eye_corners(self, rgb: NDArray[np.uint8], landmarks: Landmarks) -> NDArray[np.float64]:
        """(4, 2) x, y of the face's four eye corners in ``rgb``'s pixels, in the predictor's
        order (one eye's two corners, then the other's), for the face YuNet's ``landmarks`` mark.

        The predictor reads the face at about :data:`CORNER_FACE_PX` px across (a smaller face
        is enlarged first: it places its points on whole pixels, so on a 60 px face a pixel is
        2° of eye line), and only the region around the face is handed to it.
        """
        box = dlib_box_from_landmarks(landmarks)
        zoom = max(1.0, CORNER_FACE_PX / max(1.0, box.width_px))
        reach = box.width_px / 2
        height, width = rgb.shape[:2]
        x1, y1 = max(0, int(box.x1 - reach)), max(0, int(box.y1 - reach))
        x2, y2 = min(width, int(box.x2 + reach) + 1), min(height, int(box.y2 + reach) + 1)
        region = rgb[y1:y2, x1:x2]
        if zoom > 1.0:
            size = (round(region.shape[1] * zoom), round(region.shape[0] * zoom))
            region = np.asarray(cv2.resize(region, size, interpolation=cv2.INTER_CUBIC), np.uint8)
        local = Box(
            (box.x1 - x1) * zoom, (box.y1 - y1) * zoom, (box.x2 - x1) * zoom, (box.y2 - y1) * zoom
        )
        shape = self._predictor(np.ascontiguousarray(region), _dlib_rect(local))
        points = np.array([(shape.part(i).x, shape.part(i).y) for i in range(4)], dtype=np.float64)
        return points / zoom + np.array([x1, y1], dtype=np.float64)

    def chips(
        self,
        rgb: NDArray[np.uint8],
        faces: Sequence[Landmarks],
        sizes: Sequence[int],
    ) -> dict[int, NDArray[np.uint8]]:
        """For each size, an (N, size, size, 3) uint8 array of aligned RGB chips in face order.

        Each face is aligned once: dlib's predictor runs on a region area-averaged down so the
        face is about the largest chip's size, that chip is cut, and every smaller chip is the
        largest one area-averaged down (an integer factor for 64 → 32, so no aliasing either).
        """
        import dlib

        out = {size: np.zeros((len(faces), size, size, 3), dtype=np.uint8) for size in sizes}
        if not sizes:
            return out
        largest = max(sizes)
        for index, landmarks in enumerate(faces):
            box = dlib_box_from_landmarks(landmarks)
            region, local, trimmed = _antialiased_region(
                rgb, box, landmarks, largest, _chip_reach(landmarks) + _CHIP_SLACK
            )
            rect = _dlib_rect(dlib_box_from_landmarks(local))
            shape = self._predictor(region, rect)
            if trimmed and not _chip_inside(shape, largest, region.shape):
                # A chip reaching past the kept part (a face turned far within its plane): cut
                # from the whole area instead, as it would have been without the trim.
                region, local, _ = _antialiased_region(rgb, box, landmarks, largest, None)
                shape = self._predictor(region, rect)
            chip = dlib.get_face_chip(region, shape, size=largest, padding=CHIP_PADDING)
            for size in sizes:
                out[size][index] = (
                    chip
                    if size == largest
                    else cv2.resize(chip, (size, size), interpolation=cv2.INTER_AREA)
                )
        return out


def turn_points(
    points: NDArray[np.float64],
    turns: int,
    width_px: float,
    height_px: float,
    *,
    edges: bool = False,
) -> NDArray[np.float64]:
    """(N, 2) x, y points of a ``width_px`` × ``height_px`` image, in the pixels of that image
    turned counter-clockwise by ``turns`` quarter turns (``np.rot90(image, turns)``).

    Points are pixel positions (pixel ``i``'s centre is at ``i``, as dlib and the landmarks
    read them), so the last column maps to the first; with ``edges`` they are box edges
    (pixel ``i`` spans ``i`` to ``i + 1``) and the right edge ``width_px`` maps to 0.
    """
    x, y = points[:, 0], points[:, 1]
    last_x, last_y = (width_px, height_px) if edges else (width_px - 1, height_px - 1)
    turns %= 4
    if turns == 1:
        return np.stack([y, last_x - x], axis=1)
    if turns == 2:
        return np.stack([last_x - x, last_y - y], axis=1)
    if turns == 3:
        return np.stack([last_y - y, x], axis=1)
    return points.copy()


def _dlib_rect(box: Box) -> dlib.rectangle:
    import dlib

    return dlib.rectangle(round(box.x1), round(box.y1), round(box.x2) - 1, round(box.y2) - 1)


def _chip_reach(landmarks: Landmarks) -> float:
    """How far, in box sides, the chip of a face reaches beyond its box at the most (see
    _CHIP_PER_BOX)."""
    roll = np.arctan2(
        landmarks.left_eye.y - landmarks.right_eye.y, landmarks.left_eye.x - landmarks.right_eye.x
    )
    return float(_CHIP_PER_BOX / 2 * (abs(np.cos(roll)) + abs(np.sin(roll))) - 0.5)


def _chip_inside(shape: dlib.full_object_detection, chip_px: int, region: tuple[int, ...]) -> bool:
    """Whether the chip dlib cuts for ``shape`` lies inside the region, two pixels clear of its
    right and bottom edges (the last shrunk column and row average a partial cell)."""
    import dlib

    details = dlib.get_face_chip_details(shape, size=chip_px, padding=CHIP_PADDING)
    rect, angle = details.rect, details.angle
    half_w, half_h = rect.width() / 2, rect.height() / 2
    cos, sin = abs(np.cos(angle)), abs(np.sin(angle))
    reach_x = half_w * cos + half_h * sin
    reach_y = half_w * sin + half_h * cos
    centre_x, centre_y = (rect.left() + rect.right()) / 2, (rect.top() + rect.bottom()) / 2
    return bool(centre_x + reach_x <= region[1] - 2 and centre_y + reach_y <= region[0] - 2)


def _antialiased_region(
    rgb: NDArray[np.uint8],
    box: Box,
    landmarks: Landmarks,
    chip_px: int,
    kept_beyond_box: float | None = None,
) -> tuple[NDArray[np.uint8], Landmarks, bool]:
    """The area around ``box``, area-averaged down so the face is about the chip's own size.

    dlib samples chips bilinearly, which aliases when a 250 px face becomes a 64 px chip; the age
    model then reads the aliasing as smooth skin and answers years too young (measured on the
    test photos: a 51-year-old read as 34 at full size, 50 after this). Returns the region, the
    landmarks in its pixels, and whether its right or bottom part was left out.

    The area reaches one box side beyond the box, and its size and top-left corner set where
    each averaged pixel's cell falls: moving that grid by a hundredth of a pixel moves some ages
    by years (measured: 3.8 on obama.jpg). With ``kept_beyond_box``, only that many box sides
    right of and below the box are averaged, on the same grid (same corner, same scale: the
    region is the top-left part of the whole one, bit for bit but for its last row and column,
    whose cells the trim cuts short), which saves about a third of the averaging.
    """
    height, width = rgb.shape[:2]
    margin = box.width_px
    x1, y1 = max(0, int(box.x1 - margin)), max(0, int(box.y1 - margin))
    x2, y2 = min(width, int(box.x2 + margin) + 1), min(height, int(box.y2 + margin) + 1)
    factor = min(1.0, _FACE_PX_PER_CHIP_PX * chip_px / max(box.width_px, 1.0))
    region = rgb[y1:y2, x1:x2]
    trimmed = False
    if factor < 1.0:
        width_px, height_px = x2 - x1, y2 - y1
        size = (max(1, round(width_px * factor)), max(1, round(height_px * factor)))
        if kept_beyond_box is None:
            region = np.asarray(cv2.resize(region, size, interpolation=cv2.INTER_AREA), np.uint8)
        else:
            kept = kept_beyond_box * box.width_px
            right = min(x2, int(box.x2 + kept) + 1)
            bottom = min(y2, int(box.y2 + kept) + 1)
            trimmed = right < x2 or bottom < y2
            # OpenCV scales by exactly fx, fy when given no size, as by size / source size
            # when given one: the same grid from the same corner.
            region = np.asarray(
                cv2.resize(
                    region[: bottom - y1, : right - x1],
                    None,
                    fx=size[0] / width_px,
                    fy=size[1] / height_px,
                    interpolation=cv2.INTER_AREA,
                ),
                np.uint8,
            )
    shifted = Landmarks(
        *(Point((p.x - x1) * factor, (p.y - y1) * factor) for p in landmarks.points())
    )
    return np.ascontiguousarray(region), shifted, trimmed
