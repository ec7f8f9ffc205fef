"""Faces in any orientation: every labelled test photo turned by 90, 180 and 270 degrees (a PNG
without EXIF, so only the pixels say which way is up) gives the upright photo's faces, mapped back,
with the same genders and ages; and the landmark plausibility rule on its own."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from faceflow.config import LimitSettings
from faceflow.domain import Face
from faceflow.imaging.ingest import decode_image
from faceflow.models.aligner import turn_points
from faceflow.models.registry import ModelSet
from faceflow.pipeline.analyze import AttributeModels, analyze_faces
from faceflow.pipeline.detect import plausibly_upright
from faceflow.pipeline.detect_options import DetectOptions
from tests.fixtures.models import photos_with_facts

BOX_TOLERANCE_PX = 3.0
AGE_TOLERANCE_YEARS = 2.0

Analyze = Callable[[bytes], tuple[Face, ...]]


def turned_png(rgb: NDArray[np.uint8], quarter_turns: int) -> bytes:
    """``rgb`` turned counter-clockwise, as a PNG with no EXIF at all.

    Stored uncompressed: zlib was most of each case's time, and the largest photo (2204×970)
    still fits the upload limit."""
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(np.rot90(rgb, quarter_turns))).save(
        out, "PNG", compress_level=0
    )
    return out.getvalue()


@pytest.fixture(scope="module")
def upright(
    analyze: Analyze, testdata: Path
) -> Callable[[str], tuple[NDArray[np.uint8], tuple[Face, ...]]]:
    """A test photo as displayed, and its faces, computed once per module."""
    found: dict[str, tuple[NDArray[np.uint8], tuple[Face, ...]]] = {}

    def run(photo: str) -> tuple[NDArray[np.uint8], tuple[Face, ...]]:
        if photo not in found:
            rgb = decode_image((testdata / photo).read_bytes(), LimitSettings()).rgb
            found[photo] = (rgb, analyze(turned_png(rgb, 0)))
        return found[photo]

    return run


@pytest.fixture(scope="module")
def analyze(model_set: ModelSet, attribute_models: AttributeModels) -> Analyze:
    def run(data: bytes) -> tuple[Face, ...]:
        image = decode_image(data, LimitSettings())
        return analyze_faces(
            image.rgb,
            model_set.detector,
            attribute_models,
            DetectOptions(),
            source_scale=image.scale,
        )

    return run


def box_in_turned_frame(face: Face, turns: int, width: int, height: int) -> NDArray[np.float64]:
    corners = np.array([[face.box.x1, face.box.y1], [face.box.x2, face.box.y2]], np.float64)
    turned = turn_points(corners, turns, width, height, edges=True)
    return np.concatenate([turned.min(axis=0), turned.max(axis=0)])


@pytest.mark.parametrize("turns", [1, 2, 3])
@pytest.mark.parametrize("photo", photos_with_facts(having="genders"))
def test_a_turned_photo_gives_the_upright_photos_faces(
    analyze: Analyze,
    upright: Callable[[str], tuple[NDArray[np.uint8], tuple[Face, ...]]],
    photo: str,
    turns: int,
) -> None:
    rgb, faces = upright(photo)
    height, width = rgb.shape[:2]

    turned = analyze(turned_png(rgb, turns))

    assert len(turned) == len(faces) >= 1
    for face in faces:
        expected = box_in_turned_frame(face, turns, width, height)
        match = min(turned, key=lambda t: float(np.abs(np.array(t.box.to_dict()) - expected).max()))
        np.testing.assert_allclose(match.box.to_dict(), expected, atol=BOX_TOLERANCE_PX)
        # np.rot90 turns counter-clockwise, so the face's roll goes the other way.
        roll = (match.roll - face.roll + 90 * turns + 180) % 360 - 180
        assert roll == pytest.approx(0.0, abs=5.0)
        assert match.gender is not None
        assert face.gender is not None
        assert match.gender.label == face.gender.label
        assert match.age is not None
        assert face.age is not None
        assert match.age.years == pytest.approx(face.age.years, abs=AGE_TOLERANCE_YEARS)


def marks(*points: tuple[float, float]) -> NDArray[np.float32]:
    return np.array(points, np.float32)


UPRIGHT = marks((80, 100), (120, 100), (100, 125), (85, 150), (115, 150))


@pytest.mark.parametrize(
    ("landmarks", "plausible"),
    [
        (UPRIGHT, True),
        (UPRIGHT + np.float32(500), True),  # anywhere in the image
        (marks((80, 100), (120, 110), (100, 130), (83, 150), (113, 158)), True),  # tilted a bit
        (marks((80, 100), (120, 100), (112, 125), (85, 150), (115, 150)), True),  # turned a bit
        (marks((80, 150), (120, 150), (100, 125), (85, 100), (115, 100)), False),  # eyes below
        (marks((80, 100), (120, 100), (150, 125), (85, 150), (115, 150)), False),  # nose outside
        (marks((100, 80), (100, 120), (75, 100), (50, 85), (50, 115)), False),  # on its side
        (marks((100, 80), (130, 140), (100, 125), (60, 120), (75, 150)), False),  # eye line 63°
    ],
)
def test_landmarks_are_plausible_only_for_an_upright_face(
    landmarks: NDArray[np.float32], plausible: bool
) -> None:
    assert plausibly_upright(landmarks) is plausible
