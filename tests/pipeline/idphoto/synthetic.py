"""A synthetic head and shoulders with known geometry, for layout and compliance tests."""

from __future__ import annotations

import math

import cv2
import numpy as np

from faceflow.domain import Box, Face, Landmarks, Point
from faceflow.pipeline.idphoto.layout import CHIN_BELOW_BOX
from faceflow.pipeline.idphoto.matte import Matte

SOURCE_W, SOURCE_H = 1000, 1200
EYES = Point(500, 500)
EYE_TO_MOUTH = 80.0
CHIN_Y = 114.0  # below the eyes, in the level frame
CROWN_Y = -170.0  # above the eyes


def rotate(point: Point, degrees: float, centre: Point = EYES) -> Point:
    """``point`` rotated by ``degrees`` about ``centre`` (positive: clockwise on screen)."""
    t = math.radians(degrees)
    dx, dy = point.x - centre.x, point.y - centre.y
    return Point(
        centre.x + dx * math.cos(t) - dy * math.sin(t),
        centre.y + dx * math.sin(t) + dy * math.cos(t),
    )


def synthetic(
    roll_deg: float = 0.0,
    crown_y: float = CROWN_Y,
    crop: Box | None = None,
    box_bottom_at_edge: bool = False,
    nose_shift: float = 0.0,
) -> tuple[Matte, Face]:
    """A head and shoulders drawn upright around ``EYES``, then rolled by ``roll_deg``.

    ``nose_shift`` moves the nose sideways by that many eye distances (80 px), as a turned
    head does.
    """
    alpha = np.zeros((SOURCE_H, SOURCE_W), dtype=np.float32)
    head_top = EYES.y + crown_y
    head_bottom = EYES.y + CHIN_Y
    centre_y = (head_top + head_bottom) / 2
    axes = (110, round((head_bottom - head_top) / 2))
    cv2.ellipse(alpha, (500, round(centre_y)), axes, 0, 0, 360, 1.0, -1)
    cv2.rectangle(alpha, (460, round(centre_y)), (540, 700), 1.0, -1)  # neck
    cv2.rectangle(alpha, (250, 680), (750, SOURCE_H - 1), 1.0, -1)  # shoulders
    if roll_deg:
        turn = cv2.getRotationMatrix2D((EYES.x, EYES.y), -roll_deg, 1.0)
        alpha = np.asarray(
            cv2.warpAffine(alpha, turn, (SOURCE_W, SOURCE_H), flags=cv2.INTER_NEAREST),
            dtype=np.float32,
        )
    upright = [
        Point(460, 500),
        Point(540, 500),
        Point(500 + 80 * nose_shift, 545),
        Point(470, 580),
        Point(530, 580),
    ]
    marks = [rotate(p, roll_deg) for p in upright]
    # The detector's box bottom is where the chin estimate expects it for this roll.
    y2 = EYES.y + (CHIN_Y - CHIN_BELOW_BOX * EYE_TO_MOUTH) * math.cos(math.radians(roll_deg))
    if box_bottom_at_edge:
        y2 = SOURCE_H
    face = Face(box=Box(420, 420, 580, y2), score=0.9, landmarks=Landmarks(*marks))
    box = crop or Box(0, 0, SOURCE_W, SOURCE_H)
    x1, y1, x2, y2i = int(box.x1), int(box.y1), int(box.x2), int(box.y2)
    cut = np.ascontiguousarray(alpha[y1:y2i, x1:x2])
    foreground = np.full((*cut.shape, 3), 128, dtype=np.uint8)
    matte = Matte(box, foreground, cut, face, (SOURCE_W, SOURCE_H), 3.0)
    return matte, face
