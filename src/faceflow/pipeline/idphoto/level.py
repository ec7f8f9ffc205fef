"""The eye line an ID photo is levelled by: YuNet's eye points', or dlib's eye corners'.

YuNet's two eye points are regressed with its box and lean towards a level face: on a head tilted
in the picture they often sit on the upper lid or under the brow, and read the tilt short. On the
87 faces of the test and dev-set photos they were 2.0° from the line through the centres of
dlib's eye corners at the median, over 5° on 12 faces, always on the level side; biden.jpg read
1.9° against 12.5°, and his finished photo kept a 10.7° tilt while its report said the eyes had
been levelled (a counter allows 8°). So where the line of the corners is more than
:data:`MIN_DISAGREEMENT_DEG` from YuNet's, the photo is levelled by it: the face's
``level_roll``. The five points themselves are kept: every check samples the picture at them,
and the head's turn (``yaw``, the nose's offset from the eyes' middle) is read within YuNet's
own five points, which lean together (read in the corners' frame, YuNet's nose moved the turn
by about the correction: 8.9° to 15.7° on df_img29, a warning made a failure, where dlib's own
nose and corners agreed with the old reading). Within the 3°, YuNet's line is kept: a residual
tilt of a degree or two is well inside every rule, and each degree of turn costs a photo cut
tight at the chest a corner of the frame (portrait_1 cut 1.4 eye-to-chin distances below the
chin, on a Chinese passport, was cut off at the bottom by a 1° turn).

The corners are used only where they fit the face YuNet found: each eye's corner centre within
:data:`MAX_EYE_SHIFT` eye distances of its point, and the two as far apart as YuNet's within
:data:`EYE_DISTANCE_RATIO` (a blurred face's corners scatter), on a face within
:data:`MAX_ROLL_DEG` of upright (dlib's predictor was trained on upright faces; a photo on its
side keeps YuNet's line).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from faceflow.domain import Face, Landmarks, Point
from faceflow.pipeline.detect import roll_degrees

MAX_EYE_SHIFT = 0.3
EYE_DISTANCE_RATIO = (0.7, 1.4)
MAX_ROLL_DEG = 30.0
MIN_DISAGREEMENT_DEG = 3.0


class EyeCorners(Protocol):
    """What finds a face's eye corners (:meth:`faceflow.models.aligner.FaceAligner.eye_corners`)."""

    def eye_corners(self, rgb: NDArray[np.uint8], landmarks: Landmarks) -> NDArray[np.float64]:
        """(4, 2) x, y: one eye's two corners, then the other's, in ``rgb``'s pixels."""
        ...


def levelled_face(
    rgb: NDArray[np.uint8], face: Face, aligner: EyeCorners, source_scale: float = 1.0
) -> Face:
    """``face`` with the line of its eye corners as its ``level_roll`` (see the module
    docstring), or ``face`` itself where the corners do not fit it or agree with its eye
    points. ``face`` is in source pixels; one pixel of ``rgb`` stands for ``source_scale`` of
    them."""
    marks = face.landmarks
    if abs(roll_degrees(marks)) > MAX_ROLL_DEG:
        return face
    corners = aligner.eye_corners(rgb, marks.scaled(1 / source_scale)) * source_scale
    right, left = _matched(corners, marks.right_eye, marks.left_eye)
    distance = math.dist(
        (marks.right_eye.x, marks.right_eye.y), (marks.left_eye.x, marks.left_eye.y)
    )
    shifts = (
        math.dist(right, (marks.right_eye.x, marks.right_eye.y)),
        math.dist(left, (marks.left_eye.x, marks.left_eye.y)),
    )
    ratio = math.dist(right, left) / max(1e-6, distance)
    low, high = EYE_DISTANCE_RATIO
    if max(shifts) > MAX_EYE_SHIFT * distance or not low <= ratio <= high:
        return face
    corners_roll = math.degrees(math.atan2(left[1] - right[1], left[0] - right[0]))
    if abs(corners_roll - roll_degrees(marks)) <= MIN_DISAGREEMENT_DEG:
        return face
    return replace(face, level_roll=corners_roll)


def _matched(
    corners: NDArray[np.float64], right: Point, left: Point
) -> tuple[tuple[float, float], tuple[float, float]]:
    """The centres of the two eyes' corner pairs, as (the subject's right eye, left eye): each
    pair goes to the YuNet point it lies nearer."""
    first = corners[0:2].mean(axis=0)
    second = corners[2:4].mean(axis=0)
    a = (float(first[0]), float(first[1]))
    b = (float(second[0]), float(second[1]))
    straight = math.dist(a, (right.x, right.y)) + math.dist(b, (left.x, left.y))
    crossed = math.dist(b, (right.x, right.y)) + math.dist(a, (left.x, left.y))
    return (a, b) if straight <= crossed else (b, a)
