"""u2netp portrait segmenter on onnxruntime: an RGB crop in, a soft foreground alpha out.

The graph takes a fixed 1×3×320×320 float tensor and returns seven side outputs; the first is the
fused prediction. Pre-processing follows U²-Net's own test code (and rembg): divide by the image's
maximum, subtract the ImageNet mean, divide by the ImageNet std. The prediction is min-max
normalised, as U²-Net does, then resized back to the crop. It works best on a head-and-shoulders
crop around a detected face: on a whole photo the person is a few dozen of the 320 pixels tall and
hair edges are lost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np
from numpy.typing import NDArray

from faceflow.config import ModelSettings
from faceflow.models.catalog import ModelSpec, model_spec
from faceflow.models.session import create_session
from faceflow.models.store import ModelStore

if TYPE_CHECKING:
    import onnxruntime as ort

INPUT_SIZE_PX = 320
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def to_tensor(rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
    """(H, W, 3) uint8 RGB of any size → (1, 3, 320, 320) float32 network input."""
    resized = cv2.resize(rgb, (INPUT_SIZE_PX, INPUT_SIZE_PX), interpolation=cv2.INTER_AREA)
    values = np.asarray(resized, dtype=np.float32)
    values /= max(float(values.max()), 1e-6)
    values -= IMAGENET_MEAN
    values /= IMAGENET_STD
    return np.ascontiguousarray(values.transpose(2, 0, 1)[None])


def normalise_prediction(prediction: NDArray[np.float32]) -> NDArray[np.float32]:
    """Min-max normalise to [0, 1]; a flat prediction (nothing found) becomes all zeros."""
    low, high = float(prediction.min()), float(prediction.max())
    if high - low < 1e-6:
        return np.zeros_like(prediction, dtype=np.float32)
    return ((prediction - low) / (high - low)).astype(np.float32)


class U2NetpSegmenter:
    """Salient-object (portrait) alpha for an RGB crop."""

    spec: ModelSpec = model_spec("u2netp")

    def __init__(self, session: ort.InferenceSession) -> None:
        self._session = session
        self._input = session.get_inputs()[0].name
        self._output = session.get_outputs()[0].name

    @classmethod
    def load(cls, store: ModelStore, settings: ModelSettings) -> U2NetpSegmenter:
        # No arena by default: its ≈ 250 MB peak is returned after each run instead of held for
        # the life of the process (see create_session). Mapping it again costs the run the
        # kernel's zeroing of fresh pages, system time only (the user time is rembg's, whose
        # defaults keep an arena): 6–21 % in the inference processes' huge pages, depending on
        # the machine's memory traffic, ≈ 40 % in 4 KB pages (a process started without the
        # pool's malloc tunables); bench/u2netp_session.py. An operator with memory to spare
        # keeps the arena (models.segmenter_arena), ≈ 270 MB more per process.
        model = store.read_verified(cls.spec)
        return cls(create_session(cls.spec.name, model, settings, arena=settings.segmenter_arena))

    def predict(self, rgb_crop: NDArray[np.uint8]) -> NDArray[np.float32]:
        """Alpha in [0, 1], float32, shaped like ``rgb_crop``'s height × width.

        The alpha is the network's coarse 320 px answer scaled up bilinearly: edges are soft and
        must be refined against the crop by the caller.
        """
        if rgb_crop.ndim != 3 or rgb_crop.shape[2] != 3 or min(rgb_crop.shape[:2]) < 1:
            raise ValueError(f"segmenter needs an (H, W, 3) RGB crop, got {rgb_crop.shape}")
        height, width = rgb_crop.shape[:2]
        out = self._session.run([self._output], {self._input: to_tensor(rgb_crop)})[0]
        alpha = normalise_prediction(np.asarray(out, dtype=np.float32)[0, 0])
        resized = cv2.resize(alpha, (width, height), interpolation=cv2.INTER_LINEAR)
        return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)
