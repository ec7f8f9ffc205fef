"""A counter clerk's edits: what a real applicant or app does to a photo that a counter refuses,
made on the two real faces whose ICAO photos pass as taken, and the report's verdict on each.

    .venv/bin/python scripts/counter_edits.py [--only NAME] [--save DIR]

portrait_2 (``../shared/testdata``, or ``FACEFLOW_TESTDATA``) and df_img14 (the ``devset``
beside it) are each edited in every way of :data:`EDITS` (a shadow of the head on the wall, a
fringe over the brows, a face on a poster behind, a vignetted wall, a beauty filter, halos of
over-sharpening, make-up's colour cast, a screen's moiré, a dark photo denoised flat, colour
subsampled, the photo mirrored, earphones, a headset, a scarf over the chin, a wide-angle
close-up, light falling across the face), found, levelled and cut out as the service does it,
and made into an ICAO photo (``verdict_cases.judge``). Prints the verdict and the checks that
did not pass; the edits that pass are the report's gaps (docs/id-photos.md, "More edits a
counter refuses"). The lighting edits darken the whole photo, the wall too, as a lamp to one
side does, and again on the person only. ``--save`` writes each edited source as JPEG, to be
looked at. A few minutes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.environment import TESTDATA
from tests.pipeline.idphoto.verdict_cases import (
    Case,
    Edit,
    Rgb,
    _eyes_y,
    _wall_share,
    jpeg,
    judge,
    scarf,
)

from faceflow.config import LimitSettings, Settings
from faceflow.domain import Face
from faceflow.imaging.ingest import decode_image
from faceflow.pipeline.detect import detect_faces
from faceflow.pipeline.detect_options import DetectOptions
from faceflow.pipeline.idphoto.level import levelled_face
from faceflow.runtime.context import load_context

PHOTOS = ("portrait_2.jpg", "../devset/df_img14.jpg")
Photo = Callable[[str], Rgb]
Float = NDArray[np.float32]


def _distance(face: Face) -> float:
    return face.landmarks.left_eye.x - face.landmarks.right_eye.x


def _middle(face: Face) -> float:
    return (face.landmarks.left_eye.x + face.landmarks.right_eye.x) / 2


def _u8(values: NDArray[np.floating[Any]]) -> Rgb:
    return np.asarray(np.clip(values, 0, 255), dtype=np.uint8)


def _face_oval(rgb: Rgb, face: Face) -> Float:
    """The face and a little around it, softly: where a beauty filter or make-up works."""
    mask = np.zeros(rgb.shape[:2], np.float32)
    d = _distance(face)
    centre = (round(_middle(face)), round(_eyes_y(face) + 0.35 * d))
    cv2.ellipse(mask, centre, (round(1.0 * d), round(1.45 * d)), 0, 0, 360, 1.0, -1)
    return np.asarray(cv2.GaussianBlur(mask, (0, 0), 0.1 * d), dtype=np.float32)


def head_shadow(rgb: Rgb, face: Face, _: Photo) -> Rgb:
    """The person's shadow on the wall behind, 0.6 eye distances to the side, 45 % deep."""
    wall = _wall_share(rgb)
    d = _distance(face)
    shift = np.array([[1, 0, 0.6 * d], [0, 1, 0.1 * d]], np.float32)
    shadow = cv2.warpAffine(1.0 - wall, shift, (rgb.shape[1], rgb.shape[0]))
    shadow = cv2.GaussianBlur(shadow, (0, 0), 0.15 * d)
    return _u8(rgb.astype(np.float32) * (1 - 0.45 * shadow * wall)[..., None])


def fringe_to(bottom: float) -> Edit:
    """A fringe of the person's own hair colour ending ``bottom`` eye distances above the eyes
    (the verdict set's fringe ends at 0.5, the brows in view)."""

    def edit(rgb: Rgb, face: Face, _: Photo) -> Rgb:
        out = rgb.copy()
        d, middle, eyes = _distance(face), _middle(face), _eyes_y(face)
        r = round(0.1 * d)
        sides = [
            rgb[round(eyes) - r : round(eyes) + r, round(x) - r : round(x) + r].reshape(-1, 3)
            for x in (middle - 1.15 * d, middle + 1.15 * d)
        ]
        hair = min((np.median(side, axis=0) for side in sides), key=lambda c: float(c.sum()))
        mask = np.zeros(rgb.shape[:2], np.uint8)
        axes = (round(1.15 * d), round(1.5 * d))
        cv2.ellipse(mask, (round(middle), round(eyes - bottom * d)), axes, 0, 180, 360, 255, -1)
        strands = _u8(np.random.default_rng(2).normal(0, 6, rgb.shape) + hair)
        out[mask > 0] = strands[mask > 0]
        return out

    return edit


def poster_face(rgb: Rgb, face: Face, photo: Photo) -> Rgb:
    """obama.jpg as a poster on the wall beside the head, his face a little smaller."""
    d = _distance(face)
    small = cv2.resize(photo("obama.jpg"), None, fx=0.9 * d / 110, fy=0.9 * d / 110)
    height, width = rgb.shape[:2]
    x0 = max(0, round(face.box.x1 - 0.2 * d - small.shape[1]))
    y0 = max(0, round(face.box.y1 - 0.5 * d))
    h, w = min(small.shape[0], height - y0), min(small.shape[1], width - x0)
    wall = _wall_share(rgb)[y0 : y0 + h, x0 : x0 + w, None]
    out = rgb.copy()
    under = out[y0 : y0 + h, x0 : x0 + w].astype(np.float32)
    out[y0 : y0 + h, x0 : x0 + w] = _u8(under * (1 - wall) + small[:h, :w] * wall)
    return out


def person_behind(rgb: Rgb, face: Face, _: Photo) -> Rgb:
    """The photo itself at 55 % standing behind the person, to the image-right."""
    d = _distance(face)
    small = np.asarray(
        cv2.resize(rgb, None, fx=0.55, fy=0.55, interpolation=cv2.INTER_AREA), dtype=np.uint8
    )
    h, w = small.shape[:2]
    x0 = min(round(face.box.x2 + 0.1 * d - 0.25 * w), rgb.shape[1] - w)
    y0 = round(0.05 * rgb.shape[0])
    keep = ((1 - _wall_share(small)) * _wall_share(rgb)[y0 : y0 + h, x0 : x0 + w])[..., None]
    out = rgb.copy()
    under = out[y0 : y0 + h, x0 : x0 + w].astype(np.float32)
    out[y0 : y0 + h, x0 : x0 + w] = _u8(under * (1 - keep) + small * keep)
    return out


def vignette(strength: float) -> Edit:
    def edit(rgb: Rgb, face: Face, _: Photo) -> Rgb:
        h, w = rgb.shape[:2]
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        r2 = (((x - w / 2) / (w / 2)) ** 2 + ((y - h / 2) / (h / 2)) ** 2) / 2
        return _u8(rgb.astype(np.float32) * (1 - strength * r2)[..., None])

    return edit


def gradient(strength: float) -> Edit:
    def edit(rgb: Rgb, face: Face, _: Photo) -> Rgb:
        gain = 1 - strength * np.linspace(0, 1, rgb.shape[1], dtype=np.float32)
        return _u8(rgb.astype(np.float32) * gain[None, :, None])

    return edit


def beauty_bilateral(rgb: Rgb, face: Face, _: Photo) -> Rgb:
    """A beauty app's smoothing: three bilateral passes over the face (edges kept, skin's fine
    texture gone), a touch brighter."""
    smooth = rgb
    for _pass in range(3):
        smooth = np.asarray(
            cv2.bilateralFilter(smooth, 0, 40, max(2.0, 0.06 * _distance(face))), dtype=np.uint8
        )
    mask = _face_oval(rgb, face)[..., None]
    out = rgb.astype(np.float32) * (1 - mask) + smooth.astype(np.float32) * mask
    return _u8(out * (1 + 0.06 * mask))


def beauty_guided(rgb: Rgb, face: Face, _: Photo) -> Rgb:
    """Skin smoothing by a guided filter (ε 0.01, radius 0.08 eye distances) over the face."""
    r = max(2, round(0.08 * _distance(face)))
    x = rgb.astype(np.float32) / 255

    def mean(a: NDArray[np.floating[Any]]) -> Float:
        return np.asarray(cv2.boxFilter(a, -1, (2 * r + 1, 2 * r + 1)), dtype=np.float32)

    mx = mean(x)
    a = (mean(x * x) - mx * mx) / (mean(x * x) - mx * mx + 0.01)
    smooth = mean(a) * x + mean(mx - a * mx)
    mask = _face_oval(rgb, face)[..., None]
    return _u8((x * (1 - mask) + smooth * mask) * 255)


def oversharpened(amount: float, radius: float) -> Edit:
    def edit(rgb: Rgb, face: Face, _: Photo) -> Rgb:
        values = rgb.astype(np.float32)
        return _u8(values + amount * (values - cv2.GaussianBlur(values, (0, 0), radius)))

    return edit


def make_up(gains: tuple[float, float, float]) -> Edit:
    """Foundation or blush of another colour over the face: each channel scaled there."""

    def edit(rgb: Rgb, face: Face, _: Photo) -> Rgb:
        mask = _face_oval(rgb, face)[..., None]
        tinted = rgb.astype(np.float32) * np.array(gains, np.float32)
        return _u8(rgb.astype(np.float32) * (1 - mask) + tinted * mask)

    return edit


def moire(amplitude: float, period: float, degrees: float) -> Edit:
    """A photo of a screen or a print: two crossed gratings beating against the pixels."""

    def edit(rgb: Rgb, face: Face, _: Photo) -> Rgb:
        y, x = np.mgrid[0 : rgb.shape[0], 0 : rgb.shape[1]].astype(np.float32)
        a = np.deg2rad(degrees)
        u, v = x * np.cos(a) + y * np.sin(a), -x * np.sin(a) + y * np.cos(a)
        pattern = 0.5 * (np.sin(2 * np.pi * u / period) + np.sin(2 * np.pi * v / (1.07 * period)))
        return _u8(rgb.astype(np.float32) * (1 + amplitude * pattern)[..., None])

    return edit


def denoised_low_light(rgb: Rgb, face: Face, _: Photo) -> Rgb:
    """A phone's night shot: 35 % of the light, grain of σ 6, non-local-means denoised hard and
    brightened back: flat, plastic skin."""
    dark = rgb.astype(np.float32) * 0.35
    noisy = _u8(dark + np.random.default_rng(0).normal(0, 6, rgb.shape))
    flat = cv2.fastNlMeansDenoisingColored(noisy, None, 12, 12, 7, 21)
    return _u8(flat.astype(np.float32) / 0.35)


def chroma_subsampled(factor: int, quality: int) -> Edit:
    """The colour kept at 1/``factor`` of the resolution in blocks (a chat app's copy), then
    saved as JPEG at ``quality`` if given."""

    def edit(rgb: Rgb, face: Face, photo: Photo) -> Rgb:
        ycc = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)
        h, w = rgb.shape[:2]
        for channel in (1, 2):
            small = cv2.resize(
                ycc[..., channel], (w // factor, h // factor), interpolation=cv2.INTER_AREA
            )
            ycc[..., channel] = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
        out = np.asarray(cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB), dtype=np.uint8)
        return jpeg(quality)(out, face, photo) if quality else out

    return edit


def mirrored(rgb: Rgb, face: Face, _: Photo) -> Rgb:
    """A selfie camera's mirror image: a counter accepts it."""
    return np.ascontiguousarray(rgb[:, ::-1])


def earphones(colour: tuple[int, int, int]) -> Edit:
    """An earbud in each ear, 1.05 eye distances out at the nose's height, its wire down."""

    def edit(rgb: Rgb, face: Face, _: Photo) -> Rgb:
        out = rgb.copy()
        d, middle, eyes = _distance(face), _middle(face), _eyes_y(face)
        for side in (-1, 1):
            x, y = round(middle + side * 1.05 * d), round(eyes + 0.45 * d)
            cv2.ellipse(out, (x, y), (round(0.13 * d), round(0.16 * d)), 0, 0, 360, colour, -1)
            end = (round(x - side * 0.15 * d), round(eyes + 2.6 * d))
            cv2.line(out, (x, y), end, colour, max(2, round(0.03 * d)))
        return out

    return edit


def headset(rgb: Rgb, face: Face, _: Photo) -> Rgb:
    """A black headset: a band over the head, a cup over each ear, a microphone boom."""
    out = rgb.copy()
    d, middle, eyes = _distance(face), _middle(face), _eyes_y(face)
    black = (30, 30, 30)
    axes = (round(1.2 * d), round(1.75 * d))
    cv2.ellipse(out, (round(middle), round(eyes)), axes, 0, 180, 360, black, round(0.08 * d))
    for side in (-1, 1):
        centre = (round(middle + side * 1.18 * d), round(eyes + 0.3 * d))
        cv2.ellipse(out, centre, (round(0.18 * d), round(0.33 * d)), 0, 0, 360, black, -1)
    boom = (
        (round(middle - 1.18 * d), round(eyes + 0.5 * d)),
        (round(middle - 0.4 * d), round(eyes + 1.25 * d)),
    )
    cv2.line(out, *boom, black, max(2, round(0.04 * d)))
    return out


def wide_angle(strength: float) -> Edit:
    """A phone held close: the middle of the face (the nose) magnified against its edges."""

    def edit(rgb: Rgb, face: Face, _: Photo) -> Rgb:
        d = _distance(face)
        cx, cy = face.landmarks.nose.x, face.landmarks.nose.y
        y, x = np.mgrid[0 : rgb.shape[0], 0 : rgb.shape[1]].astype(np.float32)
        pull = 1 - strength * np.exp(-(((x - cx) / (1.5 * d)) ** 2 + ((y - cy) / (1.5 * d)) ** 2))
        map_x, map_y = cx + (x - cx) * pull, cy + (y - cy) * pull
        return np.asarray(
            cv2.remap(rgb, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT),
            dtype=np.uint8,
        )

    return edit


def light_across(depth: float) -> Edit:
    """Light falling by ``depth`` smoothly from one side of the face to the other."""

    def edit(rgb: Rgb, face: Face, _: Photo) -> Rgb:
        d, middle = _distance(face), _middle(face)
        x = np.arange(rgb.shape[1], dtype=np.float32)
        ramp = np.clip((x - (middle - 1.2 * d)) / (2.4 * d), 0, 1)
        return _u8(rgb.astype(np.float32) * (1 - depth * ramp)[None, :, None])

    return edit


def upper_side_shaded(depth: float) -> Edit:
    """One side of the upper face (forehead, eye) shaded by ``depth``, the cheeks lit."""

    def edit(rgb: Rgb, face: Face, _: Photo) -> Rgb:
        d, middle = _distance(face), _middle(face)
        mask = np.zeros(rgb.shape[:2], np.float32)
        mask[: round(_eyes_y(face) + 0.25 * d), round(middle + 0.05 * d) :] = 1
        mask = np.asarray(cv2.GaussianBlur(mask, (0, 0), 0.08 * d), dtype=np.float32)
        return _u8(rgb.astype(np.float32) * (1 - depth * mask)[..., None])

    return edit


def split_light(depth: float) -> Edit:
    """A strip beside the nose, 0.35 eye distances wide, shaded by ``depth``: the nose's own
    shadow under light from the side, which leaves the outer cheek lit."""

    def edit(rgb: Rgb, face: Face, _: Photo) -> Rgb:
        d, middle, eyes = _distance(face), _middle(face), _eyes_y(face)
        mask = np.zeros(rgb.shape[:2], np.float32)
        top, bottom = round(eyes - 0.3 * d), round(eyes + 1.3 * d)
        mask[top:bottom, round(middle) : round(middle + 0.35 * d)] = 1
        mask = np.asarray(cv2.GaussianBlur(mask, (0, 0), 0.05 * d), dtype=np.float32)
        return _u8(rgb.astype(np.float32) * (1 - depth * mask)[..., None])

    return edit


def two_coloured_light(rgb: Rgb, face: Face, _: Photo) -> Rgb:
    """Warm lamp light on one side of the face, a window's blue daylight on the other."""
    d, middle = _distance(face), _middle(face)
    x = np.arange(rgb.shape[1], dtype=np.float32)
    ramp = np.clip((x - (middle - 0.5 * d)) / d, 0, 1)[None, :, None]
    warm, cool = np.array([1.1, 1.0, 0.8], np.float32), np.array([0.8, 0.95, 1.2], np.float32)
    return _u8(rgb.astype(np.float32) * (warm * (1 - ramp) + cool * ramp))


def on_person(edit: Edit) -> Edit:
    """``edit`` on the person only, the wall left as it was (``verdict_cases._wall_share``): a
    light on the face alone, so the backdrop's checks do not speak for the face's."""

    def person_only(rgb: Rgb, face: Face, photo: Photo) -> Rgb:
        wall = _wall_share(rgb)[..., None]
        edited = edit(rgb, face, photo).astype(np.float32)
        return _u8(rgb.astype(np.float32) * wall + edited * (1 - wall))

    return person_only


EDITS: dict[str, Edit] = {
    "a shadow of the head on the wall": head_shadow,
    "a fringe to the brows": fringe_to(0.2),
    "a fringe over the brows": fringe_to(0.05),
    "a face on a poster behind": poster_face,
    "a person behind": person_behind,
    "a vignetted wall": vignette(0.6),
    "a wall darker to one side": gradient(0.45),
    "a beauty filter (bilateral)": beauty_bilateral,
    "a beauty filter (guided)": beauty_guided,
    "over-sharpened, haloed": oversharpened(2.5, 2.5),
    "over-sharpened, fine": oversharpened(3.0, 1.0),
    "pink make-up": make_up((1.08, 0.92, 1.0)),
    "orange foundation": make_up((1.1, 0.95, 0.78)),
    "pale foundation": make_up((1.15, 1.15, 1.15)),
    "a screen's moire": moire(0.12, 4.0, 8.0),
    "a fine moire": moire(0.08, 2.6, 3.0),
    "dark, denoised flat": denoised_low_light,
    "colour at 1/4, JPEG 60": chroma_subsampled(4, 60),
    "colour at 1/8": chroma_subsampled(8, 0),
    "mirrored (fine)": mirrored,
    "white earphones": earphones((240, 240, 240)),
    "black earphones": earphones((20, 20, 20)),
    "a headset": headset,
    "a red scarf over the chin": scarf("red"),
    "a navy scarf over the chin": scarf("navy"),
    "a wide-angle close-up": wide_angle(0.18),
    "light falling across the face": light_across(0.55),
    "the upper face shaded on one side": upper_side_shaded(0.55),
    "the nose's shadow (split light)": split_light(0.55),
    "warm and blue light either side": two_coloured_light,
    "light across the face, wall even": on_person(light_across(0.55)),
    "upper face shaded, wall even": on_person(upper_side_shaded(0.55)),
    "two-coloured light, wall even": on_person(two_coloured_light),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="one edit of EDITS, by name")
    parser.add_argument("--save", type=Path, help="write each edited source here as JPEG")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    context = load_context(Settings().model_dump_json())
    limits = LimitSettings()
    photos: dict[str, Rgb] = {}

    def photo(name: str) -> Rgb:
        if name not in photos:
            photos[name] = decode_image((TESTDATA / name).read_bytes(), limits).rgb
        return photos[name]

    passed: list[str] = []
    for name in PHOTOS:
        for label, edit in [("as taken", None), *EDITS.items()]:
            if args.only and label not in (args.only, "as taken"):
                continue
            report = judge(
                Case(label, name, "icao", "", "", edit),
                photo,
                context.models,
                context.models.segmenter,
            )
            stem = Path(name).stem
            if isinstance(report, str):
                print(f"{stem:12s} {label:36s} {report}", flush=True)
                continue
            failing = ", ".join(
                f"{c.name} ({c.status.value})" for c in report.checks if c.status.value != "pass"
            )
            print(f"{stem:12s} {label:36s} {report.status.value:5s} {failing}", flush=True)
            if report.status.value == "pass" and edit is not None:
                passed.append(f"{stem}: {label}")
            if args.save and edit is not None:
                rgb = photo(name)
                found = detect_faces(rgb, context.models.detector, DetectOptions())
                edited = edit(rgb, levelled_face(rgb, found[0], context.models.aligner), photo)
                args.save.mkdir(parents=True, exist_ok=True)
                out = args.save / f"{stem}_{label.replace(' ', '_').replace('/', '')}.jpg"
                cv2.imwrite(str(out), cv2.cvtColor(edited, cv2.COLOR_RGB2BGR))
    print(f"\npassed ({len(passed)}): " + "; ".join(passed))


if __name__ == "__main__":
    main()
