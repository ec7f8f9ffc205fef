"""analyze on real photos: genders and ages against faces.json, one batched call per model,
and only the attributes asked for."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from faceflow.config import LimitSettings
from faceflow.domain import Attribute, Face
from faceflow.imaging.ingest import decode_image
from faceflow.models.registry import ModelSet
from faceflow.pipeline.analyze import AttributeModels, analyze_faces, enrich_faces
from faceflow.pipeline.detect import DetectOptions, detect_faces
from tests.fixtures.models import PhotoFacts, left_to_right, photos_with_facts

AGE_TOLERANCE_YEARS = 12

Analyzed = Callable[[str], tuple[Face, ...]]


def decoded(path: Path) -> NDArray[np.uint8]:
    return decode_image(path.read_bytes(), LimitSettings()).rgb


@pytest.fixture(scope="module")
def analyzed(model_set: ModelSet, attribute_models: AttributeModels, testdata: Path) -> Analyzed:
    """Every face of a test photo with age and gender, computed once per module."""
    found: dict[str, tuple[Face, ...]] = {}

    def run(photo: str) -> tuple[Face, ...]:
        if photo not in found:
            found[photo] = analyze_faces(
                decoded(testdata / photo),
                model_set.detector,
                attribute_models,
                DetectOptions(),
            )
        return found[photo]

    return run


@pytest.mark.parametrize("photo", photos_with_facts(having="genders"))
def test_genders_match_the_facts_left_to_right(
    analyzed: Analyzed, photo_facts: dict[str, PhotoFacts], photo: str
) -> None:
    faces = left_to_right(analyzed(photo))

    genders = [face.gender.label if face.gender else None for face in faces]
    assert genders == list(photo_facts[photo].genders)


@pytest.mark.parametrize("photo", photos_with_facts(having="ages"))
def test_ages_are_within_tolerance_of_the_facts_left_to_right(
    analyzed: Analyzed, photo_facts: dict[str, PhotoFacts], photo: str
) -> None:
    faces = left_to_right(analyzed(photo))
    expected = photo_facts[photo].ages
    assert len(faces) == len(expected)

    for face, years in zip(faces, expected, strict=True):
        assert face.age is not None
        assert face.age.years == pytest.approx(years, abs=AGE_TOLERANCE_YEARS)
        assert face.age.low <= face.age.years <= face.age.high


@pytest.mark.parametrize("photo", photos_with_facts())
def test_every_face_gets_both_attributes_by_default(analyzed: Analyzed, photo: str) -> None:
    for face in analyzed(photo):
        assert face.age is not None
        assert face.gender is not None
        assert 0.5 <= face.gender.probability <= 1.0


class CountingSession:
    """Wraps an ONNX session and records the batch size of every ``run``."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self.batch_sizes: list[int] = []

    def run(self, output_names: list[str], feeds: dict[str, NDArray[np.float32]]) -> Any:
        [batch] = feeds.values()
        self.batch_sizes.append(int(batch.shape[0]))
        return self._session.run(output_names, feeds)


@pytest.fixture
def counted_sessions(
    model_set: ModelSet, monkeypatch: pytest.MonkeyPatch
) -> tuple[CountingSession, CountingSession]:
    """The age and gender models' sessions, wrapped to count calls for one test."""
    age = CountingSession(model_set.age._session)
    gender = CountingSession(model_set.gender._session)
    monkeypatch.setattr(model_set.age, "_session", age)
    monkeypatch.setattr(model_set.gender, "_session", gender)
    return age, gender


def test_all_faces_of_an_image_go_through_each_model_in_one_call(
    model_set: ModelSet,
    attribute_models: AttributeModels,
    testdata: Path,
    counted_sessions: tuple[CountingSession, CountingSession],
) -> None:
    age, gender = counted_sessions

    faces = analyze_faces(
        decoded(testdata / "two_people.jpg"),
        model_set.detector,
        attribute_models,
        DetectOptions(),
    )

    assert len(faces) == 2
    assert age.batch_sizes == [2]
    assert gender.batch_sizes == [2]


@pytest.mark.parametrize(
    ("attributes", "has_age", "has_gender"),
    [
        ((Attribute.AGE,), True, False),
        ((Attribute.GENDER,), False, True),
        ((Attribute.AGE, Attribute.GENDER), True, True),
        ((), False, False),
    ],
)
def test_only_the_selected_attributes_are_computed(
    model_set: ModelSet,
    attribute_models: AttributeModels,
    testdata: Path,
    counted_sessions: tuple[CountingSession, CountingSession],
    attributes: tuple[Attribute, ...],
    has_age: bool,
    has_gender: bool,
) -> None:
    age_session, gender_session = counted_sessions

    faces = analyze_faces(
        decoded(testdata / "two_people.jpg"),
        model_set.detector,
        attribute_models,
        DetectOptions(),
        attributes,
    )

    assert len(faces) == 2
    assert all((face.age is not None) == has_age for face in faces)
    assert all((face.gender is not None) == has_gender for face in faces)
    assert len(age_session.batch_sizes) == int(has_age)
    assert len(gender_session.batch_sizes) == int(has_gender)


def test_no_faces_means_no_model_calls(
    model_set: ModelSet,
    attribute_models: AttributeModels,
    testdata: Path,
    counted_sessions: tuple[CountingSession, CountingSession],
) -> None:
    age, gender = counted_sessions

    faces = analyze_faces(
        decoded(testdata / "coffee.jpg"),
        model_set.detector,
        attribute_models,
        DetectOptions(),
    )

    assert faces == ()
    assert age.batch_sizes == gender.batch_sizes == []


def test_enrich_keeps_boxes_and_reads_landmarks_through_the_source_scale(
    model_set: ModelSet, attribute_models: AttributeModels, testdata: Path, analyzed: Analyzed
) -> None:
    full = decoded(testdata / "obama.jpg")
    half = np.ascontiguousarray(full[::2, ::2])
    faces = detect_faces(full, model_set.detector, DetectOptions())

    from_half = enrich_faces(half, faces, attribute_models, (Attribute.AGE,), source_scale=2.0)
    from_full = analyzed("obama.jpg")

    assert [face.box for face in from_half] == [face.box for face in faces]
    assert from_half[0].age is not None
    assert from_full[0].age is not None
    # Same face, half the pixels: chips are cut at a similar size, so the age barely moves.
    assert from_half[0].age.years == pytest.approx(from_full[0].age.years, abs=8)
