"""A measure tried for a hand resting against the face (not a check: it did not separate real
faces from drawn hands well enough): the share of skin like the cheeks' beside the jaw, outside the
face's outline, on every real face and on hands drawn against the face.

    .venv/bin/python scripts/hand_beside_face.py [--save DIR]

Every face of ``../shared/testdata`` and ``../shared/devset`` (or ``FACEFLOW_TESTDATA`` and the
``devset`` folder beside it) is cut out as the service does it and measured. Then on photos of
one person, a hand of each of ``verdict_cases.HAND_POSES`` is drawn on either side
(``verdict_cases.hand_on_face``), the photo's face found again and cut out, and measured.
``--save`` writes each hand's photo around the face as PNG, to be looked at. A few minutes.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.environment import TESTDATA
from tests.pipeline.idphoto.verdict_cases import (
    HAND_POSES,
    cut_out,
    hand_on_face,
    levelled_faces,
    no_photo,
    real_faces,
)

from faceflow.config import LimitSettings, Settings
from faceflow.domain import Face, Point
from faceflow.imaging.ingest import decode_image
from faceflow.pipeline.idphoto.compliance.regions import cie, eye_distance_px, matte_box
from faceflow.pipeline.idphoto.matte import Matte, compute_matte
from faceflow.runtime.context import load_context

Rgb = NDArray[np.uint8]

PHOTOS = (
    "portrait_1.jpg",
    "portrait_2.jpg",
    "obama.jpg",
    "biden.jpg",
    "rose_leslie.jpg",
    "df_img7.jpg",
    "df_img13.jpg",
    "df_img14.jpg",
    "df_img15.jpg",
    "df_img18.jpg",
    "df_img25.jpg",
    "df_img33.jpg",
)


# Where a hand resting on the cheek, the jaw or the chin shows, if anywhere: its palm and wrist
# reach out of the face's outline beside the jaw, where a face has only the backdrop, hair, a
# collar or the neck's edge. That zone, either side: 0.9-1.6 eye distances out from the face's
# middle, 1.1-1.8 below the eye line (below the ears and earrings, beside the neck). The measure is
# the share of it that is skin: opaque, of the cheeks' colour (a*b* within HAND_SKIN_AB, lightness
# HAND_SKIN_LIGHT × the cheeks') and no more textured than they are (the local spread of lightness
# over 0.03 eye distances under HAND_SKIN_DETAIL × the smoother cheek's median: blonde or auburn
# hair has the skin's colour but is strands). The higher side counts; the skin of other faces of
# the photo (their boxes widened by half and carried down over their necks) is left out. WARN is
# the limit tried: the figures are in docs/id-photos.md ("A hand against the face").
WARN = 0.25

HAND_ZONE_OUT = (0.9, 1.6)

HAND_ZONE_DOWN = (1.1, 1.8)

HAND_SKIN_AB = 12.0

HAND_SKIN_LIGHT = (0.55, 1.25)

HAND_SKIN_DETAIL = 1.25

HAND_DETAIL_SCALE = 0.03

# The cheeks the skin is compared with: 0.35-0.55 eye distances below the eyes, ±0.1 across.
HAND_CHEEK_DOWN = 0.45


def _detail(light: NDArray[np.float32], sigma: float) -> NDArray[np.float32]:
    """The local standard deviation of ``light`` over a Gaussian window of ``sigma`` px."""
    mean = cv2.GaussianBlur(light, (0, 0), sigma)
    square = cv2.GaussianBlur(light * light, (0, 0), sigma)
    return np.sqrt(np.maximum(0.0, square - mean * mean)).astype(np.float32)


def _others(matte: Matte, rows: slice, cols: slice) -> NDArray[np.bool_]:
    """Where in the box other faces of the photo lie, with their necks: their boxes widened by
    half either side and carried down by one and a half box heights."""
    taken = np.zeros((rows.stop - rows.start, cols.stop - cols.start), dtype=bool)
    for other in matte.others:
        box = other.box
        top_left = matte.to_matte_px(Point(box.x1 - 0.5 * box.width_px, box.y1))
        bottom_right = matte.to_matte_px(
            Point(box.x2 + 0.5 * box.width_px, box.y2 + 1.5 * box.height_px)
        )
        y1, y2 = (
            max(0, int(top_left.y) - rows.start),
            max(0, math.ceil(bottom_right.y) - rows.start),
        )
        x1, x2 = (
            max(0, int(top_left.x) - cols.start),
            max(0, math.ceil(bottom_right.x) - cols.start),
        )
        taken[y1:y2, x1:x2] = True
    return taken


def hand_beside_face(matte: Matte, face: Face, distance: float) -> float | None:
    """The share of the zone beside the jaw that is skin like the cheeks', the higher side (see
    :data:`WARN`); None when the cheeks or both zones are outside the cut-out."""
    marks = face.landmarks
    middle = marks.eye_centre
    # One box over the cheeks and both zones: its Lab and detail are computed once.
    half_w = HAND_ZONE_OUT[1] * distance
    top, bottom = 0.35, HAND_ZONE_DOWN[1]
    centre = Point(middle.x, middle.y + (top + bottom) / 2 * distance)
    rows, cols = matte_box(matte, centre, half_w, (bottom - top) / 2 * distance)
    pixels = matte.foreground[rows, cols]
    if pixels.shape[0] < 3 or pixels.shape[1] < 3:
        return None
    lab = cie(cv2.cvtColor(pixels, cv2.COLOR_RGB2LAB).astype(np.float32))
    sigma = max(1.0, HAND_DETAIL_SCALE * distance / matte.source_px_per_matte_px)
    detail = _detail(np.ascontiguousarray(lab[..., 0]), sigma)
    alpha = matte.alpha[rows, cols]
    k = matte.source_px_per_matte_px
    ys = (rows.start + np.arange(pixels.shape[0])) * k + matte.crop_box.y1
    xs = (cols.start + np.arange(pixels.shape[1])) * k + matte.crop_box.x1
    down = ((ys - middle.y) / distance)[:, None]
    across = ((xs - middle.x) / distance)[None, :]
    cheek_rows = np.abs(down - HAND_CHEEK_DOWN) <= 0.1
    sides = []
    for eye in (marks.right_eye, marks.left_eye):
        near = np.abs((xs - eye.x) / distance) <= 0.1
        sides.append(cheek_rows & near[None, :] & (alpha >= 0.5))
    cheeks = sides[0] | sides[1]
    if not all(side.any() for side in sides):
        return None
    skin = np.median(lab[cheeks], axis=0)
    # The smoother cheek's detail: a smile's crease or a mole on one raises its median.
    skin_detail = max(0.3, min(float(np.median(detail[side])) for side in sides))
    like_skin = (
        (alpha >= 0.5)
        & (np.hypot(lab[..., 1] - skin[1], lab[..., 2] - skin[2]) < HAND_SKIN_AB)
        & (lab[..., 0] > HAND_SKIN_LIGHT[0] * skin[0])
        & (lab[..., 0] < HAND_SKIN_LIGHT[1] * skin[0])
        & (detail < HAND_SKIN_DETAIL * skin_detail)
        & ~_others(matte, rows, cols)
    )
    band = (down >= HAND_ZONE_DOWN[0]) & (down <= HAND_ZONE_DOWN[1])
    out = (np.abs(across) >= HAND_ZONE_OUT[0]) & (np.abs(across) <= HAND_ZONE_OUT[1])
    shares = []
    for side in (-1.0, 1.0):
        zone = band & out & (np.sign(across) == side)
        # A zone mostly outside the photo is not judged: its few pixels prove nothing.
        if zone.sum() >= 0.5 * zone_size(distance, k):
            shares.append(float(like_skin[zone].mean()))
    return max(shares) if shares else None


def zone_size(distance: float, source_px_per_matte_px: float) -> float:
    """The pixels of one side's zone when the whole of it lies in the matte."""
    span = (HAND_ZONE_OUT[1] - HAND_ZONE_OUT[0]) * (HAND_ZONE_DOWN[1] - HAND_ZONE_DOWN[0])
    return span * (distance / source_px_per_matte_px) ** 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save", type=Path, help="a folder for the drawn hands (PNG)")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    models = load_context(Settings().model_dump_json()).models
    limits = LimitSettings()

    real: list[tuple[float, str]] = []
    for real_face in real_faces(TESTDATA, models):
        matte = real_face.matte
        found = levelled_faces(real_face.rgb, models)
        if len(found) > 1:
            # The service passes the photo's other faces to the cut-out; the measure leaves
            # their skin out.
            others = [other for other in found if other.box != real_face.face.box]
            matte = compute_matte(real_face.rgb, real_face.face, models.segmenter, others=others)
        value = hand_beside_face(matte, real_face.face, eye_distance_px(real_face.face))
        print(f"  real {real_face.path.name:32s} {'-' if value is None else f'{value:.2f}'}")
        if value is not None:
            real.append((value, real_face.path.name))
    real.sort(reverse=True)
    print(
        f"real faces: {len(real)} measured, {real[-1][0]:.2f}–{real[0][0]:.2f}, median "
        f"{statistics.median(value for value, _ in real):.2f}; over {WARN:g}: "
        f"{', '.join(name for value, name in real if value > WARN) or 'none'}"
    )
    print("  highest: " + ", ".join(f"{value:.2f} {name}" for value, name in real[:8]))

    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
    seen: dict[str, list[int]] = {pose: [0, 0] for pose in HAND_POSES}
    for name in PHOTOS:
        path = TESTDATA / name
        if not path.exists():
            path = TESTDATA.parent / "devset" / name
        rgb = decode_image(path.read_bytes(), limits).rgb
        taken = levelled_faces(rgb, models)
        if len(taken) != 1:
            continue
        face = taken[0]
        for pose in HAND_POSES:
            for side in ("right", "left"):
                edited = hand_on_face(pose, side)(rgb, face, no_photo)
                again = levelled_faces(edited, models)
                label = f"{name} {pose} {side}"
                if len(again) != 1:
                    print(f"  hand {label:36s} {len(again)} faces found")
                    continue
                levelled = again[0]
                cut = cut_out(edited, levelled, models.segmenter)
                if cut is None:
                    continue
                matte = cut
                value = hand_beside_face(matte, levelled, eye_distance_px(levelled)) or 0.0
                warned = value > WARN
                seen[pose][0] += 1
                seen[pose][1] += int(warned)
                print(
                    f"  hand {label:36s} {value:.2f} {'seen' if warned else 'NOT SEEN'}", flush=True
                )
                if args.save:
                    distance = eye_distance_px(levelled)
                    centre = levelled.landmarks.nose
                    half = round(2.2 * distance)
                    y, x = round(centre.y), round(centre.x)
                    crop = edited[max(0, y - half) : y + half, max(0, x - half) : x + half]
                    Image.fromarray(np.ascontiguousarray(crop)).save(
                        args.save / f"{label.replace(' ', '_')}.png"
                    )
    for pose, (drawn, over) in seen.items():
        print(f"{pose}: drawn and found {drawn}, over {WARN:g}: {over}")


if __name__ == "__main__":
    main()
