"""A dark chin's fine detail (``face_occluded``'s ``chin_detail``, ``features.chin_dark_detail``):
on every real face, on black and navy scarves drawn over the chin and on real beards made black.

    .venv/bin/python scripts/chin_dark.py

Every face of ``../shared/testdata`` and ``../shared/devset`` (or ``FACEFLOW_TESTDATA`` and the
``devset`` folder beside it) with eyes 40 px or more apart is cut out as the service does it and
measured ("not dark": under half the chin's box darker than half the darker cheek's L*, not
judged). Then black and navy scarves (``verdict_cases.scarf``) on the photos of one person at
both heights, and the beards of scripts/chin_beard.py made black (chroma × 0.5, 0.25, 0.1 with
L × 0.8, 0.6, 0.5, with the moustache and without). A black scarf is as grey as a black beard
(scripts/chin_beard.py), but smooth cloth where a beard is strands. About ten minutes.
"""

from __future__ import annotations

import math
import statistics
import sys
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from chin_beard import BEARDS, DARK
from tests.fixtures.environment import TESTDATA
from tests.pipeline.idphoto.verdict_cases import (
    SCARF_PHOTOS,
    cut_out,
    levelled_faces,
    no_photo,
    real_faces,
    real_photos,
    recoloured_beard,
    scarf,
)

from faceflow.config import LimitSettings, Settings
from faceflow.imaging.ingest import decode_image
from faceflow.models.registry import ModelSet
from faceflow.pipeline.detect import detect_faces
from faceflow.pipeline.detect_options import DetectOptions
from faceflow.pipeline.idphoto.compliance.features import CHIN_DETAIL_MIN, chin_dark_detail
from faceflow.pipeline.idphoto.compliance.regions import eye_distance_px
from faceflow.pipeline.idphoto.level import levelled_face
from faceflow.runtime.context import load_context

Rgb = NDArray[np.uint8]


def summary(label: str, values: list[float]) -> None:
    if not values:
        print(f"{label}: none judged")
        return
    print(
        f"{label}: {len(values)} judged, {min(values):.3f}–{max(values):.3f}, median "
        f"{statistics.median(values):.3f}; under {CHIN_DETAIL_MIN}: "
        f"{sum(v < CHIN_DETAIL_MIN for v in values)}",
        flush=True,
    )


def real(models: ModelSet) -> None:
    values: list[float] = []
    for found in real_faces(TESTDATA, models):
        if eye_distance_px(found.face) < 40:
            continue
        value = chin_dark_detail(found.matte, found.face)
        print(f"  {found.path.stem:28s} {'not dark' if value is None else f'{value:.3f}'}")
        if value is not None:
            values.append(value)
    summary("real faces", values)


def scarves(models: ModelSet) -> None:
    limits = LimitSettings()
    for colour in ("black", "navy"):
        for top in (0.12, 0.25):
            values: list[float] = []
            for name in SCARF_PHOTOS:
                rgb = decode_image((TESTDATA / name).read_bytes(), limits).rgb
                faces = levelled_faces(rgb, models)
                if len(faces) != 1:
                    continue
                edited = scarf(colour, top)(rgb, faces[0], no_photo)
                again = levelled_faces(edited, models)
                matte = None if len(again) != 1 else cut_out(edited, again[0], models.segmenter)
                value = None if matte is None else chin_dark_detail(matte, again[0])
                print(f"  {colour} {top} {Path(name).stem:20s} {value}", flush=True)
                if value is not None:
                    values.append(value)
            summary(f"scarf {colour} top {top}", values)


def beards(models: ModelSet) -> None:
    limits = LimitSettings()
    values: list[float] = []
    for path in real_photos(TESTDATA):
        if path.stem not in BEARDS:
            continue
        rgb = decode_image(path.read_bytes(), limits).rgb
        for near in levelled_faces(rgb, models):
            if eye_distance_px(near) < 40:
                continue
            for moustache in (False, True):
                for chroma, lightness in DARK:
                    edited = recoloured_beard(chroma, lightness, moustache=moustache)(
                        rgb, near, no_photo
                    )
                    found = detect_faces(edited, models.detector, DetectOptions())
                    if not found:
                        continue
                    nose = near.landmarks.nose
                    face = min(
                        found,
                        key=lambda f: math.dist(
                            (f.landmarks.nose.x, f.landmarks.nose.y), (nose.x, nose.y)
                        ),
                    )
                    face = levelled_face(edited, face, models.aligner)
                    matte = cut_out(edited, face, models.segmenter)
                    value = None if matte is None else chin_dark_detail(matte, face)
                    print(
                        f"  {path.stem} {'chin+lip' if moustache else 'chin'} c×{chroma} "
                        f"L×{lightness}: {'not dark' if value is None else f'{value:.3f}'}",
                        flush=True,
                    )
                    if value is not None:
                        values.append(value)
    summary("beards made black", values)


def main() -> None:
    cv2.setNumThreads(1)
    models = load_context(Settings().model_dump_json()).models
    real(models)
    scarves(models)
    beards(models)


if __name__ == "__main__":
    main()
