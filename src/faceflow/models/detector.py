"""YuNet face detector on onnxruntime, with its output decoder written in numpy.

The 2023mar graph takes a 1×3×H×W BGR float tensor (raw 0–255 values, no normalisation) and
returns, for each of the strides 8, 16 and 32, per-anchor class and objectness scores, box offsets
and five landmark offsets relative to the anchor's grid cell. Decoding them in numpy is about twice
as fast as OpenCV's ``FaceDetectorYN``.

The published graph declares its input as 640×640, but every operation in it is size-agnostic
(convolutions, scale-2 resizes, reshapes to ``[1, -1, k]``), so the verified bytes are loaded with
the height and width made symbolic: a 640×427 photo then runs on 640×448 instead of being padded
to 640×640, which saves a third of the detector's time.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from faceflow.config import ModelSettings
from faceflow.imaging.colour import rgb_into_bgr_planes
from faceflow.models import protowire
from faceflow.models.catalog import ModelSpec, model_spec
from faceflow.models.session import create_session
from faceflow.models.store import ModelStore

if TYPE_CHECKING:
    import onnxruntime as ort

INPUT_SIZE_PX = 640
"""The long side images are scaled to before detection."""
STRIDES = (8, 16, 32)
MAX_CANDIDATES = 5000
_GRID_PX = 32  # the largest stride: input sides must be multiples of it

FloatArray = NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class RawDetections:
    """Detections in the detector's input pixels, best first.

    ``boxes``: (N, 4) x1, y1, x2, y2; ``scores``: (N,); ``landmarks``: (N, 5, 2) in YuNet's order
    (right eye, left eye, nose tip, right mouth corner, left mouth corner).
    """

    boxes: FloatArray
    scores: FloatArray
    landmarks: FloatArray

    def __len__(self) -> int:
        return int(self.scores.shape[0])


def decode(
    outputs: dict[str, FloatArray], score_threshold: float, input_width_px: int = INPUT_SIZE_PX
) -> RawDetections:
    """Turn YuNet's per-stride outputs into boxes, scores and landmarks above the threshold.

    For anchor ``i`` of stride ``s`` on a grid ``input_width_px / s`` cells wide, the cell is
    ``(col, row) = (i % cols, i // cols)``; the box centre is ``(col + dx, row + dy) · s``, its size
    ``exp(dw, dh) · s``, each landmark ``(col + lx, row + ly) · s``, and the score is
    ``sqrt(cls · obj)``.
    """
    boxes: list[FloatArray] = []
    scores: list[FloatArray] = []
    marks: list[FloatArray] = []
    for stride in STRIDES:
        cols = input_width_px // stride
        cls = np.clip(outputs[f"cls_{stride}"].reshape(-1), 0.0, 1.0)
        obj = np.clip(outputs[f"obj_{stride}"].reshape(-1), 0.0, 1.0)
        score = np.sqrt(cls * obj)
        keep = np.flatnonzero(score >= score_threshold)
        if keep.size == 0:
            continue
        grid = np.stack([keep % cols, keep // cols], axis=1).astype(np.float32)
        bbox = outputs[f"bbox_{stride}"].reshape(-1, 4)[keep]
        centre = (grid + bbox[:, :2]) * stride
        size = np.exp(bbox[:, 2:]) * stride
        boxes.append(np.concatenate([centre - size / 2, centre + size / 2], axis=1))
        kps = outputs[f"kps_{stride}"].reshape(-1, 5, 2)[keep]
        marks.append((kps + grid[:, None, :]) * stride)
        scores.append(score[keep])
    if not scores:
        return RawDetections(
            np.zeros((0, 4), np.float32),
            np.zeros((0,), np.float32),
            np.zeros((0, 5, 2), np.float32),
        )
    all_scores = np.concatenate(scores).astype(np.float32)
    # The best candidates only, as OpenCV's FaceDetectorYN keeps (its top_k): suppression
    # compares each kept box with the rest, and a 640 px input has 8,400 anchors.
    top = (
        np.argpartition(-all_scores, MAX_CANDIDATES)[:MAX_CANDIDATES]
        if len(all_scores) > MAX_CANDIDATES
        else slice(None)
    )
    return RawDetections(
        np.concatenate(boxes).astype(np.float32)[top],
        all_scores[top],
        np.concatenate(marks).astype(np.float32)[top],
    )


# ONNX's protobuf field numbers (onnx/onnx.proto) on the path to the shapes edited below.
_MODEL_GRAPH = 7
_GRAPH_INPUT, _GRAPH_OUTPUT, _GRAPH_VALUE_INFO = 11, 12, 13
_VALUE_NAME, _VALUE_TYPE = 1, 2
_TYPE_TENSOR = 1
_TENSOR_SHAPE = 2
_SHAPE_DIM = 1
_DIM_VALUE, _DIM_PARAM = 1, 2


def with_symbolic_input_size(model: bytes) -> bytes:
    """The ONNX graph with its input height/width (and the outputs' anchor counts) made symbolic.

    Only shape declarations change; weights and operations are untouched. Edited on the wire
    (:mod:`faceflow.models.protowire`), not with the ``onnx`` package, which would cost every
    inference process over a second of CPU to import for this one edit.
    """
    fields = protowire.parse(model)
    return protowire.encode(
        protowire.Field(f.number, f.wire_type, _symbolic_graph(f.payload))
        if f.number == _MODEL_GRAPH and f.wire_type == protowire.LEN
        else f
        for f in fields
    )


def _symbolic_graph(graph: bytes) -> bytes:
    edited: list[protowire.Field] = []
    inputs_seen = 0
    for field in protowire.parse(graph):
        if field.number == _GRAPH_VALUE_INFO:
            # Declared intermediate shapes were inferred for 640×640; onnxruntime infers them
            # again.
            continue
        if field.number == _GRAPH_INPUT:
            inputs_seen += 1
            if inputs_seen == 1:
                field = field._replace(
                    payload=_symbolic_dims(field.payload, {2: "height", 3: "width"})
                )
        elif field.number == _GRAPH_OUTPUT:
            name = _value_name(field.payload)
            field = field._replace(payload=_symbolic_dims(field.payload, {1: f"anchors_{name}"}))
        edited.append(field)
    return protowire.encode(edited)


def _value_name(value_info: bytes) -> str:
    for field in protowire.parse(value_info):
        if field.number == _VALUE_NAME:
            return field.payload.decode()
    raise ValueError("graph output without a name")


def _symbolic_dims(value_info: bytes, names: dict[int, str]) -> bytes:
    """A ValueInfoProto whose tensor dimensions at the given axes are named, not fixed."""

    def shape(message: bytes) -> bytes:
        fields = protowire.parse(message)
        dims = [index for index, field in enumerate(fields) if field.number == _SHAPE_DIM]
        for axis, name in names.items():
            index = dims[axis]
            kept = [
                f
                for f in protowire.parse(fields[index].payload)
                if f.number not in (_DIM_VALUE, _DIM_PARAM)
            ]
            # dim_value and dim_param are one oneof; fields stay in number order, as protobuf
            # writes them.
            dim = sorted([protowire.text(_DIM_PARAM, name), *kept], key=lambda f: f.number)
            fields[index] = fields[index]._replace(payload=protowire.encode(dim))
        return protowire.encode(fields)

    tensor = functools.partial(_edit, number=_TENSOR_SHAPE, change=shape)
    value_type = functools.partial(_edit, number=_TYPE_TENSOR, change=tensor)
    return _edit(value_info, _VALUE_TYPE, value_type)


def _edit(message: bytes, number: int, change: Callable[[bytes], bytes]) -> bytes:
    """``message`` with its length-delimited field ``number`` replaced by ``change(payload)``."""
    found = False
    fields: list[protowire.Field] = []
    for field in protowire.parse(message):
        if field.number == number and field.wire_type == protowire.LEN:
            found = True
            field = field._replace(payload=change(field.payload))
        fields.append(field)
    if not found:
        raise ValueError(f"ONNX message has no field {number} where a shape was expected")
    return protowire.encode(fields)


def nms(boxes: FloatArray, scores: FloatArray, iou_threshold: float) -> NDArray[np.intp]:
    """Greedy non-maximum suppression; indices of the kept boxes, highest score first."""
    order = np.argsort(-scores, kind="stable")
    areas = np.maximum(0.0, boxes[:, 2] - boxes[:, 0]) * np.maximum(0.0, boxes[:, 3] - boxes[:, 1])
    kept: list[int] = []
    while order.size:
        best = int(order[0])
        kept.append(best)
        rest = order[1:]
        x1 = np.maximum(boxes[best, 0], boxes[rest, 0])
        y1 = np.maximum(boxes[best, 1], boxes[rest, 1])
        x2 = np.minimum(boxes[best, 2], boxes[rest, 2])
        y2 = np.minimum(boxes[best, 3], boxes[rest, 3])
        inter = np.maximum(0.0, x2 - x1) * np.maximum(0.0, y2 - y1)
        union = areas[best] + areas[rest] - inter
        iou = np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)
        order = rest[iou <= iou_threshold]
    return np.asarray(kept, dtype=np.intp)


class YuNetDetector:
    """Finds faces in an RGB image whose long side is at most 640 px."""

    spec: ModelSpec = model_spec("yunet")

    def __init__(self, session: ort.InferenceSession) -> None:
        self._session = session
        self._input_name = session.get_inputs()[0].name
        self._output_names = [o.name for o in session.get_outputs()]

    @classmethod
    def load(cls, store: ModelStore, settings: ModelSettings) -> YuNetDetector:
        graph = with_symbolic_input_size(store.read_verified(cls.spec))
        return cls(create_session(cls.spec.name, graph, settings))

    def detect(
        self, rgb: NDArray[np.uint8], score_threshold: float, nms_threshold: float
    ) -> RawDetections:
        """Detections in ``rgb``'s own pixel coordinates, after NMS, best first.

        ``rgb`` may be a view (turned with ``np.rot90``, a tile): the model's BGR input planes
        are written from it in one pass (:func:`input_tensor`).
        """
        return self.detect_tensor(input_tensor(rgb), score_threshold, nms_threshold)

    def detect_tensor(
        self, tensor: FloatArray, score_threshold: float, nms_threshold: float
    ) -> RawDetections:
        """Detections in a ``1 × 3 × H × W`` BGR input whose sides are multiples of 32."""
        values = self._session.run(self._output_names, {self._input_name: tensor})
        outputs = {
            name: np.asarray(v, dtype=np.float32)
            for name, v in zip(self._output_names, values, strict=True)
        }
        found = decode(outputs, score_threshold, tensor.shape[3])
        keep = nms(found.boxes, found.scores, nms_threshold)
        return RawDetections(found.boxes[keep], found.scores[keep], found.landmarks[keep])


def input_tensor(rgb: NDArray[np.uint8]) -> FloatArray:
    """YuNet's ``1 × 3 × H × W`` float BGR input for ``rgb``, zero-padded bottom/right up to the
    grid (so coordinates need no shift)."""
    height, width = rgb.shape[:2]
    if max(height, width) > INPUT_SIZE_PX:
        raise ValueError(f"detector input must fit {INPUT_SIZE_PX} px, got {width}×{height}")
    padded_h = -(-height // _GRID_PX) * _GRID_PX
    padded_w = -(-width // _GRID_PX) * _GRID_PX
    tensor = np.zeros((1, 3, padded_h, padded_w), dtype=np.float32)
    rgb_into_bgr_planes(rgb, tensor[0])
    return tensor
