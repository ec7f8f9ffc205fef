"""Cydral age and gender models: they enrich faces the detector found, all faces in one call.

Input: aligned RGB chips (64×64 for age, 32×32 for gender), ``(pixel − mean) / 256``, NCHW float32.
Age output: probabilities over 81 classes for ages 0.25, 1, 2, … 80. Gender output: (female, male).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Self

import numpy as np
from numpy.typing import NDArray

from faceflow.config import ModelSettings
from faceflow.domain import AgeEstimate, Gender, GenderEstimate
from faceflow.models.catalog import DerivedSpec, ModelSpec, derived_from, model_spec
from faceflow.models.session import create_session
from faceflow.models.store import ModelStore

if TYPE_CHECKING:
    import onnxruntime as ort

CHANNEL_MEANS = np.array([122.782, 117.001, 104.298], dtype=np.float32)
AGE_CLASSES = np.array([0.25, *range(1, 81)], dtype=np.float32)
# The age range, calibrated on the labelled faces of ../shared/devset (bench/accuracy.py): from
# the expected age, max(AGE_BELOW_YEARS, k·σ) down and max(AGE_ABOVE_YEARS, k·σ) up, σ the
# distribution's standard deviation, k = AGE_SPREAD_SIGMAS. The model's own distribution is far
# too narrow (its middle 60 % held the labelled age for 28 % of the devset faces, median width 2
# years), and it reads adults about 3 years young, hence the longer side above. On the devset
# this range holds the labelled age for 72 % of faces at a median width of 11 years.
AGE_BELOW_YEARS = 5.0
AGE_ABOVE_YEARS = 6.0
AGE_SPREAD_SIGMAS = 2.0
AGE_CEILING_YEARS = 100.0
# An unreliable face (poor quality) gets a range this many times as wide.
UNRELIABLE_WIDENING = 2.0
# An unreliable face's gender probability is tempered: its logit divided by this. The model is
# confident (p ≥ 0.987) and right on every labelled face, so there is nothing to calibrate it
# against on good faces; on poor ones (a man turned away read as a woman) it is as confident and
# wrong, which this makes visible.
UNRELIABLE_GENDER_TEMPERATURE = 4.0


def chips_to_tensor(chips: NDArray[np.uint8]) -> NDArray[np.float32]:
    """(N, S, S, 3) uint8 RGB chips → (N, 3, S, S) float32 network input."""
    values = chips.astype(np.float32)
    values -= CHANNEL_MEANS
    values /= np.float32(256.0)
    return np.ascontiguousarray(values.transpose(0, 3, 1, 2))


def age_from_distribution(probabilities: NDArray[np.float32], reliable: bool = True) -> AgeEstimate:
    """Expected age, and the calibrated range around it (widened when not ``reliable``)."""
    p = probabilities.astype(np.float64)
    p = p / max(float(p.sum()), 1e-12)
    expected = float(np.dot(p, AGE_CLASSES))
    sigma = float(np.sqrt(np.dot(p, (AGE_CLASSES - expected) ** 2)))
    widen = 1.0 if reliable else UNRELIABLE_WIDENING
    below = widen * max(AGE_BELOW_YEARS, AGE_SPREAD_SIGMAS * sigma)
    above = widen * max(AGE_ABOVE_YEARS, AGE_SPREAD_SIGMAS * sigma)
    return AgeEstimate(
        years=expected,
        low=max(0.0, expected - below),
        high=min(AGE_CEILING_YEARS, expected + above),
        reliable=reliable,
    )


def gender_from_probabilities(female: float, male: float, reliable: bool = True) -> GenderEstimate:
    """The likelier label and its probability, tempered towards 0.5 when not ``reliable``."""
    total = max(female + male, 1e-12)
    p_male = min(max(male / total, 1e-6), 1 - 1e-6)
    if not reliable:
        logit = np.log(p_male / (1 - p_male)) / UNRELIABLE_GENDER_TEMPERATURE
        p_male = float(1 / (1 + np.exp(-logit)))
    if p_male >= 0.5:
        return GenderEstimate(Gender.MALE, p_male, reliable)
    return GenderEstimate(Gender.FEMALE, 1 - p_male, reliable)


BATCH_FACES = 8
"""The most chips one model run takes; a photo with more faces runs in batches of this many."""


def _flushed(spec: ModelSpec) -> DerivedSpec:
    flushed = derived_from(spec)
    if flushed is None:
        raise LookupError(f"the catalogue derives no file from {spec.name}")
    return flushed


class _ChipClassifier:
    spec: ModelSpec
    flushed: DerivedSpec
    """What is loaded: :attr:`spec` with its denormal weights zeroed (see ``load``)."""
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
        # At most BATCH_FACES chips a run: onnxruntime's arena keeps a run's peak for the life
        # of the process, and that peak grows with the batch (age + gender, measured after a
        # trim: +5 MB at 8 faces, +30 MB at 32, +57 MB at 64) while the CPU per face does not
        # fall past 4 faces (10.6–11.2 ms). The warm-up runs one full batch, so a process
        # reaches this peak before it is ready, whatever the group photos it then sees.
        runs = [
            self._session.run(
                [self._output], {self._input: chips_to_tensor(chips[start : start + BATCH_FACES])}
            )[0]
            for start in range(0, chips.shape[0], BATCH_FACES)
        ]
        return np.concatenate([np.asarray(out, dtype=np.float32) for out in runs])

    @classmethod
    def load(cls, store: ModelStore, settings: ModelSettings) -> Self:
        # Both networks hold denormal weights, which made the age network 7× slower
        # (faceflow.models.weights); zeroing them leaves every output bit as it was. The store
        # keeps them zeroed in a file of their own, so no process pays for the zeroing.
        return cls(create_session(cls.spec.name, store.read_derived(cls.flushed), settings))


class AgeModel(_ChipClassifier):
    spec = model_spec("age-v1")
    flushed = _flushed(spec)
    chip_px = 64

    def predict(
        self, chips: NDArray[np.uint8], reliable: Sequence[bool] | None = None
    ) -> list[AgeEstimate]:
        """One estimate per chip; ``reliable[i]`` false widens chip ``i``'s range."""
        rows = self._probabilities(chips)
        flags = [True] * len(rows) if reliable is None else list(reliable)
        return [age_from_distribution(row, ok) for row, ok in zip(rows, flags, strict=True)]


class GenderModel(_ChipClassifier):
    spec = model_spec("gender-v1")
    flushed = _flushed(spec)
    chip_px = 32

    def predict(
        self, chips: NDArray[np.uint8], reliable: Sequence[bool] | None = None
    ) -> list[GenderEstimate]:
        """One estimate per chip; ``reliable[i]`` false tempers chip ``i``'s probability."""
        rows = self._probabilities(chips)
        flags = [True] * len(rows) if reliable is None else list(reliable)
        return [
            gender_from_probabilities(float(female), float(male), ok)
            for (female, male), ok in zip(rows, flags, strict=True)
        ]
