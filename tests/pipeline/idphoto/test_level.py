"""The eye line an ID photo is levelled by (level.py): YuNet's eye points turned to the eye corners
where they read a tilted head short, and left alone where the two agree or the corners do not fit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest
from numpy.typing import NDArray

from faceflow.config import LimitSettings
from faceflow.domain import Box, Face, Landmarks, Point
from faceflow.imaging.ingest import decode_image
from faceflow.models.aligner import FaceAligner
from faceflow.pipeline.detect import roll_degrees
from faceflow.pipeline.idphoto.compliance import CheckStatus
from faceflow.pipeline.idphoto.layout import measure_head
from faceflow.pipeline.idphoto.level import levelled_face
from faceflow.pipeline.idphoto.options import IdPhotoOptions
from faceflow.pipeline.idphoto.render import render_id_photo
from faceflow.pipeline.idphoto.specs import get_spec
from tests.pipeline.idphoto.conftest import CutOut

FindFaces = Callable[[NDArray[np.uint8]], tuple[Face, ...]]


def corner_roll(aligner: FaceAligner, rgb: NDArray[np.uint8], face: Face) -> float:
    """The eye line through the centres of the two eyes' corners, in degrees."""
    corners = aligner.eye_corners(rgb, face.landmarks)
    a, b = corners[0:2].mean(axis=0), corners[2:4].mean(axis=0)
    left, right = (a, b) if a[0] < b[0] else (b, a)  # as seen in the image
    return math.degrees(math.atan2(right[1] - left[1], right[0] - left[0]))


def test_a_tilted_head_whose_eye_points_read_it_short_is_levelled_by_its_eye_corners(
    decode_photo: Callable[[str], NDArray[np.uint8]], find_faces: FindFaces, aligner: FaceAligner
) -> None:
    rgb = decode_photo("biden.jpg")
    (face,) = find_faces(rgb)

    levelled = levelled_face(rgb, face, aligner)

    # YuNet's points sit on the lids and read 1.9°; the corners read the head's 12.5°.
    assert abs(face.roll) < 3
    assert levelled.level_roll is not None
    assert levelled.level_roll == pytest.approx(corner_roll(aligner, rgb, face), abs=0.01)
    assert levelled.level_roll > 10
    # Only the line it is levelled by: the points every check samples at are YuNet's.
    assert replace(levelled, level_roll=None) == face


def test_the_finished_photo_of_that_head_is_level_and_its_report_says_the_head_was_tilted(
    cut_out: CutOut, find_faces: FindFaces, aligner: FaceAligner
) -> None:
    item = cut_out("biden.jpg", None)  # the shared fixtures level faces as the service does

    photo = render_id_photo(item.matte, item.face, IdPhotoOptions(get_spec("icao")))

    finished = decode_image(photo.data, LimitSettings()).rgb
    (seen,) = find_faces(finished)
    # Before: 10.7° left in the photo, beyond the 8° a counter allows, under "eyes levelled".
    assert abs(corner_roll(aligner, finished, seen)) < 2
    roll = photo.report.check("roll")
    assert isinstance(roll.value, float)
    assert roll.value > 10
    assert roll.status is CheckStatus.WARN
    assert roll.note == "eyes levelled in the output"


@pytest.mark.parametrize("name", ["portrait_1.jpg", "portrait_2.jpg", "obama.jpg"])
def test_eye_points_near_the_corners_line_are_kept(
    name: str,
    decode_photo: Callable[[str], NDArray[np.uint8]],
    find_faces: FindFaces,
    aligner: FaceAligner,
) -> None:
    # Within 3°: a turn that small costs a photo cut at the chest a corner, and no rule needs it.
    rgb = decode_photo(name)
    (face,) = find_faces(rgb)
    assert abs(corner_roll(aligner, rgb, face) - face.roll) <= 3

    assert levelled_face(rgb, face, aligner) is face


class FixedCorners:
    """Eye corners where a test puts them."""

    def __init__(self, corners: list[tuple[float, float]]) -> None:
        self.corners = np.array(corners, dtype=np.float64)

    def eye_corners(self, rgb: NDArray[np.uint8], landmarks: Landmarks) -> NDArray[np.float64]:
        return self.corners.copy()


def upright_face(roll_deg: float = 0.0) -> Face:
    """A face with its eyes 100 px apart about (500, 400), turned ``roll_deg`` clockwise."""
    c, s = math.cos(math.radians(roll_deg)), math.sin(math.radians(roll_deg))

    def at(dx: float, dy: float) -> Point:
        return Point(500 + c * dx - s * dy, 400 + s * dx + c * dy)

    marks = Landmarks(at(-50, 0), at(50, 0), at(0, 40), at(-35, 85), at(35, 85))
    return Face(box=Box(420, 320, 580, 520), score=0.9, landmarks=marks, roll=roll_degrees(marks))


def corners_turned(roll_deg: float, spread: float = 1.0, shift: float = 0.0) -> FixedCorners:
    """Corners 100 × ``spread`` px apart about (500, 400 + ``shift``), turned ``roll_deg``."""
    c, s = math.cos(math.radians(roll_deg)), math.sin(math.radians(roll_deg))
    points = []
    for centre in (-50 * spread, 50 * spread):
        for half_width in (-15.0, 15.0):
            dx = centre + half_width
            points.append((500 + c * dx, 400 + shift + s * dx))
    return FixedCorners(points)


RGB = np.zeros((800, 1000, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    ("corners", "why"),
    [
        (corners_turned(10.0, spread=0.5), "the corners half as far apart as YuNet's eyes"),
        (corners_turned(10.0, spread=1.5), "the corners half as far again apart"),
        (corners_turned(10.0, shift=40.0), "each eye's corners 0.4 eye distances below its point"),
    ],
)
def test_corners_that_do_not_fit_the_face_are_not_used(corners: FixedCorners, why: str) -> None:
    face = upright_face()

    assert levelled_face(RGB, face, corners) is face, why


def test_corners_that_fit_turn_the_eye_points_whichever_eye_they_list_first() -> None:
    face = upright_face()
    listed = corners_turned(10.0)
    swapped = FixedCorners([*listed.corners[2:].tolist(), *listed.corners[:2].tolist()])

    for corners in (listed, swapped):
        assert levelled_face(RGB, face, corners).level_roll == pytest.approx(10.0)


def test_a_face_on_its_side_keeps_its_eye_points() -> None:
    # dlib's predictor was trained on upright faces.
    face = upright_face(90.0)

    assert levelled_face(RGB, face, corners_turned(100.0)) is face


def test_a_half_size_decode_measures_in_source_pixels(
    decode_photo: Callable[[str], NDArray[np.uint8]], find_faces: FindFaces, aligner: FaceAligner
) -> None:
    # The service decodes large uploads at a reduced scale: faces stay in source pixels.
    rgb = decode_photo("biden.jpg")
    (face,) = find_faces(rgb)
    half = np.ascontiguousarray(rgb[::2, ::2])

    levelled = levelled_face(half, face, aligner, source_scale=2.0)

    full = levelled_face(rgb, face, aligner).level_roll
    assert levelled.level_roll is not None
    assert full is not None
    assert levelled.level_roll == pytest.approx(full, abs=1.5)


def test_the_turn_of_the_head_is_read_within_the_landmarks_own_frame(
    cut_out: CutOut, decode_photo: Callable[[str], NDArray[np.uint8]], find_faces: FindFaces
) -> None:
    # Read in the corners' frame, YuNet's nose moved biden's turn from 9° to 21° (a failure).
    item = cut_out("biden.jpg", None)
    (own,) = find_faces(decode_photo("biden.jpg"))
    assert item.face.level_roll is not None

    levelled = measure_head(item.matte, item.face)
    unlevelled = measure_head(item.matte, own)

    assert levelled.roll_deg == pytest.approx(item.face.level_roll)
    assert unlevelled.roll_deg == pytest.approx(own.roll)
    assert levelled.nose_offset == pytest.approx(unlevelled.nose_offset)
