"""What `crown_margin`'s head-cut-flat measure reads: how far above the eye line the cut-out's
head ends and how much of a dome its top makes, in eye distances, on every real face and under a
cap the cut-out drops.

    .venv/bin/python scripts/head_top.py

Every face of ``../shared/testdata`` and ``../shared/devset`` (or ``FACEFLOW_TESTDATA`` and the
``devset`` folder beside it) is cut out and measured as taken (``measure_head``'s crown; a head
the photo cuts is listed apart: its crown is estimated), then, with eyes 40 px or more apart and
0.15 eye distances of photo above the head, with a cap of each colour of
``verdict_cases.CAP_COLOURS`` drawn on it (its top 0.1 eye distances over the head's own, as
scripts/crown_colour.py draws them) and cut out again. A cap the cut-out drops with the hair
under it (its head's top 0.2 eye distances or more below the head's own) leaves the head cut
flat at the cap's rim: those are the faces the measure must see. A few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.environment import TESTDATA
from tests.pipeline.idphoto.verdict_cases import capped_mattes, real_faces

from faceflow.config import Settings
from faceflow.domain import Face
from faceflow.pipeline.idphoto.compliance.features import head_top
from faceflow.pipeline.idphoto.compliance.geometry import HEAD_DOME_MIN, HEAD_TOP_WARN, head_dome
from faceflow.pipeline.idphoto.compliance.regions import eye_distance_px
from faceflow.pipeline.idphoto.layout import measure_head
from faceflow.pipeline.idphoto.matte import Matte
from faceflow.runtime.context import load_context


def crown(matte: Matte, face: Face) -> tuple[float, float, bool]:
    """The crown's height above the eye line and the top's dome, in eye distances, as
    `crown_margin` reads them, and whether the photo holds the crown."""
    head = measure_head(matte, face)
    return -head.crown_y / head.eye_distance_px, head_dome(matte, head), head.crown_visible


def fires(value: float, dome: float) -> bool:
    return value < HEAD_TOP_WARN and dome < HEAD_DOME_MIN


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    cv2.setNumThreads(1)
    context = load_context(Settings().model_dump_json())

    real: list[tuple[float, float, str]] = []
    cut: list[str] = []
    kept: list[tuple[float, float]] = []
    dropped: list[tuple[float, float, str]] = []
    for real_face in real_faces(TESTDATA, context.models):
        path, face, matte = real_face.path, real_face.face, real_face.matte
        distance = eye_distance_px(face)
        value, dome, visible = crown(matte, face)
        if not visible:
            cut.append(f"{value:.2f} {path.name}")
            continue
        real.append((value, dome, path.name))
        top = head_top(matte, face, distance)
        eyes_y = (face.landmarks.right_eye.y + face.landmarks.left_eye.y) / 2
        if top is None or distance < 40 or eyes_y - (top + 0.15) * distance < 0:
            continue
        for colour, capped_matte in capped_mattes(real_face, top + 0.1, context.models.segmenter):
            if capped_matte is None:
                continue
            capped_top = head_top(capped_matte, face, distance)
            capped_value, capped_dome, _ = crown(capped_matte, face)
            if capped_top is None or capped_top < top - 0.2:
                name = f"{path.name} {colour} (top {top + 0.1:.2f})"
                dropped.append((capped_value, capped_dome, name))
            else:
                kept.append((capped_value, capped_dome))

    real.sort()
    low = [entry for entry in real if entry[0] < HEAD_TOP_WARN]
    print(
        f"real faces whose crown the photo holds: {real[0][0]:.2f}–{real[-1][0]:.2f} eye "
        f"distances above the eyes over {len(real)}, median {real[len(real) // 2][0]:.2f}; "
        f"under {HEAD_TOP_WARN:g}: {len(low)}; cut flat (under it, a dome under "
        f"{HEAD_DOME_MIN:g}): {sum(fires(value, dome) for value, dome, _ in real)}"
    )
    print("  lowest: " + ", ".join(f"{v:.2f} (dome {d:.2f}) {n}" for v, d, n in real[:6]))
    flattest = sorted(real, key=lambda entry: entry[1])[:4]
    print("  flattest: " + ", ".join(f"dome {d:.2f} ({v:.2f}) {n}" for v, d, n in flattest))
    print(f"  heads the photo cuts (not judged): {', '.join(cut) or 'none'}")
    print(
        f"caps kept by the cut-out: {len(kept)}, read as cut flat: "
        f"{sum(fires(value, dome) for value, dome in kept)}"
    )
    seen = sum(fires(value, dome) for value, dome, _ in dropped)
    print(f"caps the cut-out dropped with the hair under them: seen on {seen} of {len(dropped)}")
    for value, dome, name in sorted(dropped):
        print(f"  {value:.2f} (dome {dome:.2f}) {name}")


if __name__ == "__main__":
    main()
