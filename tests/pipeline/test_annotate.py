"""annotate: boxes, landmarks and labels drawn where the faces are, and nowhere else."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from faceflow.config import LimitSettings
from faceflow.domain import AgeEstimate, Box, Face, Gender, GenderEstimate, Landmarks, Point
from faceflow.imaging.ingest import decode_image
from faceflow.models.registry import ModelSet
from faceflow.pipeline.analyze import AttributeModels, analyze_faces
from faceflow.pipeline.annotate import annotate, face_label
from faceflow.pipeline.detect_options import DetectOptions

LABEL_BACKGROUND_RGB = (0, 120, 50)


DEFAULT_BOX = Box(40, 40, 120, 120)


def face(
    *,
    box: Box = DEFAULT_BOX,
    score: float = 0.934,
    age_years: float | None = None,
    gender: Gender | None = None,
) -> Face:
    """A face with landmarks placed inside ``box`` like a frontal face's."""
    w, h = box.width_px, box.height_px

    def at(fx: float, fy: float) -> Point:
        return Point(box.x1 + fx * w, box.y1 + fy * h)

    return Face(
        box=box,
        score=score,
        landmarks=Landmarks(at(0.3, 0.4), at(0.7, 0.4), at(0.5, 0.6), at(0.35, 0.8), at(0.65, 0.8)),
        age=AgeEstimate(age_years, age_years - 5, age_years + 5) if age_years is not None else None,
        gender=GenderEstimate(gender, 0.9) if gender is not None else None,
    )


@pytest.mark.parametrize(
    ("subject", "label"),
    [
        (face(age_years=33.4, gender=Gender.FEMALE), "F 33"),
        (face(age_years=40.6, gender=Gender.MALE), "M 41"),
        (face(age_years=33.4), "33"),
        (face(gender=Gender.FEMALE), "F"),
        (face(score=0.934), "0.93"),
        (face(score=1.0), "1.00"),
    ],
)
def test_face_label(subject: Face, label: str) -> None:
    assert face_label(subject) == label


@pytest.fixture(scope="module")
def two_people(
    model_set: ModelSet, attribute_models: AttributeModels, testdata: Path
) -> tuple[NDArray[np.uint8], tuple[Face, ...]]:
    rgb = decode_image((testdata / "two_people.jpg").read_bytes(), LimitSettings()).rgb
    faces = analyze_faces(rgb, model_set.detector, attribute_models, DetectOptions())
    assert len(faces) == 2
    return rgb, faces


def near_faces_mask(shape: tuple[int, ...], faces: tuple[Face, ...]) -> NDArray[np.bool_]:
    """Pixels within half a box size of any box: where boxes, landmarks and labels may go."""
    mask = np.zeros(shape[:2], dtype=bool)
    for subject in faces:
        box = subject.box
        grow_x, grow_y = box.width_px / 2, box.height_px / 2
        y1, y2 = max(0, int(box.y1 - grow_y)), int(box.y2 + grow_y) + 1
        x1, x2 = max(0, int(box.x1 - grow_x)), int(box.x2 + grow_x) + 1
        mask[y1:y2, x1:x2] = True
    return mask


def test_annotated_image_keeps_the_input_size_and_leaves_the_input_untouched(
    two_people: tuple[NDArray[np.uint8], tuple[Face, ...]],
) -> None:
    rgb, faces = two_people
    before = rgb.copy()

    drawn = annotate(rgb, faces)

    assert drawn.shape == rgb.shape
    assert drawn.dtype == np.uint8
    assert np.array_equal(rgb, before)


def test_drawing_changes_every_box_and_nothing_far_from_the_faces(
    two_people: tuple[NDArray[np.uint8], tuple[Face, ...]],
) -> None:
    rgb, faces = two_people

    changed = np.any(annotate(rgb, faces) != rgb, axis=2)

    for subject in faces:
        box = subject.box
        inside = changed[int(box.y1) : int(box.y2) + 1, int(box.x1) : int(box.x2) + 1]
        # The outline alone is a few percent of the box; landmarks and the label add more.
        assert inside.mean() > 0.02
    assert not changed[~near_faces_mask(rgb.shape, faces)].any()


def test_no_faces_leave_the_image_unchanged(model_set: ModelSet, testdata: Path) -> None:
    rgb = decode_image((testdata / "coffee.jpg").read_bytes(), LimitSettings()).rgb

    assert np.array_equal(annotate(rgb, ()), rgb)


def test_source_coordinates_are_drawn_through_the_source_scale() -> None:
    grey = np.full((200, 200, 3), 128, dtype=np.uint8)
    subject = face(box=Box(100, 120, 300, 320))  # source pixels; the image is at half size

    changed = np.any(annotate(grey, [subject], source_scale=2.0) != grey, axis=2)

    rows, cols = np.nonzero(changed)
    # The box spans 50..150 × 60..160 here; the label sits above it, starting at its left edge.
    assert cols.min() == pytest.approx(50, abs=3)
    assert cols.max() == pytest.approx(150, abs=3)
    assert rows.max() == pytest.approx(160, abs=3)
    assert changed[110, 50]  # the box's left edge
    assert changed[110, 150]  # and its right edge
    assert not changed[110, 70]  # inside the box, away from the outline and the landmarks


def test_label_goes_inside_the_box_when_there_is_no_room_above() -> None:
    grey = np.full((200, 200, 3), 128, dtype=np.uint8)
    subject = face(box=Box(40, 0, 160, 120))

    drawn = annotate(grey, [subject])

    # The label's background shows in its padding above and below the text, inside the box.
    background = np.all(drawn == LABEL_BACKGROUND_RGB, axis=2)
    assert background[1:4, 42:75].all()
    assert background[17:19, 42:75].all()
