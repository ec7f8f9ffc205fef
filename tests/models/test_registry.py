"""The set of loaded models: verified before use."""

from __future__ import annotations

from pathlib import Path

import pytest

from faceflow.config import ModelSettings
from faceflow.errors import ModelChecksumMismatch, ModelMissing
from faceflow.models.catalog import model_spec
from faceflow.models.registry import ModelSet
from tests.fixtures.models import flip_a_byte


@pytest.mark.parametrize("name", ["yunet", "dlib-5pt", "age-v1", "gender-v1"])
def test_model_set_refuses_to_load_a_tampered_model(model_store_copy: Path, name: str) -> None:
    flip_a_byte(model_store_copy / model_spec(name).filename)

    with pytest.raises(ModelChecksumMismatch, match=name):
        ModelSet.load(ModelSettings(dir=model_store_copy))


def test_model_set_refuses_to_load_from_an_empty_store(tmp_path: Path) -> None:
    with pytest.raises(ModelMissing, match="faceflow models pull"):
        ModelSet.load(ModelSettings(dir=tmp_path))
