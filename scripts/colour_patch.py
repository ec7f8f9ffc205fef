"""The figures behind ``face_occluded``'s colour patch (a sticker, an emoji or paint laid over the
face: faceflow/pipeline/idphoto/compliance/overlays.py): its reading on every real face of the
test and dev-set photos, cut out as the service does it, and on each with something drawn on it.

    .venv/bin/python scripts/colour_patch.py

Every face with eyes 40 px or more apart is read on its matte as the report reads it, then its
source is edited (``scripts/counter_edits.py``'s stickers, face paint, tattoo, dyed hair and
make-up; coloured and dark glasses frames, ``verdict_cases._glasses``; a turban and hijabs in seven
colours no skin has, ``verdict_cases.hijab``) and the same zone read on the edited source (the
matte's foreground is the photo where the person is opaque; the source is taken as the person
throughout, so only the region's edge tells cloth from a patch). Prints every face's readings,
then each edit's range and how many go over the limit. About nine minutes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from counter_edits import EDITS, SECOND_ROUND
from tests.fixtures.environment import TESTDATA
from tests.pipeline.idphoto.verdict_cases import (
    Edit,
    _glasses,
    clear_glasses,
    hijab,
    only,
    real_faces,
    turban,
)

from faceflow.config import Settings
from faceflow.domain import Face, Point
from faceflow.pipeline.idphoto.compliance.overlays import (
    COLOUR_PATCH_AROUND,
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
    "a saffron turban (fine)": turban((235, 140, 30)),
}
# Cloth framing the face in a colour no skin has: ICAO takes a religious head covering.
HIJABS = {
    "red": (200, 30, 40),
    "pink": (230, 80, 160),
    "green": (40, 160, 60),
    "yellow": (240, 200, 40),
    "teal": (20, 150, 160),
    "orange": (240, 120, 20),
    "purple": (110, 40, 150),
}
DRAWN |= {
    f"a hijab in {colour}{to} (fine)": hijab(rgb, forehead, width)
    for colour, rgb in HIJABS.items()
    for forehead, width, to in (
        (1.05, 1.0, ""),
        (0.8, 1.0, " to the brows"),
        (0.8, 0.85, ", pinned close"),
    )
}


def on_source(rgb: Rgb, face: Face) -> float | None:
    """The colour patch read on a source photo, over the zone :func:`colour_patch` reads and
    the region around it it follows a patch into (the whole region taken as the person's)."""
    marks = face.landmarks
    d = eye_distance_px(face)
    y1 = round(min(marks.right_eye.y, marks.left_eye.y) - 0.1 * d)
    x1 = round(marks.right_eye.x - 0.2 * d)
    y2, x2 = round(marks.mouth_centre.y + 0.1 * d), round(marks.left_eye.x + 0.2 * d)
    around = round(COLOUR_PATCH_AROUND * d)
    ox1, oy1 = max(0, x1 - around), max(0, y1 - around)
    ox2, oy2 = min(rgb.shape[1], x2 + around), min(rgb.shape[0], y2 + around)
    points = tuple(
        Point(p.x - ox1, p.y - oy1) for p in (marks.right_eye, marks.left_eye, marks.mouth_centre)
    )
    region = np.ascontiguousarray(rgb[oy1:oy2, ox1:ox2])
    zone = (x1 - ox1, y1 - oy1, x2 - ox1, y2 - oy1)
    return colour_patch_share(region, np.ones(region.shape[:2], bool), zone, points, d)


def edited(edit: Edit, rgb: Rgb, face: Face) -> Rgb:
    """``rgb`` edited by ``edit``, the rows a head covering's edit adds above (room over it) cut
    off again, so ``face`` still places it."""
    out = edit(rgb, face, only(rgb))
    return out[out.shape[0] - rgb.shape[0] :]


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
            reading = on_source(edited(edit, item.rgb, item.face), item.face)
            if reading is not None:
                drawn[name].append(reading)
                row.append(f"{reading:.3f}")
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
