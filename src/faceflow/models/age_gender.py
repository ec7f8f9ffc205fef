"""Cydral age and gender models: they enrich faces the detector found, all faces in one call.

Input: aligned RGB chips (64×64 for age, 32×32 for gender), ``(pixel − mean) / 256``, NCHW float32.
Age output: probabilities over 81 classes for ages 0.25, 1, 2, … 80. Gender output: (female, male).
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from faceflow.config import ModelSettings
from faceflow.domain import AgeEstimate, Gender, GenderEstimate
from faceflow.models.catalog import ModelSpec, model_spec
from faceflow.models.session import create_session
from faceflow.models.store import ModelStore

CHANNEL_MEANS = np.array([122.782, 117.001, 104.298], dtype=np.float32)
AGE_CLASSES = np.array([0.25, *range(1, 81)], dtype=np.float32)
# The reported range holds the middle 60 % of the age distribution's probability mass.
AGE_RANGE_QUANTILES = (0.2, 0.8)


def chips_to_tensor(chips: NDArray[np.uint8]) -> NDArray[np.float32]:
    """(N, S, S, 3) uint8 RGB chips → (N, 3, S, S) float32 network input."""
    values = chips.astype(np.float32)
    values -= CHANNEL_MEANS
    values /= np.float32(256.0)
    return np.ascontiguousarray(values.transpose(0, 3, 1, 2))


def age_from_distribution(probabilities: NDArray[np.float32]) -> AgeEstimate:
    """Expected age, and the ages at the range quantiles of the cumulative distribution."""
    p = probabilities.astype(np.float64)
    p = p / max(float(p.sum()), 1e-12)
    expected = float(np.dot(p, AGE_CLASSES))
    cdf = np.cumsum(p)
    low_index = int(np.searchsorted(cdf, AGE_RANGE_QUANTILES[0]))
    high_index = int(np.searchsorted(cdf, AGE_RANGE_QUANTILES[1]))
    last = len(AGE_CLASSES) - 1
    low = float(AGE_CLASSES[min(low_index, last)])
    high = float(AGE_CLASSES[min(high_index, last)])
    return AgeEstimate(years=expected, low=min(low, expected), high=max(high, expected))


class _ChipClassifier:
    spec: ModelSpec
    chip_px: int

    def __init__(self, session: ort.InferenceSession) -> None:
        self._session = session
        self._input = session.get_inputs()[0].name
        self._output = session.get_outputs()[0].name

    def _probabilities(self, chips: NDArray[np.uint8]) -> NDArray[np.float32]:
        if chips.shape[0] == 0:
            return np.zeros((0, 0), dtype=np.float32)
        if chips.shape[1:] != (self.chip_px, self.chip_px, 3):
            raise ValueError(f"{self.spec.name} needs {self.chip_px}px chips, got {chips.shape}")
        out = self._session.run([self._output], {self._input: chips_to_tensor(chips)})[0]
        return np.asarray(out, dtype=np.float32)


class AgeModel(_ChipClassifier):
    spec = model_spec("age-v1")
    chip_px = 64

    @classmethod
    def load(cls, store: ModelStore, settings: ModelSettings) -> AgeModel:
        return cls(create_session(cls.spec.name, store.read_verified(cls.spec), settings))

    def predict(self, chips: NDArray[np.uint8]) -> list[AgeEstimate]:
        return [age_from_distribution(row) for row in self._probabilities(chips)]


class GenderModel(_ChipClassifier):
    spec = model_spec("gender-v1")
    chip_px = 32

    @classmethod
    def load(cls, store: ModelStore, settings: ModelSettings) -> GenderModel:
        return cls(create_session(cls.spec.name, store.read_verified(cls.spec), settings))

    def predict(self, chips: NDArray[np.uint8]) -> list[GenderEstimate]:
        results = []
        for female, male in self._probabilities(chips):
            if male >= female:
                results.append(GenderEstimate(Gender.MALE, float(male)))
            else:
                results.append(GenderEstimate(Gender.FEMALE, float(female)))
        return results
