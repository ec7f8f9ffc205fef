"""Denormal weights zeroed on the wire: only they change, and the networks answer the same."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from faceflow.config import LimitSettings, ModelSettings
from faceflow.domain import Attribute
from faceflow.imaging.ingest import decode_image
from faceflow.models import protowire
from faceflow.models.age_gender import AgeModel, GenderModel, chips_to_tensor
from faceflow.models.catalog import ModelSpec
from faceflow.models.protowire import I32, LEN, VARINT, Field
from faceflow.models.registry import ModelSet
from faceflow.models.session import create_session
from faceflow.models.store import ModelStore
from faceflow.models.weights import without_denormal_weights
from faceflow.pipeline.analyze import AttributeModels, upright_chips
from faceflow.pipeline.detect import detect_faces
from faceflow.pipeline.detect_options import DetectOptions
from tests.fixtures.models import photos_with_facts

DENORMAL = float(np.finfo(np.float32).smallest_subnormal) * 3
SMALLEST_NORMAL = float(np.finfo(np.float32).tiny)
FLOAT, INT64 = 1, 7


def floats(*values: float) -> bytes:
    return np.array(values, dtype="<f4").tobytes()


def tensor(name: str, data_type: int, data: Field) -> Field:
    fields = [
        Field(1, VARINT, protowire.encode_varint(len(data.payload) // 4)),  # dims
        Field(2, VARINT, protowire.encode_varint(data_type)),
        Field(8, LEN, name.encode()),
        data,
    ]
    return Field(5, LEN, protowire.encode(fields))  # GraphProto.initializer


def model(*initializers: Field) -> bytes:
    graph = protowire.encode([Field(1, LEN, b"a node"), *initializers])
    return protowire.encode([Field(1, VARINT, b"\x08"), Field(7, LEN, graph)])


def initializer_data(model_bytes: bytes) -> dict[str, bytes]:
    (graph,) = [f.payload for f in protowire.parse(model_bytes) if f.number == 7]
    out = {}
    for field in protowire.parse(graph):
        if field.number == 5:
            parts = {f.number: f.payload for f in protowire.parse(field.payload)}
            out[parts[8].decode()] = parts.get(9, parts.get(4, b""))
    return out


def test_denormal_floats_become_zero_and_nothing_else_changes() -> None:
    original = model(
        tensor("raw", FLOAT, Field(9, LEN, floats(1.0, DENORMAL, -DENORMAL, 0.0, SMALLEST_NORMAL))),
        tensor("packed", FLOAT, Field(4, LEN, floats(-DENORMAL, 2.5))),
        tensor("one", FLOAT, Field(4, I32, floats(DENORMAL))),
        tensor("clean", FLOAT, Field(9, LEN, floats(0.5, -SMALLEST_NORMAL))),
        # The same bits in an integer tensor are not floats.
        tensor("integers", INT64, Field(9, LEN, floats(DENORMAL, DENORMAL))),
    )

    flushed = without_denormal_weights(original)

    before, after = initializer_data(original), initializer_data(flushed)
    assert after["raw"] == floats(1.0, 0.0, 0.0, 0.0, SMALLEST_NORMAL)
    assert after["packed"] == floats(0.0, 2.5)
    assert after["one"] == floats(0.0)
    for name in ("clean", "integers"):
        assert after[name] == before[name]
    assert len(flushed) == len(original)


def test_a_model_without_denormals_comes_back_as_the_same_bytes() -> None:
    clean = model(tensor("clean", FLOAT, Field(9, LEN, floats(1.0, -SMALLEST_NORMAL))))

    assert without_denormal_weights(clean) is clean


@pytest.mark.parametrize("spec", [AgeModel.spec, GenderModel.spec], ids=lambda s: s.name)
def test_the_cydral_networks_have_denormals_and_none_are_left(
    pulled_model_settings: ModelSettings, spec: ModelSpec
) -> None:
    shipped = ModelStore(pulled_model_settings).read_verified(spec)

    flushed = without_denormal_weights(shipped)

    assert flushed != shipped
    assert without_denormal_weights(flushed) is flushed


def test_both_networks_answer_bit_for_bit_as_shipped_on_the_test_photos(
    pulled_model_settings: ModelSettings,
    model_set: ModelSet,
    attribute_models: AttributeModels,
    testdata: Path,
) -> None:
    chips: dict[int, list[np.ndarray]] = {64: [], 32: []}
    for name in photos_with_facts():
        image = decode_image((testdata / name).read_bytes(), LimitSettings())
        faces = detect_faces(image.rgb, model_set.detector, DetectOptions())
        cut = upright_chips(
            image.rgb,
            [face.landmarks for face in faces],
            [face.roll for face in faces],
            attribute_models.aligner,
            (64, 32),
        )
        for size in chips:
            chips[size].append(cut[size])
    store = ModelStore(pulled_model_settings)
    for classifier, attribute in ((AgeModel, Attribute.AGE), (GenderModel, Attribute.GENDER)):
        batch = chips_to_tensor(np.concatenate(chips[classifier.chip_px]))
        assert len(batch) >= 10, attribute
        shipped = create_session("shipped", store.read_verified(classifier.spec), ModelSettings())
        loaded = classifier.load(store, ModelSettings())
        assert np.array_equal(run(loaded._session, batch), run(shipped, batch)), attribute


def run(session: ort.InferenceSession, batch: np.ndarray) -> np.ndarray:
    return np.asarray(session.run(None, {session.get_inputs()[0].name: batch})[0])
