"""Age and gender models: reading the age distribution, the network input, batch handling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from faceflow.config import ModelSettings
from faceflow.domain import Gender
from faceflow.models.age_gender import (
    AGE_ABOVE_YEARS,
    AGE_BELOW_YEARS,
    AGE_CEILING_YEARS,
    AGE_CLASSES,
    AGE_SPREAD_SIGMAS,
    BATCH_FACES,
    CHANNEL_MEANS,
    AgeModel,
    GenderModel,
    age_from_distribution,
    chips_to_tensor,
    gender_from_probabilities,
)
from faceflow.models.catalog import Pinned, required_models
from faceflow.models.registry import ModelSet
from faceflow.models.store import ModelStore


def one_hot(index: int) -> NDArray[np.float32]:
    distribution = np.zeros(len(AGE_CLASSES), np.float32)
    distribution[index] = 1.0
    return distribution


def test_age_classes_are_a_quarter_year_then_one_to_eighty() -> None:
    assert len(AGE_CLASSES) == 81
    assert AGE_CLASSES[0] == pytest.approx(0.25)
    assert AGE_CLASSES[1:].tolist() == list(range(1, 81))


@pytest.mark.parametrize(("index", "years"), [(0, 0.25), (1, 1.0), (33, 33.0), (80, 80.0)])
def test_one_hot_distribution_reads_as_its_class_age_with_the_calibrated_floor_range(
    index: int, years: float
) -> None:
    age = age_from_distribution(one_hot(index))

    assert age.years == pytest.approx(years)
    assert age.low == pytest.approx(max(0.0, years - AGE_BELOW_YEARS))
    assert age.high == pytest.approx(years + AGE_ABOVE_YEARS)
    assert age.reliable


def test_uniform_distribution_reads_as_about_forty_with_a_range_set_by_its_spread() -> None:
    age = age_from_distribution(np.full(len(AGE_CLASSES), 1 / 81, np.float32))
    sigma = float(np.std(AGE_CLASSES))

    assert age.years == pytest.approx(40.0, abs=0.1)
    assert age.low == pytest.approx(max(0.0, 40.0 - AGE_SPREAD_SIGMAS * sigma), abs=0.2)
    assert age.high == pytest.approx(min(100.0, 40.0 + AGE_SPREAD_SIGMAS * sigma), abs=0.2)


def test_two_equal_peaks_read_as_their_midpoint_with_a_range_spanning_both() -> None:
    distribution = (one_hot(20) + one_hot(60)) / np.float32(2)

    age = age_from_distribution(distribution)

    assert age.years == pytest.approx(40.0)
    assert age.low <= 20.0
    assert age.high >= 60.0


def test_unnormalised_scores_are_normalised_first() -> None:
    assert age_from_distribution(3 * one_hot(50)).years == pytest.approx(50.0)


@pytest.mark.parametrize("seed", range(5))
def test_range_brackets_the_expected_age(seed: int) -> None:
    distribution = np.random.default_rng(seed).dirichlet(np.full(81, 0.3)).astype(np.float32)

    age = age_from_distribution(distribution)

    assert 0.0 <= age.low <= age.years <= age.high <= AGE_CEILING_YEARS
    assert age.years == pytest.approx(float(np.dot(distribution, AGE_CLASSES)), rel=1e-4)


@pytest.mark.parametrize("index", [5, 40, 79])
def test_an_unreliable_face_keeps_its_age_but_gets_a_wider_range(index: int) -> None:
    sure = age_from_distribution(one_hot(index))
    unsure = age_from_distribution(one_hot(index), reliable=False)

    assert unsure.years == sure.years
    assert not unsure.reliable
    assert unsure.low <= sure.low
    assert unsure.high - unsure.low > sure.high - sure.low


@pytest.mark.parametrize(
    ("female", "male", "label"), [(0.99, 0.01, Gender.FEMALE), (0.001, 0.999, Gender.MALE)]
)
def test_an_unreliable_face_keeps_its_gender_label_with_a_tempered_probability(
    female: float, male: float, label: Gender
) -> None:
    sure = gender_from_probabilities(female, male)
    unsure = gender_from_probabilities(female, male, reliable=False)

    assert sure.label == unsure.label == label
    assert sure.probability == pytest.approx(max(female, male))
    assert 0.5 < unsure.probability < sure.probability
    assert (sure.reliable, unsure.reliable) == (True, False)


def test_chips_become_mean_centred_nchw_tensors() -> None:
    chips = np.zeros((2, 4, 4, 3), np.uint8)
    chips[0] = np.round(CHANNEL_MEANS).astype(np.uint8)
    chips[1, 0, 1] = (255, 0, 0)

    tensor = chips_to_tensor(chips)

    assert tensor.shape == (2, 3, 4, 4)
    assert tensor.dtype == np.float32
    assert tensor.flags.c_contiguous
    assert np.abs(tensor[0]).max() < 0.5 / 256 + 1e-6  # the means, up to rounding
    assert tensor[1, 0, 0, 1] == pytest.approx((255 - CHANNEL_MEANS[0]) / 256)
    assert tensor[1, 1, 0, 1] == pytest.approx(-CHANNEL_MEANS[1] / 256)


def test_no_chips_give_no_estimates(model_set: ModelSet) -> None:
    assert model_set.age.predict(np.zeros((0, 64, 64, 3), np.uint8)) == []
    assert model_set.gender.predict(np.zeros((0, 32, 32, 3), np.uint8)) == []


@pytest.mark.parametrize(("model", "wrong_px"), [("age", 32), ("gender", 64)])
def test_chips_of_the_wrong_size_are_refused(
    model_set: ModelSet, model: str, wrong_px: int
) -> None:
    predict = model_set.age.predict if model == "age" else model_set.gender.predict

    with pytest.raises(ValueError, match="chips"):
        predict(np.zeros((1, wrong_px, wrong_px, 3), np.uint8))


def test_gender_estimate_is_the_more_probable_class(model_set: ModelSet) -> None:
    chips = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)

    for estimate in model_set.gender.predict(chips):
        assert estimate.label in (Gender.FEMALE, Gender.MALE)
        assert 0.5 <= estimate.probability <= 1.0


def test_more_faces_than_a_batch_read_as_each_face_alone(model_set: ModelSet) -> None:
    count = 2 * BATCH_FACES + 3
    rng = np.random.default_rng(1)
    age_chips = rng.integers(0, 256, (count, 64, 64, 3), dtype=np.uint8)
    gender_chips = rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)

    ages = model_set.age.predict(age_chips)
    genders = model_set.gender.predict(gender_chips)

    assert len(ages) == len(genders) == count
    for i in range(count):
        (age,) = model_set.age.predict(age_chips[i : i + 1])
        (gender,) = model_set.gender.predict(gender_chips[i : i + 1])
        assert (ages[i].years, ages[i].low, ages[i].high) == pytest.approx(
            (age.years, age.low, age.high), abs=1e-3
        )
        assert genders[i].label is gender.label
        assert genders[i].probability == pytest.approx(gender.probability, abs=1e-5)


@pytest.mark.parametrize("classifier", [AgeModel, GenderModel], ids=lambda c: c.spec.name)
def test_a_network_loads_from_its_stored_zeroed_file_not_its_shipped_one(
    model_store_copy: Path,
    monkeypatch: pytest.MonkeyPatch,
    classifier: type[AgeModel | GenderModel],
) -> None:
    settings = ModelSettings(dir=model_store_copy)
    store = ModelStore(settings)
    store.derive(required_models())  # as `faceflow models pull` leaves the store
    read: list[str] = []
    read_verified = ModelStore.read_verified

    def spy(self: ModelStore, spec: Pinned) -> bytes:
        read.append(spec.name)
        return read_verified(self, spec)

    monkeypatch.setattr(ModelStore, "read_verified", spy)

    classifier.load(store, settings)

    assert read == [classifier.flushed.name]
