"""Beards against the chin's cover (``features.chin_covered``): every real face's beard or stubble
darkened to black and whitened, and two rules tried against them and the drawn scarves.

    .venv/bin/python scripts/chin_beard.py

The beard is the pixels darker than L 110 (OpenCV's 8-bit scale, about L* 43) in a box ±0.6 eye
distances wide, 0.1–0.9 below the mouth's middle ("chin"), or from 0.1 under the nose down
("chin+lip", the moustache too), as ``verdict_cases.recoloured_beard`` draws it: darkened
(chroma × 0.5, 0.25, 0.1 with L × 0.8, 0.6, 0.5) or whitened (chroma × 0.2, L raised to
200–230). Each photo is then detected and cut out again and measured three ways:

- ``now``: the share of the chin's box that is grey or of another hue than a cheek's (the rule
  of d4028ec);
- ``hue``: only "another hue" that is not grey, (b): a beard keeps the skin's hue or none (the
  rule ``chin_covered`` keeps);
- ``lip``: ``now``, but 0 when the band between the nose and the upper lip is as covered (the
  chin's share less 0.1 or more), (a): a beard's moustache is the chin's colour, a scarf pulled
  up to the lips leaves the upper lip bare.

Then the real faces and the scarves of ``verdict_cases.SCARF_COLOURS`` on 13 people at both
heights, as scripts/chin_cover.py draws them. A few minutes.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.environment import TESTDATA
from tests.pipeline.idphoto.verdict_cases import (
    SCARF_COLOURS,
    SCARF_PHOTOS,
    Edit,
    cut_out,
    levelled_faces,
    no_photo,
    real_faces,
    recoloured_beard,
    scarf,
)

from faceflow.config import LimitSettings, Settings
from faceflow.domain import Face, Point
from faceflow.imaging.ingest import decode_image
from faceflow.models.registry import ModelSet
from faceflow.pipeline.detect import detect_faces
from faceflow.pipeline.detect_options import DetectOptions
from faceflow.pipeline.idphoto.compliance.features import (
    CHIN_BOX,
    CHIN_COVER_WARN,
    chin_classes,
    chin_covered,
)
from faceflow.pipeline.idphoto.compliance.regions import eye_distance_px
from faceflow.pipeline.idphoto.level import levelled_face
from faceflow.pipeline.idphoto.matte import Matte
from faceflow.runtime.context import load_context

Rgb = NDArray[np.uint8]
# Beards and stubble seen on the real faces (the 40 px and larger ones, looked at one by one).
BEARDS = (
    "df_img16",
    "df_img17",
    "df_img24",
    "df_img25",
    "df_img32",
    "df_img34",
    "df_img35",
    "df_img36",
    "df_img37",
    "df_img40",
    "df_img59",
    "df_img61",
    "df_img62",
)
DARK = ((0.5, 0.8), (0.25, 0.6), (0.1, 0.5))


def shares(matte: Matte, face: Face, centre: Point, half_h: float) -> tuple[float, float] | None:
    """(grey or another hue, another hue and not grey): shares of a box ±CHIN_BOX[0] eye
    distances wide, ``half_h`` high around ``centre``, as ``chin_covered`` classes pixels."""
    classes = chin_classes(matte, face, centre, half_h)
    if classes is None:
        return None
    either = np.ones_like(classes[0][0])
    hue_only = np.ones_like(classes[0][0])
    for grey, other_hue in classes:
        either &= grey | other_hue
        hue_only &= other_hue & ~grey
    return float(either.mean()), float(hue_only.mean())


def rules(matte: Matte, face: Face) -> tuple[float, float, float] | None:
    """(now, hue, lip) as the module's docstring says; None where chin_covered is."""
    if chin_covered(matte, face) is None:  # not judged: eyes too close, the chin cut off
        return None
    marks = face.landmarks
    distance = eye_distance_px(face)
    _, top, bottom = CHIN_BOX
    mouth = marks.mouth_centre
    chin = shares(matte, face, Point(mouth.x, mouth.y + (top + bottom) / 2 * distance), 0.1)
    lip_y = (marks.nose.y + mouth.y) / 2 - 0.05 * distance
    lip = shares(matte, face, Point(mouth.x, lip_y), 0.07)
    assert chin is not None
    now = chin[0]
    lip_share = lip[0] if lip is not None else 0.0
    return now, chin[1], 0.0 if lip_share >= now - 0.1 else now


def edits(moustache: bool) -> dict[str, Edit]:
    where = "chin+lip" if moustache else "chin"
    out = {
        f"{where} black c×{c} L×{k}": recoloured_beard(c, k, moustache=moustache) for c, k in DARK
    }
    out[f"{where} white c×0.2 L 200–230"] = recoloured_beard(
        0.2, 1.0, white=True, moustache=moustache
    )
    return out


def measure(rgb: Rgb, models: ModelSet, near: Face) -> tuple[float, float, float] | None:
    """The three rules on the face of ``rgb`` whose nose is nearest ``near``'s (a photo may
    hold several people)."""
    faces = detect_faces(rgb, models.detector, DetectOptions())
    if not faces:
        return None
    nose = near.landmarks.nose
    found = min(
        faces, key=lambda f: math.dist((f.landmarks.nose.x, f.landmarks.nose.y), (nose.x, nose.y))
    )
    face = levelled_face(rgb, found, models.aligner)
    matte = cut_out(rgb, face, models.segmenter)
    return None if matte is None else rules(matte, face)


def show(label: str, values: tuple[float, float, float] | None) -> None:
    if values is None:
        print(f"  {label:44s} not judged")
        return
    marks = ["*" if v > CHIN_COVER_WARN else " " for v in values]
    print(
        f"  {label:44s} now {values[0]:.3f}{marks[0]} hue {values[1]:.3f}{marks[1]} "
        f"lip {values[2]:.3f}{marks[2]}"
    )


def main() -> None:
    cv2.setNumThreads(1)
    models = load_context(Settings().model_dump_json()).models
    beards = set(sys.argv[1:]) or set(BEARDS)
    print(f"beards (* over {CHIN_COVER_WARN}):")
    sources = {}
    for found in real_faces(TESTDATA, models):
        if found.path.stem in beards and eye_distance_px(found.face) >= 40:
            sources[found.path.stem] = found
    for name, found in sorted(sources.items()):
        show(f"{name} as taken", rules(found.matte, found.face))
        for lip in (False, True):
            for label, edit in edits(lip).items():
                edited = edit(found.rgb, found.face, no_photo)
                show(f"{name} {label}", measure(edited, models, found.face))
    if "--beards-only" in sys.argv:
        return
    print("real faces:")
    real = []
    for found in real_faces(TESTDATA, models):
        if eye_distance_px(found.face) < 40:
            continue
        values = rules(found.matte, found.face)
        if values is not None:
            real.append(values)
    for i, rule in enumerate(("now", "hue", "lip")):
        column = [v[i] for v in real]
        print(
            f"  {rule}: {len(column)} judged, max {max(column):.3f}, "
            f"over {CHIN_COVER_WARN}: {sum(v > CHIN_COVER_WARN for v in column)}"
        )
    limits = LimitSettings()
    print("scarves (seen of drawn, by rule):")
    for top in (0.12, 0.25):
        for colour in SCARF_COLOURS:
            got = []
            for name in SCARF_PHOTOS:
                rgb = decode_image((TESTDATA / name).read_bytes(), limits).rgb
                faces = levelled_faces(rgb, models)
                if len(faces) != 1:
                    continue
                values = measure(scarf(colour, top)(rgb, faces[0], no_photo), models, faces[0])
                if values is not None:
                    got.append(values)
            seen = [sum(v[i] > CHIN_COVER_WARN for v in got) for i in range(3)]
            print(
                f"  {colour:6s} top {top:.2f}: now {seen[0]}, hue {seen[1]}, lip {seen[2]} "
                f"of {len(got)}; lowest "
                + " ".join(f"{min(v[i] for v in got):.2f}" for i in range(3))
            )


if __name__ == "__main__":
    main()
