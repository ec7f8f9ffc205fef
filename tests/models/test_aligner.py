"""Alignment: the dlib-style box built from YuNet's landmarks, and the chips cut from it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import dlib
import numpy as np
import pytest
from numpy.typing import NDArray

from faceflow.config import LimitSettings
from faceflow.domain import Box, Face, Landmarks, Point
from faceflow.imaging.ingest import decode_image
from faceflow.models.aligner import (
    _CHIP_SLACK,
    _antialiased_region,
    _chip_reach,
    dlib_box_from_landmarks,
)
from faceflow.models.registry import ModelSet
from faceflow.pipeline.detect import detect_faces
from faceflow.pipeline.detect_options import DetectOptions

# Photos whose faces look straight at the camera: dlib's HOG detector is a frontal detector.
FRONTAL_PHOTOS = [
    "astronaut.jpg",
    "biden.jpg",
    "obama.jpg",
    "obama_small.jpg",
    "portrait_1.jpg",
    "portrait_2.jpg",
    "rose_leslie.jpg",
    "two_people.jpg",
]


# HOG's cost grows with the pixel count; at this long side every face in FRONTAL_PHOTOS is still
# above HOG's 80 px minimum, so it runs without upsampling.
HOG_LONG_SIDE_PX = 800


def photo_for_hog(path: Path) -> NDArray[np.uint8]:
    rgb = decode_image(path.read_bytes(), LimitSettings()).rgb
    factor = HOG_LONG_SIDE_PX / max(rgb.shape[:2])
    if factor >= 1:
        return rgb
    size = (round(rgb.shape[1] * factor), round(rgb.shape[0] * factor))
    return np.asarray(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), np.uint8)


@pytest.fixture(scope="module")
def hog_detector() -> Callable[[NDArray[np.uint8]], list[Box]]:
    """dlib's own HOG frontal-face detector (the boxes its shape predictor was trained on);
    built once, as building it takes about a second."""
    detector = dlib.get_frontal_face_detector()

    def boxes(rgb: NDArray[np.uint8]) -> list[Box]:
        return [
            Box(rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1)
            for rect in detector(rgb, 0)
        ]

    return boxes


@pytest.mark.parametrize("photo", FRONTAL_PHOTOS)
def test_landmark_box_matches_dlibs_own_detector(
    model_set: ModelSet,
    testdata: Path,
    hog_detector: Callable[[NDArray[np.uint8]], list[Box]],
    photo: str,
) -> None:
    rgb = photo_for_hog(testdata / photo)
    faces = detect_faces(rgb, model_set.detector, DetectOptions())
    reference = hog_detector(rgb)
    assert faces
    assert reference

    for face in faces:
        ours = dlib_box_from_landmarks(face.landmarks)
        theirs = min(reference, key=lambda box: distance(box.center, ours.center))
        side = theirs.width_px
        assert distance(ours.center, theirs.center) <= 0.15 * side
        assert ours.width_px == pytest.approx(side, rel=0.20)
        assert ours.width_px == pytest.approx(ours.height_px)


def distance(a: Point, b: Point) -> float:
    return float(np.hypot(a.x - b.x, a.y - b.y))


def frontal_landmarks(eye_y: float = 100.0, mouth_y: float = 150.0) -> Landmarks:
    return Landmarks(
        right_eye=Point(80, eye_y),
        left_eye=Point(120, eye_y),
        nose=Point(100, (eye_y + mouth_y) / 2),
        mouth_right=Point(85, mouth_y),
        mouth_left=Point(115, mouth_y),
    )


def test_landmark_box_is_square_below_the_eyes_and_scales_with_the_face() -> None:
    small = dlib_box_from_landmarks(frontal_landmarks(100, 150))
    large = dlib_box_from_landmarks(frontal_landmarks(100, 200))

    assert small.width_px == pytest.approx(small.height_px)
    assert small.center.x == pytest.approx(100.0)
    assert 100 < small.center.y < 150  # between the eye line and the mouth
    assert large.width_px == pytest.approx(2 * small.width_px)


def test_landmark_box_does_not_collapse_when_eyes_and_mouth_coincide() -> None:
    box = dlib_box_from_landmarks(frontal_landmarks(100, 100))

    assert box.width_px > 40  # set by the 40 px eye distance


def test_chips_have_the_requested_sizes_in_face_order(model_set: ModelSet, testdata: Path) -> None:
    rgb = decode_image((testdata / "two_people.jpg").read_bytes(), LimitSettings()).rgb
    faces: tuple[Face, ...] = detect_faces(rgb, model_set.detector, DetectOptions())

    chips = model_set.aligner.chips(rgb, [f.landmarks for f in faces], [64, 32])

    assert chips[64].shape == (2, 64, 64, 3)
    assert chips[32].shape == (2, 32, 32, 3)
    assert chips[64].dtype == np.uint8
    # Two different people: their chips differ, and neither is blank.
    assert not np.array_equal(chips[64][0], chips[64][1])
    assert chips[64].reshape(2, -1).std(axis=1).min() > 10


def test_one_alignment_gives_both_chips_with_the_genders_of_separate_alignments(
    model_set: ModelSet, testdata: Path
) -> None:
    """The 32 px gender chip is the 64 px age chip area-averaged, not a second alignment; the
    gender it reads is the one a chip aligned on its own at 32 px gives."""
    for photo in FRONTAL_PHOTOS:
        rgb = decode_image((testdata / photo).read_bytes(), LimitSettings()).rgb
        marks = [f.landmarks for f in detect_faces(rgb, model_set.detector, DetectOptions())]

        both = model_set.aligner.chips(rgb, marks, [64, 32])
        alone = model_set.aligner.chips(rgb, marks, [32])

        derived = cv2.resize(both[64][0], (32, 32), interpolation=cv2.INTER_AREA)
        assert np.array_equal(both[32][0], derived)
        assert np.abs(both[32].astype(int) - alone[32].astype(int)).mean() < 12
        ours = [g.label for g in model_set.gender.predict(both[32])]
        theirs = [g.label for g in model_set.gender.predict(alone[32])]
        assert ours == theirs, photo


def test_trimmed_region_is_the_top_left_of_the_whole_one_bit_for_bit(
    model_set: ModelSet, testdata: Path
) -> None:
    """Averaging only part of the area around a face keeps every averaged pixel's cell where the
    whole area puts it: the age model moves by years when that grid moves by a hundredth of a
    pixel, so the trim must not change a single value."""
    trimmed_faces = 0
    for photo in [*FRONTAL_PHOTOS, "obama_rgba.png", "obama_partial_face.jpg"]:
        rgb = decode_image((testdata / photo).read_bytes(), LimitSettings()).rgb
        for face in detect_faces(rgb, model_set.detector, DetectOptions()):
            box = dlib_box_from_landmarks(face.landmarks)
            whole, whole_marks, _ = _antialiased_region(rgb, box, face.landmarks, 64, None)
            part, part_marks, trimmed = _antialiased_region(
                rgb, box, face.landmarks, 64, _chip_reach(face.landmarks) + _CHIP_SLACK
            )

            # Its last row and column average cells the trim cut short; the chip keeps clear.
            height, width = part.shape[0] - 1, part.shape[1] - 1
            assert np.array_equal(part[:height, :width], whole[:height, :width]), photo
            assert part_marks == whole_marks
            trimmed_faces += trimmed
    assert trimmed_faces >= len(FRONTAL_PHOTOS)  # large faces: the trim did leave some out


def test_a_chip_reaching_past_the_kept_part_is_cut_from_the_whole_area(
    model_set: ModelSet, testdata: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Too little kept (negative slack: less than the box itself) falls back to averaging the
    whole area, so the chips are those of no trim at all."""
    rgb = decode_image((testdata / "two_people.jpg").read_bytes(), LimitSettings()).rgb
    marks = [f.landmarks for f in detect_faces(rgb, model_set.detector, DetectOptions())]
    trimmed = model_set.aligner.chips(rgb, marks, [64, 32])

    monkeypatch.setattr("faceflow.models.aligner._CHIP_SLACK", -0.5)
    fallen_back = model_set.aligner.chips(rgb, marks, [64, 32])
    monkeypatch.setattr("faceflow.models.aligner._CHIP_SLACK", 10.0)
    whole = model_set.aligner.chips(rgb, marks, [64, 32])

    for size in (64, 32):
        assert np.array_equal(fallen_back[size], whole[size])
        assert np.array_equal(trimmed[size], whole[size])
