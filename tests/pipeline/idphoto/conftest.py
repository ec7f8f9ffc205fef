"""Fixtures for the ID-photo tests: the real segmenter and detector, and portraits matted once.

A matte costs one u2netp run (about half a CPU second) and most tests only read it, so every
source photo (as taken, or spoiled by one of verdict_cases.py's edits) is detected and matted
once for these tests and shared: a verdict case, a framing test and a matte test on the same
source read the same cut-out. Edits are cached by identity; verdict_cases.py's edit factories
return the same function for the same arguments, so ``crop_below_chin(1.4)`` twice is one
source. The fixtures are package-scoped, not session-scoped: the cut-outs and u2netp's arena
(below) are released when the ID-photo tests end, so the suite's peak memory does not grow.

Some tests cut a photo out themselves (another face chosen, no other faces passed, an edit made
in the test): u2netp's answers are kept too, per network input (:class:`RememberingSession`), so
those crops are not segmented again either.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

import numpy as np
import pytest
from numpy.typing import NDArray

from faceflow.config import LimitSettings, ModelSettings
from faceflow.domain import Face
from faceflow.imaging.ingest import decode_image
from faceflow.models.aligner import FaceAligner
from faceflow.models.detector import YuNetDetector
from faceflow.models.registry import ModelSet
from faceflow.models.segmenter import U2NetpSegmenter
from faceflow.models.session import create_session
from faceflow.models.store import ModelStore
from faceflow.pipeline.detect import detect_faces
from faceflow.pipeline.detect_options import DetectOptions
from faceflow.pipeline.idphoto.level import levelled_face
from faceflow.pipeline.idphoto.matte import Matte, compute_matte
from faceflow.pipeline.idphoto.render import chosen_face
from tests.fixtures.idphoto import RememberingSession
from tests.pipeline.idphoto.verdict_cases import Edit, edited_source

if TYPE_CHECKING:
    import onnxruntime as ort


@dataclass(frozen=True, slots=True, eq=False)
class Portrait:
    """A decoded test photo, its one face and its matte."""

    rgb: NDArray[np.uint8]
    face: Face
    matte: Matte


@dataclass(frozen=True, slots=True, eq=False)
class Source:
    """A test photo as taken or edited, and the faces the detector finds on it."""

    rgb: NDArray[np.uint8]
    faces: tuple[Face, ...]


FindSource = Callable[[str, Edit | None], Source]


class CutOut(Protocol):
    def __call__(self, name: str, edit: Edit | None, face: int | None = None) -> Portrait:
        """The cut-out of face ``face`` (from 1, left to right) of the source, the photo's other
        faces passed to it as the service passes them; ``None``: the source's one face."""
        ...


@pytest.fixture(scope="package")
def segmenter(pulled_model_settings: ModelSettings) -> U2NetpSegmenter:
    """u2netp with its memory arena kept (``models.segmenter_arena``), loaded once for these
    tests, its answers kept per input (:class:`RememberingSession`).

    These tests run it over a hundred times in one process, the case the setting is for: a run
    costs about a quarter less CPU (0.46 against 0.60 s, paired, same output to the bit) for
    memory held by this process. The default (no arena) is what the session's model set and
    every inference process the other tests start use.
    """
    settings = pulled_model_settings.model_copy(update={"segmenter_arena": True})
    spec = U2NetpSegmenter.spec
    model = ModelStore(settings).read_verified(spec)
    session = create_session(spec.name, model, settings, arena=settings.segmenter_arena)
    return U2NetpSegmenter(cast("ort.InferenceSession", RememberingSession(session)))


@pytest.fixture(scope="package")
def detector(model_set: ModelSet) -> YuNetDetector:
    return model_set.detector


@pytest.fixture(scope="package")
def find_faces(detector: YuNetDetector) -> Callable[[NDArray[np.uint8]], tuple[Face, ...]]:
    def run(rgb: NDArray[np.uint8]) -> tuple[Face, ...]:
        return detect_faces(rgb, detector, DetectOptions())

    return run


@pytest.fixture(scope="package")
def aligner(model_set: ModelSet) -> FaceAligner:
    return model_set.aligner


@pytest.fixture(scope="package")
def decode_photo(testdata: Path) -> Callable[[str], NDArray[np.uint8]]:
    def run(name: str) -> NDArray[np.uint8]:
        return decode_image((testdata / name).read_bytes(), LimitSettings()).rgb

    return run


@pytest.fixture(scope="package")
def source(
    decode_photo: Callable[[str], NDArray[np.uint8]],
    find_faces: Callable[[NDArray[np.uint8]], tuple[Face, ...]],
    aligner: FaceAligner,
) -> FindSource:
    """A test photo, spoiled by ``edit`` if given, and its faces, once for these tests:
    ``source("portrait_2.jpg", rotate(12.0))``. The pixels are shared: read, never write. The
    faces are levelled by their eye corners, as the service's cut-out takes them
    (:func:`~faceflow.pipeline.idphoto.level.levelled_face`)."""
    done: dict[tuple[str, Edit | None], Source] = {}

    def run(name: str, edit: Edit | None) -> Source:
        key = (name, edit)
        if key not in done:
            if edit is None:
                rgb = decode_photo(name)
            else:
                original = run(name, None)
                rgb = edited_source(original.rgb, original.faces, edit, decode_photo)
            rgb.setflags(write=False)  # shared by every test on this source
            faces = tuple(levelled_face(rgb, face, aligner) for face in find_faces(rgb))
            done[key] = Source(rgb, faces)
        return done[key]

    return run


@pytest.fixture(scope="package")
def cut_out(source: FindSource, segmenter: U2NetpSegmenter) -> CutOut:
    """A source with one face (asserted), or face ``face`` of several, and its matte, matted once
    for these tests: ``cut_out("portrait_2.jpg", narrow(1.5))``. The other faces go to the
    cut-out as the service passes them, so ``face_count`` sees those it keeps."""
    done: dict[tuple[str, Edit | None, int | None], Portrait] = {}

    def run(name: str, edit: Edit | None, face: int | None = None) -> Portrait:
        key = (name, edit, face)
        if key not in done:
            found = source(name, edit)
            faces = found.faces
            if face is None:
                assert len(faces) == 1, f"{name} should have one face, found {len(faces)}"
            subject = chosen_face(faces, face)
            others = [other for other in faces if other is not subject]
            matte = compute_matte(found.rgb, subject, segmenter, others=others)
            matte.alpha.setflags(write=False)
            matte.foreground.setflags(write=False)
            done[key] = Portrait(found.rgb, subject, matte)
        return done[key]

    return run


@pytest.fixture(scope="package")
def portrait(cut_out: CutOut) -> Callable[[str], Portrait]:
    """A test photo with one face, matted once for these tests: ``portrait("portrait_1.jpg")``."""

    def run(name: str) -> Portrait:
        return cut_out(name, None)

    return run
