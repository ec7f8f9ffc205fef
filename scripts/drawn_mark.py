"""A measure tried for a mark drawn on the cheek in dark ink (a heart in black marker,
``scripts/counter_edits.py --round 2``), not adopted: its reading on every real face of the test
and dev-set photos and on each with the heart, or the tattoo a counter accepts, drawn on it.

    .venv/bin/python scripts/drawn_mark.py

On the source photo, over a box under each eye (±0.3 eye distances across the eye, 0.25-0.85
below it), ink is what is darker than its surroundings in thin lines: L* over 8 under a closing
by a disc 0.1 eye distances across (a black-hat), the grain softened by σ 0.01 eye distances.
The reading is the largest piece of ink's extent (its box's longer side) in eye distances: a
heart 0.3 across reads its width, a mole or a freckle a few hundredths. Prints every face's
reading, then each edit's range. About two minutes.
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
from tests.pipeline.idphoto.verdict_cases import only, real_faces

from faceflow.config import Settings
from faceflow.domain import Face
from faceflow.pipeline.idphoto.compliance.regions import cie, eye_distance_px
from faceflow.runtime.context import load_context

Rgb = NDArray[np.uint8]
EDITS = {
    "a heart drawn on the cheek": SECOND_ROUND["a heart drawn on the cheek"],
    "a tattoo on the face (fine)": SECOND_ROUND["a tattoo on the face (fine)"],
}
INK_DARKER = 8.0


def ink_extent(rgb: Rgb, face: Face) -> float | None:
    """The largest piece of thin dark ink under either eye, its extent in eye distances; None
    where a box lies outside the photo."""
    d = eye_distance_px(face)
    best = 0.0
    for eye in (face.landmarks.right_eye, face.landmarks.left_eye):
        x1, x2 = round(eye.x - 0.3 * d), round(eye.x + 0.3 * d)
        y1, y2 = round(eye.y + 0.25 * d), round(eye.y + 0.85 * d)
        if x1 < 0 or y1 < 0 or x2 > rgb.shape[1] or y2 > rgb.shape[0]:
            return None
        box = np.ascontiguousarray(rgb[y1:y2, x1:x2])
        soft = cv2.GaussianBlur(box, (0, 0), max(0.5, 0.01 * d))
        lightness = cie(cv2.cvtColor(soft, cv2.COLOR_RGB2LAB).astype(np.float32))[..., 0]
        size = max(3, round(0.1 * d) | 1)
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
        darker = cv2.morphologyEx(lightness, cv2.MORPH_BLACKHAT, disc)
        ink = (darker > INK_DARKER).astype(np.uint8)
        count, _, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
        for index in range(1, count):
            best = max(best, float(max(stats[index][2], stats[index][3])) / d)
    return best


def main() -> None:
    cv2.setNumThreads(1)
    models = load_context(Settings().model_dump_json()).models
    real: list[tuple[float, str]] = []
    drawn: dict[str, list[float]] = {name: [] for name in EDITS}
    for item in real_faces(TESTDATA, models):
        if eye_distance_px(item.face) < 40:
            continue
        value = ink_extent(item.rgb, item.face)
        if value is None:
            continue
        real.append((value, item.path.stem))
        row = [f"{item.path.stem:26s} {value:.3f}"]
        for name, edit in EDITS.items():
            reading = ink_extent(edit(item.rgb, item.face, only(item.rgb)), item.face)
            if reading is not None:
                drawn[name].append(reading)
                row.append(f"{reading:.3f}")
        print(" ".join(row), flush=True)
    values = sorted(real)
    print(
        f"\nreal faces ({len(values)}): {values[0][0]:.3f}-{values[-1][0]:.3f}; "
        f"highest {values[-5:]}"
    )
    for name, readings in drawn.items():
        over = sum(v > values[-1][0] for v in readings)
        print(
            f"{name:30s} {min(readings):.3f}-{max(readings):.3f} median "
            f"{float(np.median(readings)):.3f}, over the real faces' highest: {over} of "
            f"{len(readings)}"
        )


if __name__ == "__main__":
    main()
