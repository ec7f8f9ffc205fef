"""YuNet face detector on onnxruntime, with its output decoder written in numpy.

The 2023mar graph takes a fixed 1×3×640×640 BGR float tensor (raw 0–255 values, no
normalisation) and returns, for each of the strides 8, 16 and 32, per-anchor class and objectness
scores, box offsets and five landmark offsets relative to the anchor's grid cell. Decoding them in
numpy is about twice as fast as OpenCV's ``FaceDetectorYN`` and keeps untrusted bytes away from
OpenCV's decoders.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from faceflow.config import ModelSettings
from faceflow.models.catalog import ModelSpec, model_spec
from faceflow.models.session import create_session
from faceflow.models.store import ModelStore

INPUT_SIZE_PX = 640
STRIDES = (8, 16, 32)

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
    outputs: dict[str, FloatArray], score_threshold: float, input_size_px: int = INPUT_SIZE_PX
) -> RawDetections:
    """Turn YuNet's per-stride outputs into boxes, scores and landmarks above the threshold.

    For anchor ``i`` of stride ``s`` on a grid ``input_size_px / s`` cells wide, the cell is
    ``(col, row) = (i % cols, i // cols)``; the box centre is ``(col + dx, row + dy) · s``, its size
    ``exp(dw, dh) · s``, each landmark ``(col + lx, row + ly) · s``, and the score is
    ``sqrt(cls · obj)``.
    """
    boxes: list[FloatArray] = []
    scores: list[FloatArray] = []
    marks: list[FloatArray] = []
    for stride in STRIDES:
        cols = input_size_px // stride
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
    return RawDetections(
        np.concatenate(boxes).astype(np.float32),
        np.concatenate(scores).astype(np.float32),
        np.concatenate(marks).astype(np.float32),
    )


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
    """Finds faces in a BGR image whose long side is at most 640 px."""

    spec: ModelSpec = model_spec("yunet")

    def __init__(self, session: ort.InferenceSession) -> None:
        self._session = session
        self._input_name = session.get_inputs()[0].name
        self._output_names = [o.name for o in session.get_outputs()]

    @classmethod
    def load(cls, store: ModelStore, settings: ModelSettings) -> YuNetDetector:
        return cls(create_session(cls.spec.name, store.read_verified(cls.spec), settings))

    def detect(
        self, bgr: NDArray[np.uint8], score_threshold: float, nms_threshold: float
    ) -> RawDetections:
        """Detections in ``bgr``'s own pixel coordinates, after NMS, best first."""
        height, width = bgr.shape[:2]
        if max(height, width) > INPUT_SIZE_PX:
            raise ValueError(f"detector input must fit {INPUT_SIZE_PX} px, got {width}×{height}")
        # The graph's input is fixed at 640×640: pad bottom/right so coordinates need no shift.
        canvas = np.zeros((INPUT_SIZE_PX, INPUT_SIZE_PX, 3), dtype=np.float32)
        canvas[:height, :width] = bgr
        tensor = np.ascontiguousarray(canvas.transpose(2, 0, 1)[None])
        values = self._session.run(self._output_names, {self._input_name: tensor})
        outputs = {
            name: np.asarray(v, dtype=np.float32)
            for name, v in zip(self._output_names, values, strict=True)
        }
        found = decode(outputs, score_threshold)
        keep = nms(found.boxes, found.scores, nms_threshold)
        return RawDetections(found.boxes[keep], found.scores[keep], found.landmarks[keep])
