"""The model catalog: every model declared once, found by name."""

from __future__ import annotations

import pytest

from faceflow.config import RuntimeOperation
from faceflow.errors import UnknownModel
from faceflow.models.catalog import (
    CATALOG,
    model_spec,
    model_versions,
    models_for,
    required_models,
)


def test_unknown_model_name_is_a_typed_error_naming_the_known_ones() -> None:
    with pytest.raises(UnknownModel, match="yunet"):
        model_spec("nope")


def test_catalog_names_are_unique_and_every_required_model_is_pinned() -> None:
    names = [spec.name for spec in CATALOG]
    assert len(names) == len(set(names))
    for spec in required_models():
        assert len(spec.sha256) == 64
        assert int(spec.sha256, 16) >= 0  # hex
        assert spec.carrier.requirement == f"{spec.carrier.package}=={spec.carrier.version}"


def test_model_versions_name_every_required_model_with_its_version_and_hash() -> None:
    versions = model_versions()

    for spec in required_models():
        assert f"{spec.name}@{spec.version}:{spec.sha256[:12]}" in versions
    assert all(spec.name not in versions for spec in CATALOG if spec.optional)


@pytest.mark.parametrize(
    ("operations", "names"),
    [
        (["detect"], ["yunet"]),
        (["analyze"], ["yunet", "dlib-5pt", "age-v1", "gender-v1"]),
        (["detect", "annotate"], ["yunet", "dlib-5pt", "age-v1", "gender-v1"]),
        (["id-photo"], ["yunet", "dlib-5pt", "u2netp"]),
        (
            ["detect", "analyze", "annotate", "id-photo"],
            ["yunet", "dlib-5pt", "age-v1", "gender-v1", "u2netp"],
        ),
    ],
)
def test_models_for_operations_are_the_ones_their_processes_load(
    operations: list[RuntimeOperation], names: list[str]
) -> None:
    assert [spec.name for spec in models_for(operations)] == names
