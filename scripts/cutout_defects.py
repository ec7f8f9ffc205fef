"""Cut-out defects on the ID-photo path: real portraits laid before new walls, made ICAO photos,
with the verdict each gets: the figures behind the note in docs/id-photos.md that objects of the
old background kept beside the head are not judged yet.

    .venv/bin/python scripts/cutout_defects.py [--save DIR]

Each person is cut out of the original with the service's own matte and laid over a plain wall
(skin-coloured, near black, white, ...), or over their own wall with an object touching the hair
(a dark disc, a door frame). The new photo is then detected, cut out and made an ICAO photo as
the service makes it; printed are its verdict, the checks that did not pass and the longest hard
run of the cut-out's outline beside the head (:func:`hard_edge`, a measure tried and dropped).
``--save`` writes each finished photo as PNG, to be looked at. The same measure is printed for
every real face of the test and dev-set photos.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.environment import TESTDATA
from tests.pipeline.idphoto.verdict_cases import real_photos

from faceflow.config import LimitSettings, Settings
from faceflow.domain import Face, Point
from faceflow.errors import NoSubject
from faceflow.imaging.ingest import decode_image
from faceflow.models.registry import ModelSet
from faceflow.pipeline.detect import detect_faces
from faceflow.pipeline.detect_options import DetectOptions
from faceflow.pipeline.idphoto.level import levelled_face
from faceflow.pipeline.idphoto.matte import Matte, compute_matte, face_ellipse
from faceflow.pipeline.idphoto.options import IdPhotoOptions
from faceflow.pipeline.idphoto.render import render_id_photo
from faceflow.pipeline.idphoto.specs import get_spec
from faceflow.runtime.context import load_context

Rgb = NDArray[np.uint8]
# A new background for a photo, given the photo and the face on it.
Wall = Callable[[Rgb, Face, NDArray[np.float32]], NDArray[np.float32]]

# How close to clear an opaque outline pixel must lie to count as a hard edge, as a share of the
# matte's long side (the guided filter softens every edge over about 1/160 of it).
HARD_REACH = 1 / 320


def plain(colour: tuple[int, int, int]) -> Wall:
    def wall(rgb: Rgb, face: Face, alpha: NDArray[np.float32]) -> NDArray[np.float32]:
        return np.zeros(rgb.shape, np.float32) + np.array(colour, np.float32)

    return wall


def _hair_left(face: Face, alpha: NDArray[np.float32]) -> tuple[int, int]:
    """The leftmost column of the person on the eye row, and that row."""
    row = round((face.landmarks.left_eye.y + face.landmarks.right_eye.y) / 2)
    return int(np.nonzero(alpha[row] > 0.5)[0].min()), row


def disc(colour: tuple[int, int, int], radius: int) -> Wall:
    """Their own wall with a disc touching the hair, left of the head, above the eyes."""

    def wall(rgb: Rgb, face: Face, alpha: NDArray[np.float32]) -> NDArray[np.float32]:
        left, row = _hair_left(face, alpha)
        back = rgb.astype(np.float32)
        cv2.circle(back, (left - radius + 15, row - 60), radius, colour, -1)
        return back

    return wall


def door_frame(colour: tuple[int, int, int], width: int) -> Wall:
    """Their own wall with an upright frame whose inner edge lies just under the hair's."""

    def wall(rgb: Rgb, face: Face, alpha: NDArray[np.float32]) -> NDArray[np.float32]:
        left, _ = _hair_left(face, alpha)
        back = rgb.astype(np.float32)
        back[:, max(0, left - width + 10) : left + 10] = colour
        return back

    return wall


EXPERIMENTS: tuple[tuple[str, str, Wall], ...] = (
    ("portrait_2 on beige", "portrait_2.jpg", plain((226, 200, 178))),
    ("portrait_2 on skin colour", "portrait_2.jpg", plain((235, 200, 180))),
    ("portrait_2 on near black", "portrait_2.jpg", plain((35, 32, 34))),
    ("portrait_2 on white", "portrait_2.jpg", plain((245, 245, 245))),
    ("portrait_2, a black disc at the hair", "portrait_2.jpg", disc((30, 30, 30), 45)),
    ("portrait_2, a red disc at the hair", "portrait_2.jpg", disc((200, 40, 40), 45)),
    ("portrait_2, a dark door frame", "portrait_2.jpg", door_frame((40, 35, 30), 40)),
    ("portrait_2, a brown door frame", "portrait_2.jpg", door_frame((110, 75, 45), 40)),
    ("portrait_2, a white door frame", "portrait_2.jpg", door_frame((250, 250, 248), 40)),
    ("df_img14 on skin colour", "df_img14.jpg", plain((225, 190, 165))),
    ("df_img14 on near black", "df_img14.jpg", plain((40, 35, 32))),
    ("df_img25 on skin colour", "df_img25.jpg", plain((225, 190, 165))),
    ("df_img25 on near black", "df_img25.jpg", plain((40, 35, 32))),
    ("rose_leslie on auburn", "rose_leslie.jpg", plain((150, 80, 45))),
    ("rose_leslie on cream", "rose_leslie.jpg", plain((235, 215, 195))),
    ("df_img35 on white", "df_img35.jpg", plain((240, 240, 240))),
    ("df_img35 on grey", "df_img35.jpg", plain((200, 200, 200))),
)


def hard_edge(matte: Matte) -> float:
    """The longest run of the outline above the chin and outside the face that is opaque
    (α ≥ 0.95) within a few pixels of clear (α ≤ 0.05), in eye distances: a solid object's
    edge is hard, hair's mostly soft."""
    face, alpha = matte.face, matte.alpha
    chin = max(0, min(alpha.shape[0], round(matte.to_matte_px(Point(0.0, face.box.y2)).y)))
    zone = np.zeros(alpha.shape, dtype=bool)
    zone[:chin] = True
    zone &= ~face_ellipse(matte, face)
    reach = max(2, round(max(alpha.shape) * HARD_REACH))
    window = np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)
    near_clear = cv2.dilate((alpha <= 0.05).astype(np.uint8), window) > 0
    hard = (near_clear & (alpha >= 0.95) & zone).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(hard, connectivity=8)
    if count < 2:
        return 0.0
    # A hard edge is a band about ``reach`` pixels deep: its area over that is its length.
    longest = float(stats[1:, cv2.CC_STAT_AREA].max()) / reach
    marks = face.landmarks
    eye_distance = max(1.0, (marks.left_eye.x - marks.right_eye.x) / matte.source_px_per_matte_px)
    return float(longest / eye_distance)


def _share(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else "not measured"


def full_alpha(rgb: Rgb, matte: Matte) -> NDArray[np.float32]:
    """The matte's alpha over the whole photo (0 outside its crop)."""
    box = matte.crop_box
    x1, y1, x2, y2 = int(box.x1), int(box.y1), int(box.x2), int(box.y2)
    inside = cv2.resize(matte.alpha, (x2 - x1, y2 - y1), interpolation=cv2.INTER_LINEAR)
    alpha = np.zeros(rgb.shape[:2], np.float32)
    alpha[y1:y2, x1:x2] = inside
    return alpha


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save", type=Path, help="a folder for the finished photos (PNG)")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    models: ModelSet = load_context(Settings().model_dump_json()).models
    limits = LimitSettings()

    def faces(rgb: Rgb) -> list[Face]:
        found = detect_faces(rgb, models.detector, DetectOptions())
        return [levelled_face(rgb, face, models.aligner) for face in found]

    def load(name: str) -> Rgb:
        path = TESTDATA / name
        if not path.exists():
            path = TESTDATA.parent / "devset" / name
        return decode_image(path.read_bytes(), limits).rgb

    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
    for label, name, wall in EXPERIMENTS:
        rgb = load(name)
        face = faces(rgb)[0]
        alpha = full_alpha(rgb, compute_matte(rgb, face, models.segmenter))[..., None]
        laid = rgb.astype(np.float32) * alpha + wall(rgb, face, alpha[..., 0]) * (1 - alpha)
        photo = np.clip(laid, 0, 255).astype(np.uint8)
        found = faces(photo)
        if len(found) != 1:
            print(f"{label:40s} {len(found)} faces")
            continue
        matte = compute_matte(photo, found[0], models.segmenter)
        result = render_id_photo(matte, found[0], IdPhotoOptions(get_spec("icao")))
        report = result.report
        deciding = ", ".join(
            f"{c.name} ({c.status.value})" for c in report.checks if c.status.value != "pass"
        )
        print(
            f"{label:40s} {report.status.value:5s} backdrop {matte.backdrop}, leftover "
            f"{_share(report.check('leftover_backdrop').value)}, hard edge "
            f"{hard_edge(matte):.2f}; {deciding}",
            flush=True,
        )
        if args.save:
            Image.open(io.BytesIO(result.data)).convert("RGB").save(
                args.save / f"{label.replace(' ', '_')}.png"
            )
    measured: list[tuple[float, str]] = []
    for path in real_photos(TESTDATA):
        rgb = decode_image(path.read_bytes(), limits).rgb
        found = faces(rgb)
        for number, face in enumerate(found):
            others = [other for other in found if other is not face]
            try:
                matte = compute_matte(rgb, face, models.segmenter, others=others)
            except NoSubject:
                continue
            measured.append((hard_edge(matte), f"{path.name}#{number + 1} ({matte.backdrop})"))
    measured.sort()
    print(
        f"hard edge on {len(measured)} real faces: highest "
        + ", ".join(f"{value:.2f} {name}" for value, name in measured[-5:])
    )


if __name__ == "__main__":
    main()
