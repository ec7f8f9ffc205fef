"""u2netp: pre-processing as U²-Net does it, and a real portrait segmented."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faceflow.config import LimitSettings
from faceflow.imaging.ingest import decode_image
from faceflow.models.registry import ModelSet
from faceflow.models.segmenter import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    INPUT_SIZE_PX,
    U2NetpSegmenter,
    normalise_prediction,
    to_tensor,
)


@pytest.fixture(scope="module")
def segmenter(model_set: ModelSet) -> U2NetpSegmenter:
    """The session's u2netp, loaded once for every test that uses the models."""
    return model_set.segmenter


def test_to_tensor_divides_by_the_maximum_then_standardises() -> None:
    rgb = np.zeros((50, 70, 3), dtype=np.uint8)
    rgb[..., 0] = 200  # the maximum: red becomes 1.0 before standardising
    rgb[..., 1] = 100

    tensor = to_tensor(rgb)

    assert tensor.shape == (1, 3, INPUT_SIZE_PX, INPUT_SIZE_PX)
    assert tensor.dtype == np.float32
    expected = (np.array([1.0, 0.5, 0.0]) - IMAGENET_MEAN) / IMAGENET_STD
    assert tensor[0, :, 10, 10] == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([[2.0, 4.0], [6.0, 10.0]], [[0.0, 0.25], [0.5, 1.0]]),
        ([[0.3, 0.3], [0.3, 0.3]], [[0.0, 0.0], [0.0, 0.0]]),
    ],
)
def test_prediction_is_min_max_normalised(
    values: list[list[float]], expected: list[list[float]]
) -> None:
    out = normalise_prediction(np.array(values, dtype=np.float32))

    assert out.tolist() == pytest.approx(np.array(expected))


def test_portrait_alpha_has_the_crop_s_size_and_covers_the_person(
    segmenter: U2NetpSegmenter, testdata: Path
) -> None:
    rgb = decode_image((testdata / "portrait_2.jpg").read_bytes(), LimitSettings()).rgb
    crop = rgb[0:600, 0:500]

    alpha = segmenter.predict(crop)

    assert alpha.shape == (600, 500)
    assert alpha.dtype == np.float32
    assert float(alpha.min()) >= 0.0
    assert float(alpha.max()) <= 1.0
    assert alpha[300, 250] > 0.95  # her face
    assert alpha[20, 20] < 0.05  # the grey wall above her shoulder


def test_a_grey_image_is_refused(segmenter: U2NetpSegmenter) -> None:
    with pytest.raises(ValueError, match="RGB"):
        segmenter.predict(np.zeros((10, 10), dtype=np.uint8))
