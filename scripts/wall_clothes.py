"""Clothes and hair the colour of the wall: does the cut-out drop them, and does the report see it?

    .venv/bin/python scripts/wall_clothes.py [--save DIR] [--part I/N] [--limit N]

Every real one-person photo of the test and dev-set photos (``verdict_cases.real_photos``) is cut
out with the service's own matte and laid on a plain wall, its clothes (below the mouth, inside the
cut-out, outside the face's oval, skin left alone) recoloured to the wall's colour with their
shading kept (the wall's a* and b*, the wall's L* plus the clothes' own L* about their median):
white on white, grey on grey, navy on navy; and its hair (above the eyes, inside the cut-out,
outside the face) made near black on a near-black wall. The new photo is detected, cut out and made
an ICAO photo as the service makes it. Printed for each: the verdict, the checks that did not pass,
the share of the original cut-out's opaque area below the chin the new one keeps ("kept"), and the
new crown's height over the original's, in eye distances ("crown"), and the original's opaque area
below the chin in square eye distances ("below"). ``--save`` writes the finished photos with their
reports into DIR, for ``scripts/contact_sheets.py``, and each edited source beside DIR as
``src-<name>.jpg``.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.environment import TESTDATA
from tests.pipeline.idphoto.verdict_cases import real_photos

from faceflow.config import LimitSettings, Settings
from faceflow.domain import Face
from faceflow.errors import NoSubject
from faceflow.imaging.ingest import decode_image
from faceflow.pipeline.detect import detect_faces
from faceflow.pipeline.detect_options import DetectOptions
from faceflow.pipeline.idphoto.level import levelled_face
from faceflow.pipeline.idphoto.matte import Matte, compute_matte
from faceflow.pipeline.idphoto.options import IdPhotoOptions
from faceflow.pipeline.idphoto.render import render_id_photo
from faceflow.pipeline.idphoto.specs import get_spec
from faceflow.runtime.context import load_context

Rgb = NDArray[np.uint8]
Mask = NDArray[np.float32]

# (label, wall colour, which part is recoloured to it)
CASES: tuple[tuple[str, tuple[int, int, int], str], ...] = (
    ("white on white", (240, 240, 238), "clothes"),
    ("grey on grey", (150, 150, 150), "clothes"),
    ("navy on navy", (35, 45, 80), "clothes"),
    ("dark hair on near black", (25, 24, 26), "hair"),
)


def lab(rgb: NDArray[np.float32]) -> NDArray[np.float32]:
    return np.asarray(cv2.cvtColor(rgb / 255.0, cv2.COLOR_RGB2Lab), np.float32)


def skin_share(rgb: Rgb, face: Face) -> Mask:
    """How near each pixel is to the face's median colour, its lightness counted a third (a
    neck in shadow is skin): 1 within 10, 0 beyond 18."""
    box = face.box
    x1, x2 = round(box.x1 + 0.25 * box.width_px), round(box.x2 - 0.25 * box.width_px)
    y1, y2 = round(box.y1 + 0.35 * box.height_px), round(box.y2 - 0.2 * box.height_px)
    pixels = lab(rgb.astype(np.float32))
    median = np.median(pixels[y1:y2, x1:x2].reshape(-1, 3), axis=0)
    offset = pixels - median
    offset[..., 0] /= 3.0
    distance = np.linalg.norm(offset, axis=2)
    return np.asarray(np.clip((18.0 - distance) / 8.0, 0.0, 1.0), np.float32)


def part_mask(rgb: Rgb, face: Face, alpha: Mask, part: str) -> Mask:
    """The clothes (below the mouth) or the hair (above the eyes), outside the face's oval,
    inside the cut-out, skin left out."""
    zone = np.zeros(alpha.shape, np.float32)
    marks, box = face.landmarks, face.box
    if part == "clothes":
        # From the mouth down: a collar rises beside the jaw above the chin.
        zone[round((marks.mouth_left.y + marks.mouth_right.y) / 2) :] = 1.0
    else:
        zone[: round((marks.left_eye.y + marks.right_eye.y) / 2)] = 1.0
    centre = (round((box.x1 + box.x2) / 2), round((box.y1 + box.y2) / 2))
    axes = (round(box.width_px * 0.45), round(box.height_px * 0.5))
    cv2.ellipse(zone, centre, axes, 0, 0, 360, 0.0, -1)
    return zone * alpha * (1.0 - skin_share(rgb, face))


def recoloured(rgb: Rgb, mask: Mask, colour: tuple[int, int, int]) -> Rgb:
    """``rgb`` where ``mask`` says, made ``colour`` with its shading kept: the wall's a* b*, the
    wall's L* plus each pixel's L* about the part's median."""
    pixels = lab(rgb.astype(np.float32))
    wall = lab(np.array([[colour]], np.float32))[0, 0]
    inside = mask > 0.5
    if not inside.any():
        return rgb
    median = float(np.median(pixels[..., 0][inside]))
    new = pixels.copy()
    new[..., 0] = np.clip(wall[0] + (pixels[..., 0] - median), 0, 100)
    new[..., 1], new[..., 2] = wall[1], wall[2]
    back = cv2.cvtColor(new, cv2.COLOR_Lab2RGB) * 255.0
    weight = mask[..., None]
    out = rgb.astype(np.float32) * (1 - weight) + back * weight
    return np.asarray(np.clip(out, 0, 255), np.uint8)


def full_alpha(rgb: Rgb, matte: Matte) -> Mask:
    """The matte's alpha over the whole photo (0 outside its crop), as scripts/cutout_defects.py
    lays it."""
    box = matte.crop_box
    x1, y1, x2, y2 = int(box.x1), int(box.y1), int(box.x2), int(box.y2)
    inside = cv2.resize(matte.alpha, (x2 - x1, y2 - y1), interpolation=cv2.INTER_LINEAR)
    alpha = np.zeros(rgb.shape[:2], np.float32)
    alpha[y1:y2, x1:x2] = inside
    return alpha


def crown_row(alpha: Mask, face: Face) -> int:
    """The topmost opaque row over the face box's middle half."""
    box = face.box
    band = alpha[:, round(box.x1 + 0.25 * box.width_px) : round(box.x2 - 0.25 * box.width_px)]
    rows = np.nonzero((band > 0.5).any(axis=1))[0]
    return int(rows.min()) if rows.size else round(box.y1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save", type=Path, help="a folder for the finished photos (PNG)")
    parser.add_argument("--part", default="1/1", help="I/N: every N-th photo from the I-th")
    parser.add_argument("--limit", type=int)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    models = load_context(Settings().model_dump_json()).models
    limits = LimitSettings()

    def faces(rgb: Rgb) -> list[Face]:
        found = detect_faces(rgb, models.detector, DetectOptions())
        return [levelled_face(rgb, face, models.aligner) for face in found]

    part, parts = (int(n) for n in args.part.split("/"))
    photos = real_photos(TESTDATA)[part - 1 :: parts][: args.limit]
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
    for path in photos:
        rgb = decode_image(path.read_bytes(), limits).rgb
        found = faces(rgb)
        if len(found) != 1:
            continue
        face = found[0]
        try:
            matte = compute_matte(rgb, face, models.segmenter)
        except NoSubject:
            continue
        alpha = full_alpha(rgb, matte)
        chin = round(face.box.y2)
        eye = face.landmarks.left_eye.x - face.landmarks.right_eye.x
        below = float((alpha[chin:] > 0.5).sum())
        crown = crown_row(alpha, face)
        for label, colour, part_name in CASES:
            mask = part_mask(rgb, face, alpha, part_name)
            person = recoloured(rgb, mask, colour)
            laid = person.astype(np.float32) * alpha[..., None] + np.array(colour, np.float32) * (
                1 - alpha[..., None]
            )
            source = np.asarray(np.clip(laid, 0, 255), np.uint8)
            again = faces(source)
            name = f"{path.stem}-{label.replace(' ', '_')}"
            if len(again) != 1:
                print(f"{name:45s} {len(again)} faces", flush=True)
                continue
            try:
                new = compute_matte(source, again[0], models.segmenter)
            except NoSubject:
                print(f"{name:45s} no subject", flush=True)
                continue
            new_alpha = full_alpha(source, new)
            kept = float((new_alpha[chin:] > 0.5).sum()) / below if below else float("nan")
            lost_crown = (crown_row(new_alpha, again[0]) - crown) / eye
            result = render_id_photo(new, again[0], IdPhotoOptions(get_spec("icao")))
            report = result.report
            deciding = ", ".join(
                f"{c.name} ({c.status.value})" for c in report.checks if c.status.value != "pass"
            )
            print(
                f"{name:45s} {report.status.value:4s} kept {kept:.2f} crown {lost_crown:+.2f}"
                f" below {below / eye**2:.1f}; {deciding}",
                flush=True,
            )
            if args.save:
                Image.open(io.BytesIO(result.data)).convert("RGB").save(
                    args.save / f"{name}.icao.png"
                )
                Image.fromarray(source).save(args.save.parent / f"src-{name}.jpg")
                (args.save / f"{name}.icao.report.json").write_text(
                    json.dumps({"report": report.to_dict()})
                )


if __name__ == "__main__":
    main()
