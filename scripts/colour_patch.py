"""The figures behind ``face_occluded``'s colour patch (a sticker, an emoji or paint laid over the
face: faceflow/pipeline/idphoto/compliance/overlays.py): its reading on every real face of the
test and dev-set photos, cut out as the service does it, and on each with something drawn on it.

    .venv/bin/python scripts/colour_patch.py

Every face with eyes 40 px or more apart is read on its matte as the report reads it, then its
source is edited (``scripts/counter_edits.py``'s stickers, face paint, tattoo, dyed hair and
make-up; coloured and dark glasses frames, ``verdict_cases._glasses``) and the same zone read on the
edited source (the matte's foreground is the photo where the person is opaque). Prints every
face's readings, then each edit's range and how many go over the limit. About two minutes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from counter_edits import EDITS, SECOND_ROUND
from tests.fixtures.environment import TESTDATA
from tests.pipeline.idphoto.verdict_cases import Edit, _glasses, clear_glasses, real_faces

from faceflow.config import Settings
from faceflow.domain import Face, Point
from faceflow.pipeline.idphoto.compliance.overlays import (
    COLOUR_PATCH_WARN,
    colour_patch,
    colour_patch_share,
)
from faceflow.pipeline.idphoto.compliance.regions import eye_distance_px
from faceflow.runtime.context import load_context

Rgb = NDArray[np.uint8]
DRAWN: dict[str, Edit] = {
    name: SECOND_ROUND[name]
    for name in (
        "a sticker over a cheek",
        "a sticker over an eye",
        "a flag painted on the cheek",
        "a heart drawn on the cheek",
        "a tattoo on the face (fine)",
        "hair dyed pink (fine)",
        "hair dyed blue (fine)",
        "hair dyed green (fine)",
    )
} | {
    "pink make-up": EDITS["pink make-up"],
    "orange foundation": EDITS["orange foundation"],
    "dark glasses frames (fine)": clear_glasses,
    "red glasses frames (fine)": _glasses((200, 30, 40), 0.035),
    "blue glasses frames, thick (fine)": _glasses((30, 80, 200), 0.06),
}


def on_source(rgb: Rgb, face: Face) -> float | None:
    """The colour patch read on a source photo, over the zone :func:`colour_patch` reads."""
    marks = face.landmarks
    d = eye_distance_px(face)
    y1 = max(0, round(min(marks.right_eye.y, marks.left_eye.y) - 0.1 * d))
    x1 = max(0, round(marks.right_eye.x - 0.2 * d))
    y2, x2 = round(marks.mouth_centre.y + 0.1 * d), round(marks.left_eye.x + 0.2 * d)
    points = tuple(
        Point(p.x - x1, p.y - y1) for p in (marks.right_eye, marks.left_eye, marks.mouth_centre)
    )
    return colour_patch_share(np.ascontiguousarray(rgb[y1:y2, x1:x2]), points, d)


def only(rgb: Rgb) -> Callable[[str], Rgb]:
    """The photo source an edit is given: this photo, whatever it asks for (these edits ask
    for none)."""

    def photo(_: str) -> Rgb:
        return rgb

    return photo


def main() -> None:
    cv2.setNumThreads(1)
    models = load_context(Settings().model_dump_json()).models
    real: list[float] = []
    drawn: dict[str, list[float]] = {name: [] for name in DRAWN}
    for item in real_faces(TESTDATA, models):
        value = colour_patch(item.matte, item.face)
        if value is None:
            continue
        real.append(value)
        row = [f"{item.path.stem:26s} {value:.4f}"]
        for name, edit in DRAWN.items():
            edited = on_source(edit(item.rgb, item.face, only(item.rgb)), item.face)
            if edited is not None:
                drawn[name].append(edited)
                row.append(f"{edited:.3f}")
        print(" ".join(row), flush=True)
    print(
        f"\nreal faces ({len(real)}): {min(real):.4f}-{max(real):.4f}, over the limit "
        f"{sum(v > COLOUR_PATCH_WARN for v in real)}"
    )
    for name, values in drawn.items():
        over = sum(v > COLOUR_PATCH_WARN for v in values)
        print(
            f"{name:36s} {min(values):.4f}-{max(values):.4f} median {np.median(values):.4f},"
            f" over {COLOUR_PATCH_WARN}: {over} of {len(values)}"
        )


if __name__ == "__main__":
    main()
