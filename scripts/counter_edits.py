"""A counter clerk's edits: what a real applicant or app does to a photo that a counter refuses,
made on the two real faces whose ICAO photos pass as taken, and the report's verdict on each.

    .venv/bin/python scripts/counter_edits.py [--round 2|3] [--only NAME] [--save DIR]

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

``--round 2`` makes the second round, :data:`SECOND_ROUND`: what photo apps, stock and proof sites
and cameras add (a watermark's text, a date stamp, a sticker, a print or a screen photographed,
an app's liquify, face paint, a drawn mark) and what a counter accepts on a person, marked
"(fine)" (a hijab, a turban, dyed hair, a tattoo, darker skin). The head coverings are drawn with
room added above the head, as a photographer leaves it.

``--round 3`` makes the third, :data:`THIRD_ROUND`: the eyes looking aside, a double exposure, a
washed-out (hazy) photo, a cigarette in the mouth, the tongue out, and a file turned a quarter
(the person upright once it is turned back, which levelling the eyes does).
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
    _iris_centre,
    _laid_over,
    _room_above,
    _skin,
    _text_mask,
    _wall_share,
    double_exposure,
    hijab,
    jpeg,
    judge,
    scarf,
    sticker,
    turban,
    watermark,
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


# The second round: what photo apps, stock and proof sites and cameras put on a photo, and what a
# counter accepts on a person (a head covering, dyed hair, a tattoo).


def tiled_watermark(text: str, opacity: float) -> Edit:
    """A proof site's ``text`` repeated over the whole photo in rows, small (0.25 eye distances
    tall), turned 30°: there is always some over the face."""

    def edit(rgb: Rgb, face: Face, _: Photo) -> Rgb:
        d = _distance(face)
        mask = np.zeros(rgb.shape[:2], np.float32)
        step_x, step_y = 2.2 * d, 0.9 * d
        for row, y in enumerate(np.arange(-step_y, rgb.shape[0] + step_y, step_y)):
            for x in np.arange(-step_x + (row % 2) * step_x / 2, rgb.shape[1] + step_x, step_x):
                mask = np.maximum(mask, _text_mask(rgb.shape, text, (x, y), 0.25 * d, 30.0, 0.12))
        return _laid_over(rgb, mask, (255, 255, 255), opacity)

    return edit


def date_stamp(rgb: Rgb, face: Face, _: Photo) -> Rgb:
    """A film camera's orange date stamp over the clothes, right of the chest."""
    d = _distance(face)
    centre = (_middle(face) + 0.9 * d, _eyes_y(face) + 2.4 * d)
    glow = _text_mask(rgb.shape, "'26 12 07", centre, 0.22 * d, 0.0, 0.16)
    glow = np.asarray(cv2.GaussianBlur(glow, (0, 0), 0.01 * d + 0.5), dtype=np.float32)
    return _laid_over(rgb, np.clip(glow * 1.3, 0, 1), (255, 140, 30), 0.95)


def printed_photo_at_angle(rgb: Rgb, face: Face, _: Photo) -> Rgb:
    """A print photographed on a wooden table at an angle: the print's far edge 12 % narrower
    (keystone), turned 4°, its whites dulled and a little warm, the table round it."""
    h, w = rgb.shape[:2]
    dull = rgb.astype(np.float32) * np.array([0.92, 0.88, 0.8], np.float32) + 12
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    inset = 0.06 * w
    dst = np.array([[inset, 0.04 * h], [w - inset, 0.04 * h], [w, h], [0, h]], np.float32)
    keystone = cv2.getPerspectiveTransform(src, dst)
    turn = np.vstack([cv2.getRotationMatrix2D((w / 2, h / 2), 4.0, 0.9), [0, 0, 1]])
    matrix = turn @ keystone
    table = np.zeros_like(dull)
    table[:] = (120, 85, 55)
    grain = np.random.default_rng(4).normal(0, 8, (h, 1)).astype(np.float32)
    table += grain[..., None]
    warped = cv2.warpPerspective(dull, matrix, (w, h))
    inside = cv2.warpPerspective(np.ones((h, w), np.float32), matrix, (w, h))[..., None]
    return _u8(warped * inside + table * (1 - inside))


def off_a_screen(rgb: Rgb, face: Face, _: Photo) -> Rgb:
    """The photo shown on a phone and photographed: each screen pixel 3 photo pixels wide, its
    red, green and blue stripes apart with a dark gap below, slightly out of focus, and the
    screen's cold white (blue cast, the blacks lifted)."""
    h, w = rgb.shape[:2]
    y, x = np.mgrid[0:h, 0:w]
    grid = np.full((h, w, 3), 0.55, np.float32)
    for channel in range(3):
        grid[..., channel][x % 3 == channel] = 1.45
    grid[y % 3 == 2] *= 0.6
    grid = np.asarray(cv2.GaussianBlur(grid, (0, 0), 0.6), dtype=np.float32)
    shown = rgb.astype(np.float32) * grid * np.array([0.9, 0.98, 1.12], np.float32) + 18
    return _u8(shown)


def _warp_around(rgb: Rgb, centre: tuple[float, float], radius: float, strength: float) -> Rgb:
    """A liquify tool's bloat at ``centre``: within ``radius`` the middle magnified by up to
    ``1 / (1 - strength)``, smoothly back to none at the edge."""
    y, x = np.mgrid[0 : rgb.shape[0], 0 : rgb.shape[1]].astype(np.float32)
    dx, dy = x - centre[0], y - centre[1]
    r = np.sqrt(dx * dx + dy * dy) / radius
    pull = np.where(r < 1, 1 - strength * (1 - r * r) ** 2, 1.0).astype(np.float32)
    return np.asarray(
        cv2.remap(
            rgb,
            centre[0] + dx * pull,
            centre[1] + dy * pull,
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REFLECT,
        ),
        dtype=np.uint8,
    )


def big_eyes(strength: float) -> Edit:
    """A beauty app's "big eyes": each eye bloated over 0.4 eye distances."""

    def edit(rgb: Rgb, face: Face, _: Photo) -> Rgb:
        d = _distance(face)
        for eye in (face.landmarks.right_eye, face.landmarks.left_eye):
            rgb = _warp_around(rgb, (eye.x, eye.y), 0.4 * d, strength)
        return rgb

    return edit


def slimmed_face(strength: float) -> Edit:
    """A beauty app's face slimming: the cheeks and jaw pushed in towards the nose by up to
    ``strength`` eye distances, the eyes and the face's middle left."""

    def edit(rgb: Rgb, face: Face, _: Photo) -> Rgb:
        d, middle = _distance(face), _middle(face)
        eyes = _eyes_y(face)
        y, x = np.mgrid[0 : rgb.shape[0], 0 : rgb.shape[1]].astype(np.float32)
        across = (x - middle) / d
        down = (y - eyes) / d
        # Strongest 0.9 eye distances out, from the eyes to below the chin.
        weight = np.exp(-(((np.abs(across) - 0.9) / 0.35) ** 2)) * np.clip(down / 0.4, 0, 1)
        weight *= np.exp(-((np.clip(down - 1.4, 0, None) / 0.4) ** 2))
        map_x = x + np.sign(across) * strength * d * weight
        return np.asarray(
            cv2.remap(
                rgb, map_x.astype(np.float32), y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
            ),
            dtype=np.uint8,
        )

    return edit


def face_paint(rgb: Rgb, face: Face, _: Photo) -> Rgb:
    """A supporter's flag painted on the image-left cheek: three bands, blue, white, red, 0.5
    eye distances wide, painted on (85 % cover)."""
    d = _distance(face)
    eye = face.landmarks.right_eye
    out = rgb
    for band, colour in enumerate(((30, 60, 160), (240, 240, 240), (200, 30, 40))):
        mask = np.zeros(rgb.shape[:2], np.float32)
        x0 = eye.x - 0.3 * d + band * 0.17 * d
        cv2.rectangle(
            mask,
            (round(x0), round(eye.y + 0.3 * d)),
            (round(x0 + 0.17 * d), round(eye.y + 0.65 * d)),
            1.0,
            -1,
        )
        out = _laid_over(out, mask, colour, 0.85)
    return out


def drawn_mark(rgb: Rgb, face: Face, _: Photo) -> Rgb:
    """A heart drawn in black marker on the image-left cheek, 0.3 eye distances across."""
    d = _distance(face)
    eye = face.landmarks.right_eye
    cx, cy = eye.x - 0.05 * d, eye.y + 0.55 * d
    t = np.linspace(0, 2 * np.pi, 60)
    hx = 16 * np.sin(t) ** 3
    hy = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    points = np.stack([cx + hx * 0.3 * d / 32, cy + hy * 0.3 * d / 32], axis=1)
    mask = np.zeros(rgb.shape[:2], np.float32)
    cv2.polylines(
        mask, [np.round(points).astype(np.int32)], True, 1.0, max(1, round(0.025 * d)), cv2.LINE_AA
    )
    return _laid_over(rgb, mask, (20, 20, 25), 0.9)


def tattoo(rgb: Rgb, face: Face, _: Photo) -> Rgb:
    """A small tattoo: three dots and a short line in faded blue-black ink under the image-left
    eye's outer corner, at the temple a star's outline (ink, 70 %, multiplied into the skin)."""
    d = _distance(face)
    eye = face.landmarks.right_eye
    mask = np.zeros(rgb.shape[:2], np.float32)
    for k in range(3):
        centre = (round(eye.x - 0.3 * d + k * 0.07 * d), round(eye.y + 0.3 * d + k * 0.03 * d))
        cv2.circle(mask, centre, max(1, round(0.025 * d)), 1.0, -1, cv2.LINE_AA)
    star = [
        (
            eye.x - 0.55 * d + 0.12 * d * np.cos(a) * (1 if k % 2 == 0 else 0.45),
            eye.y - 0.25 * d + 0.12 * d * np.sin(a) * (1 if k % 2 == 0 else 0.45),
        )
        for k, a in enumerate(np.linspace(-np.pi / 2, 1.5 * np.pi, 11)[:10])
    ]
    cv2.polylines(
        mask,
        [np.round(np.asarray(star)).astype(np.int32)],
        True,
        1.0,
        max(1, round(0.015 * d)),
        cv2.LINE_AA,
    )
    ink = np.array([0.45, 0.5, 0.62], np.float32)
    weight = (0.7 * mask)[..., None]
    return _u8(rgb.astype(np.float32) * (1 - weight + weight * ink))


def dyed_hair(colour: tuple[float, float]) -> Edit:
    """The hair dyed: every pixel of the person above the mouth that is not skin-coloured (nor
    inside a tight oval over the eyes, nose and mouth) given chroma towards Lab a*, b*
    ``colour`` in step with its own lightness (dark strands a dark shade of the dye, light ones
    the dye), the darkest lifted a little, so the strands' texture is kept."""

    def edit(rgb: Rgb, face: Face, _: Photo) -> Rgb:
        d = _distance(face)
        lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
        skin = cv2.cvtColor(
            np.asarray(_skin(rgb, face).reshape(1, 1, 3), np.uint8), cv2.COLOR_RGB2LAB
        ).astype(np.float32)[0, 0]
        near_skin = np.linalg.norm(lab[..., 1:] - skin[1:], axis=2) < 10
        near_skin &= np.abs(lab[..., 0] - skin[0]) < 50
        inner = np.zeros(rgb.shape[:2], np.uint8)
        centre = (round(_middle(face)), round(_eyes_y(face) + 0.35 * d))
        cv2.ellipse(inner, centre, (round(0.75 * d), round(1.0 * d)), 0, 0, 360, 1, -1)
        person = _wall_share(rgb) < 0.5
        above = np.arange(rgb.shape[0])[:, None] < face.landmarks.mouth_centre.y + 0.3 * d
        hair = person & (inner == 0) & ~near_skin & above
        soft = cv2.GaussianBlur(hair.astype(np.float32), (0, 0), 1.0)[..., None]
        dyed = lab.copy()
        light = lab[..., 0] / 255
        dyed[..., 0] = 40 + 0.85 * lab[..., 0]
        dyed[..., 1] = 128 + colour[0] * (0.5 + light)
        dyed[..., 2] = 128 + colour[1] * (0.5 + light)
        mixed = lab * (1 - soft) + dyed * soft
        return np.asarray(
            cv2.cvtColor(np.clip(mixed, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB),
            dtype=np.uint8,
        )

    return edit


def darker_skin(lightness: float) -> Edit:
    """The skin (the face's oval, the neck below it, pixels near the cheeks' colour) made darker:
    L × ``lightness``, its chroma kept, as a darker-skinned person under the same light."""

    def edit(rgb: Rgb, face: Face, _: Photo) -> Rgb:
        lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
        skin = cv2.cvtColor(
            np.asarray(_skin(rgb, face).reshape(1, 1, 3), np.uint8), cv2.COLOR_RGB2LAB
        ).astype(np.float32)[0, 0]
        near = np.linalg.norm(lab[..., 1:] - skin[1:], axis=2) < 14
        near &= np.abs(lab[..., 0] - skin[0]) < 60
        near &= _wall_share(rgb) < 0.5
        soft = cv2.GaussianBlur(near.astype(np.float32), (0, 0), 1.5)
        out = lab.copy()
        out[..., 0] = lab[..., 0] * (1 - soft * (1 - lightness))
        return np.asarray(
            cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB),
            dtype=np.uint8,
        )

    return edit


# Refused by a counter unless marked "(fine)": a counter accepts it.
SECOND_ROUND: dict[str, Edit] = {
    "a SAMPLE watermark, 35 %": watermark("SAMPLE", 0.35),
    "a SAMPLE watermark, 20 %": watermark("SAMPLE", 0.2),
    "a PROOF watermark, grey, level": watermark("PROOF", 0.3, (128, 128, 128), 0.0),
    "a studio's name, 25 %, small": watermark("STUDIO LUMEN", 0.25, height=0.3),
    "a SAMPLE watermark over the chest, 35 %": watermark("SAMPLE", 0.35, below_nose=2.0),
    "PROOF tiled over the photo, 25 %": tiled_watermark("PROOF", 0.25),
    "a date stamp over the clothes": date_stamp,
    "a sticker over a cheek": sticker("cheek"),
    "a sticker over an eye": sticker("eye"),
    "a print photographed at an angle": printed_photo_at_angle,
    "photographed off a phone screen": off_a_screen,
    "big eyes (liquify)": big_eyes(0.3),
    "face slimmed (liquify)": slimmed_face(0.12),
    "a flag painted on the cheek": face_paint,
    "a heart drawn on the cheek": drawn_mark,
    "hair dyed pink (fine)": dyed_hair((45.0, 0.0)),
    "hair dyed blue (fine)": dyed_hair((5.0, -45.0)),
    "hair dyed green (fine)": dyed_hair((-40.0, 20.0)),
    "a tattoo on the face (fine)": tattoo,
    "room above the head only (fine)": lambda rgb, face, photo: _room_above(
        rgb, round(2.0 * _distance(face))
    ),
    "a black hijab (fine)": hijab((28, 28, 32)),
    "a beige hijab (fine)": hijab((200, 180, 160)),
    "a navy hijab to the brows' top (fine)": hijab((35, 45, 80), 0.8),
    "a saffron turban (fine)": turban((235, 140, 30)),
    "a navy turban (fine)": turban((35, 45, 80)),
    "a white turban (fine)": turban((235, 235, 230)),
    "skin made darker, L x 0.6 (fine)": darker_skin(0.6),
    "skin made darker, L x 0.45 (fine)": darker_skin(0.45),
}


# The third round: conditions a counter refuses that the first two did not try, and one photo a
# counter takes as it is once the file is turned upright.


def looking_aside(shift: float) -> Edit:
    """The eyes looking to one side: each iris (``verdict_cases._iris_centre``; a disc 0.1 eye
    distances in radius) moved ``shift`` eye distances to the image-right, inside the eye's
    opening (an ellipse ±0.24 × ±0.09 eye distances over the iris's old place); where it was,
    the sclera (the opening's light pixels' median), so the eye keeps its lids and corners."""

    def edit(rgb: Rgb, face: Face, _: Photo) -> Rgb:
        d = _distance(face)
        out = rgb.astype(np.float32)
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
        for eye in (face.landmarks.right_eye, face.landmarks.left_eye):
            cx, cy = _iris_centre(grey, eye, d)
            opening = np.zeros(rgb.shape[:2], np.float32)
            cv2.ellipse(
                opening,
                (round(cx), round(cy)),
                (round(0.24 * d), round(0.09 * d)),
                0,
                0,
                360,
                1.0,
                -1,
                cv2.LINE_AA,
            )
            inside = opening > 0.5
            light = grey[inside] > np.percentile(grey[inside], 80)
            sclera = np.median(rgb[inside][light], axis=0).astype(np.float32)
            iris = np.zeros(rgb.shape[:2], np.float32)
            cv2.circle(iris, (round(cx), round(cy)), round(0.1 * d), 1.0, -1, cv2.LINE_AA)
            filled = out * (1 - iris[..., None]) + sclera * iris[..., None]
            step = np.array([[1, 0, shift * d], [0, 1, 0]], np.float32)
            size = (rgb.shape[1], rgb.shape[0])
            moved = np.asarray(cv2.warpAffine(rgb.astype(np.float32), step, size), np.float32)
            moved_iris = np.asarray(cv2.warpAffine(iris, step, size), np.float32)
            weight = (moved_iris * cv2.GaussianBlur(opening, (0, 0), 0.01 * d))[..., None]
            blended = filled * (1 - weight) + moved * weight
            soft = cv2.GaussianBlur(opening, (0, 0), 0.01 * d)[..., None]
            out = out * (1 - soft) + blended * soft
        return _u8(out)

    return edit


def hazy(contrast: float) -> Edit:
    """Washed out (a photo through a misted window, or a faded print): the contrast cut to
    ``contrast`` about a light grey, as haze lifts the blacks."""

    def edit(rgb: Rgb, face: Face, _: Photo) -> Rgb:
        return _u8(rgb.astype(np.float32) * contrast + 215.0 * (1 - contrast))

    return edit


def cigarette(rgb: Rgb, face: Face, _: Photo) -> Rgb:
    """A cigarette (or a pen) held in the mouth: a white stick 0.07 eye distances thick from the
    mouth's middle, 0.6 eye distances long, down and out to the image-left, its tip orange."""
    d = _distance(face)
    mouth = face.landmarks.mouth_centre
    start = np.array([mouth.x, mouth.y + 0.03 * d])
    end = start + np.array([-0.5, 0.33]) * d
    out = rgb.copy()
    thick = max(2, round(0.07 * d))
    tip = start + 0.82 * (end - start)
    cv2.line(
        out,
        tuple(np.round(start).astype(int)),
        tuple(np.round(tip).astype(int)),
        (238, 236, 230),
        thick,
        cv2.LINE_AA,
    )
    cv2.line(
        out,
        tuple(np.round(tip).astype(int)),
        tuple(np.round(end).astype(int)),
        (215, 140, 60),
        thick,
        cv2.LINE_AA,
    )
    return out


def tongue_out(rgb: Rgb, face: Face, _: Photo) -> Rgb:
    """The tongue stuck out: a pink-red ellipse 0.3 × 0.22 eye distances from the lips' line
    down over the lower lip, shaded darker at its edge and with a groove down its middle."""
    d = _distance(face)
    mouth = face.landmarks.mouth_centre
    centre = (round(mouth.x), round(mouth.y + 0.16 * d))
    mask = np.zeros(rgb.shape[:2], np.float32)
    cv2.ellipse(mask, centre, (round(0.15 * d), round(0.16 * d)), 0, 0, 360, 1.0, -1, cv2.LINE_AA)
    mask[: round(mouth.y), :] = 0
    inner = cv2.GaussianBlur(mask, (0, 0), 0.04 * d)
    shade = 0.7 + 0.3 * inner
    colour = np.array([205, 95, 105], np.float32) * shade[..., None]
    groove = np.zeros_like(mask)
    cv2.line(
        groove,
        (centre[0], round(mouth.y)),
        (centre[0], round(mouth.y + 0.2 * d)),
        1.0,
        max(1, round(0.015 * d)),
        cv2.LINE_AA,
    )
    colour *= (1 - 0.25 * groove)[..., None]
    soft = cv2.GaussianBlur(mask, (0, 0), 0.01 * d)[..., None]
    return _u8(rgb.astype(np.float32) * (1 - soft) + colour * soft)


def turned_file(rgb: Rgb, face: Face, _: Photo) -> Rgb:
    """The file turned a quarter (a phone's picture saved without its orientation tag): the
    person stands upright once it is turned back, which the service does by levelling the
    eyes."""
    return np.ascontiguousarray(np.rot90(rgb))


THIRD_ROUND: dict[str, Edit] = {
    "looking aside, 0.06": looking_aside(0.06),
    "looking aside, 0.09": looking_aside(0.09),
    "a double exposure, 0.08 apart, 40 %": double_exposure(0.08, 0.4),
    "a double exposure, 0.15 apart, 30 %": double_exposure(0.15, 0.3),
    "a double exposure, 0.1 apart at 45°, 30 %": double_exposure(0.1, 0.3, 45.0),
    "hazy, contrast 0.5": hazy(0.5),
    "hazy, contrast 0.35": hazy(0.35),
    "a cigarette in the mouth": cigarette,
    "the tongue out": tongue_out,
    "the file turned a quarter (fine)": turned_file,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="one edit of EDITS, by name")
    parser.add_argument("--save", type=Path, help="write each edited source here as JPEG")
    parser.add_argument(
        "--round", type=int, choices=(1, 2, 3), default=1, help="the first, second or third round"
    )
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
        edits = {1: EDITS, 2: SECOND_ROUND, 3: THIRD_ROUND}[args.round]
        for label, edit in [("as taken", None), *edits.items()]:
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
