"""A measure tried for a watermark's text laid over the face (docs/id-photos.md, "More edits a
counter refuses", second round), not adopted: the share of the central face in thin strokes
lighter than their surroundings that have lost a share of their colour, on every real face of the
test and dev-set photos as taken and with the watermarks of ``scripts/counter_edits.py`` (and a
tattoo and a heart drawn on the cheek, which a white veil does not make) laid over it.

    .venv/bin/python scripts/watermark_text.py

The central face (as the report's ``face_region``: 0.3 eye distances above the eyes to 0.1 below
the mouth, between the outer eye corners) is taken from the source, resampled to 32 px an eye
distance. A pixel is a stroke where its lightness stands over 5 L* above the grey opening of its
surroundings (a white top-hat over a disc 7 px, 0.22 eye distances, across: a letter's stroke
0.8 eye distances tall is 0.1 thick) and its chroma is over 20 % under their closing's (a white
veil at opacity α takes α of it). The eyes (±0.35 × ±0.2 eye distances) and the mouth (±0.45 ×
±0.18) are left out: eye whites and teeth are such strokes. Faces with eyes under 40 px apart
are not measured. Two or three minutes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from counter_edits import SECOND_ROUND
from tests.fixtures.environment import TESTDATA
from tests.pipeline.idphoto.verdict_cases import levelled_faces, only, real_photos

from faceflow.config import LimitSettings, Settings
from faceflow.domain import Face, Point
from faceflow.imaging.ingest import decode_image
from faceflow.runtime.context import load_context

SCALE = 32.0  # px an eye distance
EDITS = [
    *(name for name in SECOND_ROUND if "watermark" in name),
    "a tattoo on the face (fine)",
    "a heart drawn on the cheek",
]
Rgb = NDArray[np.uint8]


def stroke_share(rgb: Rgb, face: Face) -> float:
    """The share of the central face, eyes and mouth left out, in light strokes that lost
    colour."""
    marks = face.landmarks
    d = marks.left_eye.x - marks.right_eye.x
    x0 = max(0, round(marks.right_eye.x - 0.3 * d))
    y0 = max(0, round(min(marks.right_eye.y, marks.left_eye.y) - 0.3 * d))
    x1 = round(marks.left_eye.x + 0.3 * d)
    y1 = round(max(marks.mouth_left.y, marks.mouth_right.y) + 0.1 * d)
    k = SCALE / d
    region = cv2.resize(rgb[y0:y1, x0:x1], None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
    lab = cv2.cvtColor(region, cv2.COLOR_RGB2LAB).astype(np.float32)
    light = lab[..., 0] * 100 / 255
    chroma = np.hypot(lab[..., 1] - 128, lab[..., 2] - 128)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
    ridge = light - cv2.morphologyEx(light, cv2.MORPH_OPEN, disc)
    around = cv2.morphologyEx(chroma, cv2.MORPH_CLOSE, disc)
    greyed = (around - chroma) / np.maximum(around, 1.0)
    keep = np.ones(light.shape, bool)
    boxes: tuple[tuple[Point, float, float], ...] = (
        (marks.right_eye, 0.35, 0.2),
        (marks.left_eye, 0.35, 0.2),
        (marks.mouth_centre, 0.45, 0.18),
    )
    for point, half_w, half_h in boxes:
        cx, cy = (point.x - x0) * k, (point.y - y0) * k
        rows = slice(max(0, round(cy - half_h * SCALE)), round(cy + half_h * SCALE))
        keep[rows, max(0, round(cx - half_w * SCALE)) : round(cx + half_w * SCALE)] = False
    strokes = (ridge > 5) & (greyed > 0.2) & keep
    return float(strokes.sum() / max(1, keep.sum()))


def main() -> None:
    cv2.setNumThreads(1)
    models = load_context(Settings().model_dump_json()).models
    real: list[float] = []
    edited: dict[str, list[float]] = {name: [] for name in EDITS}
    for path in real_photos(TESTDATA):
        rgb = decode_image(path.read_bytes(), LimitSettings()).rgb
        for n, face in enumerate(levelled_faces(rgb, models)):
            if face.landmarks.left_eye.x - face.landmarks.right_eye.x < 40:
                continue
            real.append(stroke_share(rgb, face))
            row = [f"{path.stem}#{n} {real[-1]:.4f}"]
            for name in EDITS:
                # Placed by the face found on the original, as counter_edits.py places them.
                out = SECOND_ROUND[name](rgb, face, only(rgb))
                edited[name].append(stroke_share(out, face))
                row.append(f"{edited[name][-1]:.4f}")
            print(" ".join(row), flush=True)
    top = max(real)
    print(f"\nreal faces ({len(real)}): {min(real):.4f}-{top:.4f}, median {np.median(real):.4f}")
    print("columns: real, " + ", ".join(EDITS))
    for name, values in edited.items():
        over = sum(v > top for v in values)
        print(
            f"{name:40s} {min(values):.4f}-{max(values):.4f} median {np.median(values):.4f},"
            f" over the real faces' highest {over} of {len(values)}"
        )


if __name__ == "__main__":
    main()
