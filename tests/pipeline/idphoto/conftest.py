"""Fixtures for the ID-photo tests: the real segmenter and detector, and portraits matted once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from faceflow.config import LimitSettings
from faceflow.domain import Face
from faceflow.imaging.ingest import decode_image
from faceflow.models.detector import YuNetDetector
from faceflow.models.registry import ModelSet
from faceflow.models.segmenter import U2NetpSegmenter
from faceflow.pipeline.detect import DetectOptions, detect_faces
from faceflow.pipeline.idphoto.matte import Matte, compute_matte


@dataclass(frozen=True, slots=True, eq=False)
class Portrait:
    """A decoded test photo, its one face and its matte."""

    rgb: NDArray[np.uint8]
    face: Face
    matte: Matte


@pytest.fixture(scope="session")
def segmenter(model_set: ModelSet) -> U2NetpSegmenter:
    return model_set.segmenter


@pytest.fixture(scope="session")
def detector(model_set: ModelSet) -> YuNetDetector:
    return model_set.detector


@pytest.fixture(scope="session")
def find_faces(detector: YuNetDetector) -> Callable[[NDArray[np.uint8]], tuple[Face, ...]]:
    def run(rgb: NDArray[np.uint8]) -> tuple[Face, ...]:
        return detect_faces(rgb, detector, DetectOptions())

    return run


@pytest.fixture(scope="session")
def decode_photo(testdata: Path) -> Callable[[str], NDArray[np.uint8]]:
    def run(name: str) -> NDArray[np.uint8]:
        return decode_image((testdata / name).read_bytes(), LimitSettings()).rgb

    return run


@pytest.fixture(scope="session")
def portrait(
    decode_photo: Callable[[str], NDArray[np.uint8]],
    find_faces: Callable[[NDArray[np.uint8]], tuple[Face, ...]],
    segmenter: U2NetpSegmenter,
) -> Callable[[str], Portrait]:
    """A test photo with one face, matted once per session: ``portrait("portrait_1.jpg")``."""
    done: dict[str, Portrait] = {}

    def run(name: str) -> Portrait:
        if name not in done:
            rgb = decode_photo(name)
            faces = find_faces(rgb)
            assert len(faces) == 1, f"{name} should have one face, found {len(faces)}"
            done[name] = Portrait(rgb, faces[0], compute_matte(rgb, faces[0], segmenter))
        return done[name]

    return run
