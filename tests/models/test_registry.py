"""The registry of model classes and the set of loaded models."""

from __future__ import annotations

from pathlib import Path

import pytest

from faceflow.config import ModelSettings
from faceflow.errors import ModelChecksumMismatch, ModelMissing, UnknownModel
from faceflow.models.age_gender import AgeModel, GenderModel
from faceflow.models.aligner import FaceAligner
from faceflow.models.catalog import model_spec
from faceflow.models.detector import YuNetDetector
from faceflow.models.registry import MODEL_CLASSES, LoadedModel, ModelSet, model_class
from tests.fixtures.models import flip_a_byte


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("yunet", YuNetDetector),
        ("dlib-5pt", FaceAligner),
        ("age-v1", AgeModel),
        ("gender-v1", GenderModel),
    ],
)
def test_model_class_finds_the_class_declared_for_a_name(name: str, cls: type[LoadedModel]) -> None:
    assert model_class(name) is cls
    assert cls.spec is model_spec(name)


@pytest.mark.parametrize("name", ["nope", "YUNET", ""])
def test_unknown_model_class_is_a_typed_error_naming_the_known_ones(name: str) -> None:
    with pytest.raises(UnknownModel, match="yunet"):
        model_class(name)


def test_every_registered_class_runs_a_catalogued_model() -> None:
    for name, cls in MODEL_CLASSES.items():
        assert cls.spec is model_spec(name)


@pytest.mark.parametrize("name", ["yunet", "dlib-5pt", "age-v1", "gender-v1"])
def test_model_set_refuses_to_load_a_tampered_model(model_store_copy: Path, name: str) -> None:
    flip_a_byte(model_store_copy / model_spec(name).filename)

    with pytest.raises(ModelChecksumMismatch, match=name):
        ModelSet.load(ModelSettings(dir=model_store_copy))


def test_model_set_refuses_to_load_from_an_empty_store(tmp_path: Path) -> None:
    with pytest.raises(ModelMissing, match="faceflow models pull"):
        ModelSet.load(ModelSettings(dir=tmp_path))
