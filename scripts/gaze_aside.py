"""Where the eyes look: the iris's place between the eye's corners, tried as a ``gaze`` check on
the real faces and on eyes turned aside by an edit, and not adopted (docs/id-photos.md, "Eyes
looking aside").

    .venv/bin/python scripts/gaze_aside.py [--shifts 0,0.03,0.05,-0.05,0.08,-0.08]

Every face of ``../shared/testdata`` and ``../shared/devset`` (or ``FACEFLOW_TESTDATA`` and the
``devset`` folder beside it) with its eyes 40 px or more apart is measured as taken (shift 0) and
with both irises moved sideways by each shift, in eye distances, image-right positive
(``counter_edits.looking_aside``: the iris lifted out, the sclera filled in, the iris laid down
again inside the eye's opening), the face found again on the edited photo. Each eye: dlib's two
corners (``FaceAligner.eye_corners``, which the levelling already runs; the compliance report
does not get them), a box ±0.4 eye distances across, 0.2 above to 0.25 below YuNet's point,
resampled to ``SCALE_PX`` between the eyes, catchlights opened away; the iris is where a disc
0.07 eye distances in radius is darkest against the mean of the two places 0.13 either side,
within 0.3 of the corners' distance of their middle across and 0.07 eye distances of it up or
down. The reading is the iris's offset from the corners' middle, in eye distances; the gaze is
the smaller of the two eyes' offsets where both lie the same way (0 where they disagree: one eye
alone off is the finder's miss, not a look). One JSON line a face and shift, then the ranges and
the counts over each bound. Several minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from counter_edits import looking_aside
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.environment import TESTDATA
from tests.pipeline.idphoto.verdict_cases import levelled_faces, no_photo, real_photos

from faceflow.config import LimitSettings, Settings
from faceflow.domain import Face
from faceflow.imaging.ingest import decode_image
from faceflow.models.aligner import FaceAligner
from faceflow.runtime.context import load_context

SCALE_PX = 100.0
BOUNDS = (0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.13)


def offsets(rgb: NDArray[np.uint8], face: Face, aligner: FaceAligner) -> dict[str, float] | None:
    """Each eye's iris offset from its corners' middle (``r``, ``l``) and the nose's from the
    eyes' middle (``nose``, the head's turn as ``yaw`` reads it), in eye distances; None where an
    eye's box leaves the photo."""
    marks = face.landmarks
    distance = marks.left_eye.x - marks.right_eye.x
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    k = SCALE_PX / distance
    corners = aligner.eye_corners(rgb, marks)
    order = np.argsort(corners[:, 0])
    pairs = (corners[order[:2]], corners[order[2:]])  # the image-left eye (right eye) first
    out: dict[str, float] = {}
    for name, eye, pair in (("r", marks.right_eye, pairs[0]), ("l", marks.left_eye, pairs[1])):
        x1, x2 = round(eye.x - 0.4 * distance), round(eye.x + 0.4 * distance)
        y1, y2 = round(eye.y - 0.2 * distance), round(eye.y + 0.25 * distance)
        if x1 < 0 or y1 < 0 or x2 > grey.shape[1] or y2 > grey.shape[0]:
            return None
        interpolation = cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR
        box = cv2.resize(grey[y1:y2, x1:x2], None, fx=k, fy=k, interpolation=interpolation)
        box = cv2.morphologyEx(
            box, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        )
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (15, 15)).astype(np.float32)
        mean = cv2.filter2D(box, -1, disc / disc.sum(), borderType=cv2.BORDER_REPLICATE)
        middle = pair.mean(axis=0)
        width = abs(pair[1, 0] - pair[0, 0]) * k
        mx, my = (middle[0] - x1) * k, (middle[1] - y1) * k
        ys, xs = np.mgrid[0 : box.shape[0], 0 : box.shape[1]]
        near = (np.abs(xs - mx) <= 0.3 * width) & (np.abs(ys - my) <= 7)
        score = (np.roll(mean, 13, axis=1) + np.roll(mean, -13, axis=1)) / 2 - mean
        _, column = np.unravel_index(np.argmax(np.where(near, score, -np.inf)), mean.shape)
        out[name] = float((column - mx) / SCALE_PX)
    out["nose"] = (marks.nose.x - (marks.right_eye.x + marks.left_eye.x) / 2) / distance
    return out


def gaze(reading: dict[str, float]) -> float:
    """The smaller offset where both eyes lie the same way, else 0."""
    right, left = reading["r"], reading["l"]
    if np.sign(right) != np.sign(left):
        return 0.0
    return float(np.sign(right) * min(abs(right), abs(left)))


def nearest(found: list[Face], face: Face) -> Face:
    """The face of ``found`` whose nose lies nearest ``face``'s."""
    nose = face.landmarks.nose
    return min(
        found, key=lambda f: abs(f.landmarks.nose.x - nose.x) + abs(f.landmarks.nose.y - nose.y)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shifts", default="0,0.03,0.05,-0.05,0.08,-0.08")
    args = parser.parse_args()
    shifts = [float(s) for s in args.shifts.split(",")]
    cv2.setNumThreads(1)
    models = load_context(Settings().model_dump_json()).models
    limits = LimitSettings()
    rows: list[dict[str, Any]] = []
    for path in real_photos(TESTDATA):
        rgb = decode_image(path.read_bytes(), limits).rgb
        for index, face in enumerate(levelled_faces(rgb, models)):
            if face.landmarks.left_eye.x - face.landmarks.right_eye.x < 40:
                continue
            for shift in shifts:
                edited, found = rgb, face
                if shift:
                    edited = looking_aside(shift)(rgb, face, no_photo)
                    again = levelled_faces(edited, models)
                    if not again:
                        continue
                    found = nearest(again, face)
                reading = offsets(edited, found, models.aligner)
                if reading is None:
                    continue
                row: dict[str, Any] = {**reading, "name": path.stem, "face": index}
                row.update(shift=shift, gaze=gaze(reading))
                rows.append(row)
                print(json.dumps(row), flush=True)
    for shift in shifts:
        signed = np.array([r["gaze"] for r in rows if r["shift"] == shift])
        # An edit is seen only when read the way it turned the eyes; a real face either way.
        values = signed * np.sign(shift) if shift else np.abs(signed)
        over = ", ".join(f"> {b}: {int((values > b).sum())}" for b in BOUNDS)
        print(
            f"shift {shift:+.2f}: {len(values)} faces, gaze {signed.min():+.3f}–{signed.max():+.3f}"
            f" (median {np.median(signed):+.3f}); {over}"
        )


if __name__ == "__main__":
    main()
