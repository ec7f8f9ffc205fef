"""A head-pitch proxy (chin up / chin down) measured on every face of the test and dev-set photos:
the figures behind the note in docs/id-photos.md that there is no pitch check yet.

    .venv/bin/python scripts/pitch_proxy.py

For each face YuNet finds (its five points, the eye line levelled), the nose tip's height between
the eye line and the mouth line, ``(nose − eyes) / (mouth − eyes)``: the tip stands about half an
eye distance in front of the eyes and mouth, so tipping the chin up moves it towards the eyes
(smaller) and down towards the mouth (larger), by roughly 0.3–0.5 × sin(pitch). Also the eyes to
mouth over the eye distance (foreshortened either way). Faces under 40 px between the eyes are
listed apart. Prints the distribution and the faces at both ends, to be looked at by eye: these
photos carry no pitch labels.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.environment import TESTDATA
from tests.pipeline.idphoto.verdict_cases import real_photos

from faceflow.config import LimitSettings, Settings
from faceflow.domain import Face
from faceflow.imaging.ingest import decode_image
from faceflow.pipeline.detect import detect_faces
from faceflow.pipeline.detect_options import DetectOptions
from faceflow.runtime.context import load_context

MIN_EYE_DISTANCE_PX = 40.0


def proxies(face: Face) -> tuple[float, float, float]:
    """(nose height between eyes and mouth, eyes-to-mouth over eye distance, eye distance px)."""
    marks = face.landmarks
    eyes = np.array([marks.eye_centre.x, marks.eye_centre.y])
    across = np.array([marks.left_eye.x - marks.right_eye.x, marks.left_eye.y - marks.right_eye.y])
    distance = float(np.hypot(*across))
    angle = -math.atan2(across[1], across[0])
    level = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    nose = level @ (np.array([marks.nose.x, marks.nose.y]) - eyes)
    mouth = level @ (np.array([marks.mouth_centre.x, marks.mouth_centre.y]) - eyes)
    return float(nose[1] / max(1e-6, mouth[1])), float(mouth[1] / max(1e-6, distance)), distance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    cv2.setNumThreads(1)
    testdata = TESTDATA
    photos = real_photos(testdata)
    context = load_context(Settings().model_dump_json())
    limits = LimitSettings()
    measured: list[tuple[float, float, str]] = []
    small: list[tuple[float, float, str]] = []
    for path in photos:
        rgb = decode_image(path.read_bytes(), limits).rgb
        for number, face in enumerate(detect_faces(rgb, context.models.detector, DetectOptions())):
            nose, eyes_to_mouth, distance = proxies(face)
            row = (nose, eyes_to_mouth, f"{path.name}#{number + 1}")
            (measured if distance >= MIN_EYE_DISTANCE_PX else small).append(row)
    values = np.array([nose for nose, _, _ in measured])
    lengths = np.array([length for _, length, _ in measured])
    percentiles = (0, 5, 25, 50, 75, 95, 100)
    print(f"{len(measured)} faces with eyes {MIN_EYE_DISTANCE_PX:.0f} px or more apart")
    print(
        "  nose between eyes and mouth, percentiles "
        + ", ".join(
            f"{p}: {v:.3f}"
            for p, v in zip(percentiles, np.percentile(values, percentiles), strict=True)
        )
    )
    print(
        "  eyes to mouth over eye distance, percentiles "
        + ", ".join(
            f"{p}: {v:.3f}"
            for p, v in zip(percentiles, np.percentile(lengths, percentiles), strict=True)
        )
    )
    ranked = sorted(measured)
    print("  lowest (chin up?): " + ", ".join(f"{v:.3f} {name}" for v, _, name in ranked[:6]))
    print("  highest (chin down?): " + ", ".join(f"{v:.3f} {name}" for v, _, name in ranked[-6:]))
    print(
        f"{len(small)} smaller faces: "
        + ", ".join(f"{v:.3f} {name}" for v, _, name in sorted(small))
    )


if __name__ == "__main__":
    main()
