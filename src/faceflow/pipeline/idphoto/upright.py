"""A photo saved on its side or upside down, turned upright before its cut-out.

The detector finds faces in any orientation (:mod:`faceflow.pipeline.detect`), but everything
after it assumes an upright person: u2netp cuts a sideways person out poorly, the layout levels
the eyes by turning the photo at most a few degrees, and the checks' regions (the forehead above
the eyes, the cheeks beside them) are placed for a head on top. A phone photo whose orientation
tag was stripped is such a photo, and it is the same picture as the upright file. So the
decoded image is turned by the quarter turns that bring the chosen face nearest upright (a face
over 45° off), as ``/v1/detect``'s age and gender chips are
(:func:`faceflow.pipeline.analyze.upright_chips`), and the faces with it; the photo is then made
exactly as from the upright file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from faceflow.domain import Box, Face, Landmarks, Point
from faceflow.models.aligner import turn_points
from faceflow.pipeline.detect import roll_degrees

# A face found again on the turned pixels is the chosen one when their boxes overlap this much
# (intersection over union).
MIN_OVERLAP = 0.5


@dataclass(frozen=True, slots=True, eq=False)
class Upright:
    """The decoded image turned upright (``np.rot90(rgb, turns)``) and its faces in its pixels."""

    rgb: NDArray[np.uint8]
    face: Face
    others: tuple[Face, ...]
    turns: int
    """Quarter turns counter-clockwise the source was turned by: 0 (as taken) to 3."""

    def redetected(self, found: Sequence[Face]) -> Upright:
        """These faces replaced by ``found``, the detector's on :attr:`rgb`: the face is the
        one overlapping the turned face most (kept as turned if none overlaps it by half).

        The turned points lie within 0.15 px of the upright file's (df_img12 and df_img21 turned
        each way: the detector's passes resample the turned photo a little differently), but
        the steps after them (the crop rounded to whole pixels, u2netp, dlib, the layout's
        choice among head heights) can make much of that: df_img12 upside down was framed 4 px
        off on ``us-passport`` and its ``subject_cut_off`` passed as a warning. Faces found on
        the upright pixels make the upright file's photo, for one more detector pass.
        """
        if not found:
            return self
        best = max(found, key=lambda other: _overlap(other.box, self.face.box))
        if _overlap(best.box, self.face.box) < MIN_OVERLAP:
            return self
        return Upright(self.rgb, best, tuple(f for f in found if f is not best), self.turns)


def quarter_turns(roll: float) -> int:
    """The counter-clockwise quarter turns that bring a face of ``roll`` degrees nearest upright:
    1 for a face whose top points to the image's right (roll 90), 0 within ±45°."""
    return round(roll / 90.0) % 4


def upright(
    rgb: NDArray[np.uint8], face: Face, others: Sequence[Face], source_scale: float = 1.0
) -> Upright:
    """``rgb`` turned so that ``face`` is nearest upright, with ``face`` and ``others`` in the
    turned image's source pixels (``rgb``'s pixels × ``source_scale``, as the detector gives them).

    The faces' points turn as the detector turns its own back from a turned pass (box edges and
    landmarks alike as continuous positions, ``edges=True``), so they land where detection on the
    upright file puts them. Nothing is copied for a face already upright.
    """
    turns = quarter_turns(face.roll)
    if not turns:
        return Upright(rgb, face, tuple(others), 0)
    height, width = rgb.shape[:2]
    size = (width * source_scale, height * source_scale)
    turned = np.ascontiguousarray(np.rot90(rgb, turns))
    return Upright(
        turned,
        _turned_face(face, turns, *size),
        tuple(_turned_face(other, turns, *size) for other in others),
        turns,
    )


def _turned_face(face: Face, turns: int, width: float, height: float) -> Face:
    box = face.box
    corners = turn_points(
        np.array([(box.x1, box.y1), (box.x2, box.y2)], dtype=np.float64),
        turns,
        width,
        height,
        edges=True,
    )
    (x1, y1), (x2, y2) = corners.min(axis=0), corners.max(axis=0)
    points = np.array([(p.x, p.y) for p in face.landmarks.points()], dtype=np.float64)
    marks = turn_points(points, turns, width, height, edges=True)
    landmarks = Landmarks(*(Point(float(x), float(y)) for x, y in marks))
    return replace(
        face,
        box=Box(float(x1), float(y1), float(x2), float(y2)),
        landmarks=landmarks,
        roll=roll_degrees(landmarks),
        level_roll=None,
    )


def _overlap(a: Box, b: Box) -> float:
    """Intersection over union of two boxes."""
    width = max(0.0, min(a.x2, b.x2) - max(a.x1, b.x1))
    height = max(0.0, min(a.y2, b.y2) - max(a.y1, b.y1))
    shared = width * height
    return shared / max(1e-9, a.area_px + b.area_px - shared)
