"""YuNet's numpy decoder and NMS, on small synthetic tensors with known answers; the graph's
input-size edit on the real model."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest

from faceflow.config import ModelSettings
from faceflow.models.detector import (
    INPUT_SIZE_PX,
    MAX_CANDIDATES,
    STRIDES,
    FloatArray,
    YuNetDetector,
    decode,
    input_tensor,
    nms,
    with_symbolic_input_size,
)
from faceflow.models.registry import ModelSet
from faceflow.models.store import ModelStore


def blank_outputs(input_size_px: int = INPUT_SIZE_PX) -> dict[str, FloatArray]:
    """YuNet's outputs with every score zero, shaped like the real graph's (1, anchors, k)."""
    outputs: dict[str, FloatArray] = {}
    for stride in STRIDES:
        anchors = (input_size_px // stride) ** 2
        outputs[f"cls_{stride}"] = np.zeros((1, anchors, 1), np.float32)
        outputs[f"obj_{stride}"] = np.zeros((1, anchors, 1), np.float32)
        outputs[f"bbox_{stride}"] = np.zeros((1, anchors, 4), np.float32)
        outputs[f"kps_{stride}"] = np.zeros((1, anchors, 10), np.float32)
    return outputs


def place_anchor(
    outputs: dict[str, FloatArray],
    stride: int,
    col: int,
    row: int,
    *,
    cls: float,
    obj: float,
    bbox: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0),
    kps: tuple[float, ...] = (0.0,) * 10,
    input_size_px: int = INPUT_SIZE_PX,
) -> None:
    index = row * (input_size_px // stride) + col
    outputs[f"cls_{stride}"][0, index, 0] = cls
    outputs[f"obj_{stride}"][0, index, 0] = obj
    outputs[f"bbox_{stride}"][0, index] = bbox
    outputs[f"kps_{stride}"][0, index] = kps


def test_all_zero_scores_decode_to_no_detections() -> None:
    found = decode(blank_outputs(), score_threshold=0.5)

    assert len(found) == 0
    assert found.boxes.shape == (0, 4)
    assert found.landmarks.shape == (0, 5, 2)


@pytest.mark.parametrize("stride", STRIDES)
def test_one_anchor_decodes_to_its_cell_geometry(stride: int) -> None:
    outputs = blank_outputs()
    col, row = 7, 3
    dx, dy, dw, dh = 0.5, 0.25, math.log(2.0), math.log(0.5)
    kps = (0.1, 0.2, 0.9, 0.2, 0.5, 0.5, 0.2, 0.8, 0.8, 0.8)
    place_anchor(outputs, stride, col, row, cls=0.64, obj=0.81, bbox=(dx, dy, dw, dh), kps=kps)

    found = decode(outputs, score_threshold=0.5)

    assert len(found) == 1
    centre_x, centre_y = (col + dx) * stride, (row + dy) * stride
    width, height = 2.0 * stride, 0.5 * stride
    np.testing.assert_allclose(
        found.boxes[0],
        [centre_x - width / 2, centre_y - height / 2, centre_x + width / 2, centre_y + height / 2],
        rtol=1e-5,
    )
    expected_marks = [
        ((col + kps[2 * i]) * stride, (row + kps[2 * i + 1]) * stride) for i in range(5)
    ]
    np.testing.assert_allclose(found.landmarks[0], expected_marks, rtol=1e-5)
    assert found.scores[0] == pytest.approx(math.sqrt(0.64 * 0.81))


@pytest.mark.parametrize(
    ("cls", "obj", "expected_score"),
    [
        (0.64, 0.81, 0.72),
        (1.0, 0.49, 0.7),
        (0.25, 1.0, 0.5),
        # Scores outside 0..1 are clipped before they are combined.
        (1.7, 0.36, 0.6),
        (-0.3, 0.9, 0.0),
    ],
)
def test_score_is_the_geometric_mean_of_clipped_class_and_objectness(
    cls: float, obj: float, expected_score: float
) -> None:
    outputs = blank_outputs()
    place_anchor(outputs, 32, 2, 2, cls=cls, obj=obj)

    found = decode(outputs, score_threshold=0.0)

    # With threshold 0 every anchor is kept; the placed one is the only non-zero score.
    assert float(found.scores.max()) == pytest.approx(expected_score, abs=1e-6)


def test_only_the_best_candidates_go_on_to_suppression() -> None:
    outputs = blank_outputs()  # 8,400 anchors at 640 px, every one kept at threshold 0
    place_anchor(outputs, 32, 2, 2, cls=0.9, obj=0.9)

    found = decode(outputs, score_threshold=0.0)

    assert len(found.scores) == MAX_CANDIDATES
    assert float(found.scores.max()) == pytest.approx(0.9)
    assert found.boxes.shape == (MAX_CANDIDATES, 4)
    assert found.landmarks.shape == (MAX_CANDIDATES, 5, 2)


@pytest.mark.parametrize(("threshold", "kept"), [(0.71, 1), (0.72, 1), (0.73, 0)])
def test_threshold_keeps_scores_at_or_above_it(threshold: float, kept: int) -> None:
    outputs = blank_outputs()
    place_anchor(outputs, 16, 1, 1, cls=0.64, obj=0.81)  # score 0.72

    assert len(decode(outputs, score_threshold=threshold)) == kept


def test_anchors_of_every_stride_are_decoded_with_their_own_stride() -> None:
    outputs = blank_outputs()
    for stride in STRIDES:
        place_anchor(outputs, stride, 5, 4, cls=0.9, obj=0.9)

    found = decode(outputs, score_threshold=0.5)

    centres = (found.boxes[:, :2] + found.boxes[:, 2:]) / 2
    np.testing.assert_allclose(centres, [(5 * s, 4 * s) for s in STRIDES], rtol=1e-6)
    np.testing.assert_allclose(found.boxes[:, 2] - found.boxes[:, 0], STRIDES, rtol=1e-6)


def test_grid_width_follows_the_input_size() -> None:
    input_size_px = 320
    outputs = blank_outputs(input_size_px)
    # Cell (3, 2) of the 20-cell-wide stride-16 grid is anchor 43; on a 640 grid it would be (3, 1).
    place_anchor(outputs, 16, 3, 2, cls=0.9, obj=0.9, input_size_px=input_size_px)

    found = decode(outputs, score_threshold=0.5, input_width_px=input_size_px)

    centre = (found.boxes[0, :2] + found.boxes[0, 2:]) / 2
    np.testing.assert_allclose(centre, [3 * 16, 2 * 16], rtol=1e-6)


def boxes(*rows: tuple[float, float, float, float]) -> FloatArray:
    return np.array(rows, dtype=np.float32)


def scores(*values: float) -> FloatArray:
    return np.array(values, dtype=np.float32)


@pytest.mark.parametrize(
    ("box_rows", "score_values", "expected"),
    [
        pytest.param([], [], [], id="nothing"),
        pytest.param([(0, 0, 10, 10)], [0.5], [0], id="single"),
        # Overlap 9×9 / (100 + 100 − 81) ≈ 0.68 > 0.3: only the better one stays.
        pytest.param([(0, 0, 10, 10), (1, 1, 11, 11)], [0.6, 0.9], [1], id="overlap-keeps-best"),
        pytest.param(
            [(0, 0, 10, 10), (50, 50, 60, 60)], [0.6, 0.9], [1, 0], id="disjoint-by-score"
        ),
        # Overlap 5×10 / (100 + 100 − 50) = 1/3 > 0.3: suppressed.
        pytest.param([(0, 0, 10, 10), (5, 0, 15, 10)], [0.9, 0.8], [0], id="iou-one-third"),
        # Overlap 2×10 / (100 + 100 − 20) ≈ 0.11 ≤ 0.3: both kept, best first.
        pytest.param([(0, 0, 10, 10), (8, 0, 18, 10)], [0.8, 0.9], [1, 0], id="slight-overlap"),
        # A chain: 1 suppresses 0 and 2 (both overlap it); 3 is far away.
        pytest.param(
            [(0, 0, 10, 10), (1, 0, 11, 10), (2, 0, 12, 10), (100, 100, 110, 110)],
            [0.7, 0.95, 0.8, 0.75],
            [1, 3],
            id="cluster-and-loner",
        ),
    ],
)
def test_nms_keeps_the_best_of_each_overlapping_group_in_score_order(
    box_rows: list[tuple[float, float, float, float]],
    score_values: list[float],
    expected: list[int],
) -> None:
    kept = nms(boxes(*box_rows).reshape(-1, 4), scores(*score_values), iou_threshold=0.3)

    assert kept.tolist() == expected


def test_nms_threshold_decides_which_overlap_is_too_much() -> None:
    overlapping = boxes((0, 0, 10, 10), (5, 0, 15, 10))  # IoU exactly 1/3

    assert nms(overlapping, scores(0.9, 0.8), iou_threshold=0.5).tolist() == [0, 1]
    assert nms(overlapping, scores(0.9, 0.8), iou_threshold=0.25).tolist() == [0]


# The rewritten graph's sha256, checked equal (byte for byte) to what the onnx package's own
# edit produced (onnx 1.23: load, clear dim_value, set dim_param, drop value_info, serialise)
# when the wire-level edit replaced it.
SYMBOLIC_YUNET_SHA256 = "65443783acc01baa71e8d172e0f8270de261f609495d0249c9cd4fe4290d2367"


def test_symbolic_input_size_edit_gives_the_known_graph(
    pulled_model_settings: ModelSettings,
) -> None:
    verified = ModelStore(pulled_model_settings).read_verified(YuNetDetector.spec)

    assert hashlib.sha256(with_symbolic_input_size(verified)).hexdigest() == SYMBOLIC_YUNET_SHA256


@pytest.mark.parametrize(("height", "width"), [(448, 640), (640, 480), (96, 128)])
def test_detector_runs_at_its_input_aspect_ratio(
    model_set: ModelSet, height: int, width: int
) -> None:
    found = model_set.detector.detect(np.full((height, width, 3), 128, np.uint8), 0.6, 0.3)

    assert len(found) == 0


def test_the_input_is_the_bgr_planes_of_an_rgb_image_padded_with_zeros_to_the_grid() -> None:
    rgb = np.random.default_rng(7).integers(0, 256, (50, 70, 3), dtype=np.uint8)

    tensor = input_tensor(rgb)

    assert tensor.shape == (1, 3, 64, 96)
    assert tensor.dtype == np.float32
    np.testing.assert_array_equal(tensor[0, :, :50, :70], rgb[:, :, ::-1].transpose(2, 0, 1))
    assert not tensor[0, :, 50:, :].any()
    assert not tensor[0, :, :, 70:].any()


def test_an_input_larger_than_the_detector_takes_is_refused() -> None:
    with pytest.raises(ValueError, match="640"):
        input_tensor(np.zeros((641, 10, 3), np.uint8))
