"""The figures behind a date-stamp measure tried and not adopted (a camera's date printed over
the clothes: scripts/date_stamp_measure.py): its reading on every real face of the test and
dev-set photos, cut out and framed (ICAO) as the service does it, and on each with a date stamp
or a hard negative drawn on it.

    .venv/bin/python scripts/date_stamp.py [--faces N]

Each stamp is a row of digits in a date's format ('98 7 14, 2024.07.14, '26 12 07, 14 07 '24)
drawn in one of three faces (OpenCV's Hershey strokes, seven-segment bars with gaps between
them, a 5 × 7 dot matrix), 0.12-0.3 eye distances tall, in orange, amber, red-orange or yellow,
with a soft glow, on the clothes (either side of the chest, or lower towards a corner), and in
half the cases saved as JPEG 85 (colour subsampled, as a camera saves). Every face gets 8 such
stamps, the grid walked from an offset that moves by face. The hard negatives are what a counter
accepts: an orange scarf or top with folds, orange stripes across or down a shirt, orange polka
dots, a gold necklace, an orange word printed on a shirt. The edited source is read through the
face's own cut-out (its alpha and frame; the stamp lies on the opaque clothes), so only the
foreground changes. Prints every face's reading, then each edit's range and how many warn.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from date_stamp_measure import STAMP_GLYPHS_WARN, date_stamp, frame_in_matte
from tests.fixtures.environment import TESTDATA
from tests.pipeline.idphoto.verdict_cases import _laid_over, _text_mask, real_faces

from faceflow.config import Settings
from faceflow.domain import Face
from faceflow.pipeline.idphoto.compliance.regions import eye_distance_px
from faceflow.pipeline.idphoto.layout import Layout, plan_layout
from faceflow.pipeline.idphoto.matte import Matte
from faceflow.pipeline.idphoto.specs import get_spec
from faceflow.runtime.context import load_context

Rgb = NDArray[np.uint8]
Mask = NDArray[np.float32]
Draw = Callable[[Rgb, Face, Layout], Rgb]

FORMATS = ("'98 7 14", "2024.07.14", "'26 12 07", "14 07 '24")
COLOURS = {
    "orange": (255, 140, 30),
    "amber": (255, 176, 0),
    "red-orange": (255, 90, 20),
    "yellow": (255, 220, 40),
}
SIZES = (0.12, 0.18, 0.22, 0.3)
# Where the row's middle goes in the finished photo, as shares of its width and height: near a
# lower corner, on the clothes.
# A stamp counts where the finished photo shows this much of it on the person (the rest fell on
# the old wall, which the new backdrop replaces, or outside the frame).
SHOWN = 0.8
PLACES = ((0.72, 0.9), (0.28, 0.9), (0.75, 0.8), (0.3, 0.82), (0.6, 0.95))
# Seven-segment digits: which of the segments a-g (top, upper right, lower right, bottom, lower
# left, upper left, middle) each lights.
SEGMENTS = {
    "0": "abcdef",
    "1": "bc",
    "2": "abged",
    "3": "abgcd",
    "4": "fgbc",
    "5": "afgcd",
    "6": "afgedc",
    "7": "abc",
    "8": "abcdefg",
    "9": "abcdfg",
}


def _distance(face: Face) -> float:
    return eye_distance_px(face)


def _anchor(face: Face, place: tuple[float, float]) -> tuple[float, float]:
    marks = face.landmarks
    d = _distance(face)
    x = (marks.right_eye.x + marks.left_eye.x) / 2 + place[0] * d
    y = (marks.right_eye.y + marks.left_eye.y) / 2 + place[1] * d
    return x, y


def seven_segment(
    shape: tuple[int, ...], text: str, centre: tuple[float, float], height: float
) -> Mask:
    """``text`` in seven-segment digits ``height`` px tall, a small gap where segments meet; an
    apostrophe and a full stop as short marks."""
    mask = np.zeros(shape[:2], np.float32)
    width, stroke, gap = 0.5 * height, max(1, round(0.13 * height)), 0.08 * height
    pitch = 0.75 * height
    x0 = centre[0] - pitch * len(text) / 2
    top, bottom, mid = centre[1] - height / 2, centre[1] + height / 2, centre[1]
    for k, char in enumerate(text):
        left = x0 + k * pitch
        right = left + width
        ends = {
            "a": ((left + gap, top), (right - gap, top)),
            "b": ((right, top + gap), (right, mid - gap)),
            "c": ((right, mid + gap), (right, bottom - gap)),
            "d": ((left + gap, bottom), (right - gap, bottom)),
            "e": ((left, mid + gap), (left, bottom - gap)),
            "f": ((left, top + gap), (left, mid - gap)),
            "g": ((left + gap, mid), (right - gap, mid)),
        }
        if char == ".":
            cv2.circle(mask, (round(left + width / 2), round(bottom)), stroke, 1.0, -1, cv2.LINE_AA)
        elif char == "'":
            cv2.line(
                mask,
                (round(left + width / 2), round(top)),
                (round(left + width / 2), round(top + 0.25 * height)),
                1.0,
                stroke,
                cv2.LINE_AA,
            )
        for segment in SEGMENTS.get(char, ""):
            (ax, ay), (bx, by) = ends[segment]
            cv2.line(mask, (round(ax), round(ay)), (round(bx), round(by)), 1.0, stroke, cv2.LINE_AA)
    return mask


def dot_matrix(
    shape: tuple[int, ...], text: str, centre: tuple[float, float], height: float
) -> Mask:
    """``text`` as 5 × 7 dots: the Hershey glyphs sampled on the grid, a dot where they lie."""
    grid = max(1.0, height / 7)
    strokes = _text_mask(shape, text, centre, height, 0.0, 0.22)
    mask = np.zeros(shape[:2], np.float32)
    ys, xs = np.nonzero(strokes > 0.5)
    if ys.size == 0:
        return mask
    seen = set()
    for y, x in zip(ys.tolist(), xs.tolist(), strict=True):
        cell = (round((x - xs.min()) / grid), round((y - ys.min()) / grid))
        if cell in seen:
            continue
        seen.add(cell)
        dot = (round(xs.min() + cell[0] * grid), round(ys.min() + cell[1] * grid))
        cv2.circle(mask, dot, max(1, round(0.38 * grid)), 1.0, -1, cv2.LINE_AA)
    return mask


def _glowing(rgb: Rgb, mask: Mask, colour: tuple[int, int, int], d: float) -> Rgb:
    core = cv2.GaussianBlur(mask, (0, 0), 0.01 * d + 0.5)
    halo = cv2.GaussianBlur(mask, (0, 0), 0.03 * d + 1.0)
    out = _laid_over(rgb, np.clip(0.35 * halo, 0, 1).astype(np.float32), colour, 0.6)
    return _laid_over(out, np.clip(core * 1.3, 0, 1).astype(np.float32), colour, 0.95)


def _jpeg(rgb: Rgb, quality: int = 85) -> Rgb:
    ok, data = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    decoded = cv2.imdecode(data, cv2.IMREAD_COLOR)
    assert ok
    assert decoded is not None
    return np.asarray(cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB), np.uint8)


def stamp(
    text: str,
    font: str,
    colour: tuple[int, int, int],
    size: float,
    place: tuple[float, float],
    saved: bool,
) -> Draw:
    """A camera's date stamp: ``text`` in ``font`` (hershey, segments, dots), ``size`` eye
    distances tall, glowing ``colour``, centred at ``place``; saved as JPEG 85 if ``saved``."""

    def draw(rgb: Rgb, face: Face, layout: Layout) -> Rgb:
        d = _distance(face)
        to_source = cv2.invertAffineTransform(np.asarray(layout.transform, np.float64))
        x, y = to_source @ np.array([place[0] * layout.width_px, place[1] * layout.height_px, 1.0])
        centre = (float(x), float(y))
        height = size * d
        if font == "hershey":
            mask = _text_mask(rgb.shape, text, centre, height, 0.0, 0.16)
        elif font == "segments":
            mask = seven_segment(rgb.shape, text, centre, height)
        else:
            mask = dot_matrix(rgb.shape, text, centre, height)
        out = _glowing(rgb, mask, colour, d)
        return _jpeg(out) if saved else out

    return draw


def stamps_for(index: int, count: int) -> list[tuple[tuple[str, ...], Draw]]:
    """``count`` stamps of the grid, walked from an offset that moves with ``index``."""
    grid = list(
        itertools.product(
            FORMATS, ("hershey", "segments", "dots"), COLOURS, SIZES, PLACES, (False, True)
        )
    )
    picked = [grid[k] for k in np.random.default_rng(index).choice(len(grid), count, replace=False)]
    return [
        (
            (text, font, colour, f"{size} tall", f"at {place}", "jpeg" if saved else "png"),
            stamp(text, font, COLOURS[colour], size, place, saved),
        )
        for text, font, colour, size, place, saved in picked
    ]


def _below_chin(rgb: Rgb, face: Face) -> NDArray[np.bool_]:
    """The clothes: a box from 2 to 4.4 eye distances below the eyes, 1.8 either side."""
    x, y = _anchor(face, (0.0, 2.0))
    d = _distance(face)
    rows = np.arange(rgb.shape[0])[:, None]
    cols = np.arange(rgb.shape[1])[None, :]
    return np.asarray((rows >= y) & (rows <= y + 2.4 * d) & (np.abs(cols - x) <= 1.8 * d), bool)


def orange_cloth(colour: tuple[int, int, int]) -> Draw:
    """A scarf or top in ``colour`` over the clothes, shaded by soft diagonal folds."""

    def draw(rgb: Rgb, face: Face, _: Layout) -> Rgb:
        d = _distance(face)
        rows, cols = np.indices(rgb.shape[:2], dtype=np.float32)
        folds = 0.8 + 0.2 * np.sin((rows + cols) / (0.15 * d))
        cloth = np.array(colour, np.float32) * folds[..., None]
        area = _below_chin(rgb, face)[..., None]
        return np.where(area, np.clip(cloth, 0, 255), rgb).astype(np.uint8)

    return draw


def stripes(across: bool, width: float) -> Draw:
    """Orange stripes ``width`` eye distances wide (as far apart) across or down the shirt."""

    def draw(rgb: Rgb, face: Face, _: Layout) -> Rgb:
        d = _distance(face)
        rows, cols = np.indices(rgb.shape[:2], dtype=np.float32)
        along = rows if across else cols
        band = (np.floor(along / (width * d)) % 2 == 0) & _below_chin(rgb, face)
        return _laid_over(rgb, band.astype(np.float32), (245, 130, 35), 0.9)

    return draw


def polka_dots(diameter: float) -> Draw:
    """Orange dots ``diameter`` eye distances across in rows over the shirt."""

    def draw(rgb: Rgb, face: Face, _: Layout) -> Rgb:
        d = _distance(face)
        mask = np.zeros(rgb.shape[:2], np.float32)
        area = _below_chin(rgb, face)
        ys, xs = np.nonzero(area)
        pitch = 1.8 * diameter * d
        for y in np.arange(ys.min(), ys.max(), pitch):
            for x in np.arange(xs.min(), xs.max(), pitch):
                cv2.circle(
                    mask,
                    (round(x), round(y)),
                    max(1, round(diameter * d / 2)),
                    1.0,
                    -1,
                    cv2.LINE_AA,
                )
        return _laid_over(rgb, mask, (250, 140, 20), 0.9)

    return draw


def necklace(rgb: Rgb, face: Face, _: Layout) -> Rgb:
    """A gold chain hanging 1.9-2.4 eye distances below the eyes, with a pendant."""
    d = _distance(face)
    x, y = _anchor(face, (0.0, 1.9))
    mask = np.zeros(rgb.shape[:2], np.float32)
    axes = (round(0.55 * d), round(0.5 * d))
    cv2.ellipse(
        mask, (round(x), round(y)), axes, 0, 10, 170, 1.0, max(1, round(0.02 * d)), cv2.LINE_AA
    )
    cv2.circle(mask, (round(x), round(y + 0.5 * d)), max(1, round(0.05 * d)), 1.0, -1, cv2.LINE_AA)
    return _laid_over(rgb, mask, (230, 180, 60), 0.95)


def printed_word(text: str) -> Draw:
    """``text`` printed on the chest in orange capitals 0.25 eye distances tall (a logo)."""

    def draw(rgb: Rgb, face: Face, _: Layout) -> Rgb:
        d = _distance(face)
        mask = _text_mask(rgb.shape, text, _anchor(face, (0.0, 2.6)), 0.25 * d, 0.0, 0.18)
        return _laid_over(rgb, mask, (240, 120, 30), 0.95)

    return draw


NEGATIVES: dict[str, Draw] = {
    "an orange scarf or top": orange_cloth((240, 120, 30)),
    "a yellow top": orange_cloth((245, 200, 40)),
    "orange stripes across, 0.08": stripes(True, 0.08),
    "orange stripes across, 0.15": stripes(True, 0.15),
    "orange stripes down, 0.1": stripes(False, 0.1),
    "orange polka dots, 0.1": polka_dots(0.1),
    "orange polka dots, 0.2": polka_dots(0.2),
    "a gold necklace": necklace,
    "an orange word on the shirt (SPORT)": printed_word("SPORT"),
}


def _in_matte(rgb: Rgb, matte: Matte) -> Rgb:
    box = matte.crop_box
    x1, y1 = round(box.x1), round(box.y1)
    crop = rgb[y1 : y1 + round(box.height_px), x1 : x1 + round(box.width_px)]
    height, width = matte.alpha.shape
    if crop.shape[:2] != (height, width):
        crop = np.asarray(cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA), np.uint8)
    return np.ascontiguousarray(crop)


def on_edited(rgb: Rgb, matte: Matte, layout: Layout, face: Face) -> int | None:
    """``date_stamp`` read on the edited source ``rgb`` through ``matte``'s alpha and frame."""
    edited = dataclasses.replace(matte, foreground=_in_matte(rgb, matte))
    return date_stamp(layout, edited, face)


def shown_share(rgb: Rgb, edited: Rgb, matte: Matte, layout: Layout) -> float:
    """The share of what an edit changed that the finished photo shows on the person."""
    changed = np.abs(edited.astype(np.int16) - rgb.astype(np.int16)).sum(axis=2) > 40
    total = int(changed.sum())
    if total == 0:
        return 0.0
    on_person = (matte.alpha >= 0.5) & frame_in_matte(layout, matte)
    inside = (
        np.abs(
            _in_matte(edited, matte).astype(np.int16) - _in_matte(rgb, matte).astype(np.int16)
        ).sum(axis=2)
        > 40
    )
    return float((inside & on_person).sum()) / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=0, help="stop after this many faces")
    parser.add_argument("--stamps", type=int, default=8, help="stamps drawn on each face")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    models = load_context(Settings().model_dump_json()).models
    real: dict[str, int] = {}
    seen, drawn = 0, 0
    missed: list[str] = []
    negatives: dict[str, list[int]] = {name: [] for name in NEGATIVES}
    costs: list[float] = []
    by_part: dict[str, list[int]] = {}
    readings: list[int] = []
    for index, item in enumerate(real_faces(TESTDATA, models)):
        if args.faces and index >= args.faces:
            break
        layout = plan_layout(item.matte, item.face, get_spec("icao"))
        start = time.process_time()
        value = date_stamp(layout, item.matte, item.face)
        costs.append(time.process_time() - start)
        if value is None:
            print(f"{item.path.stem:26s} not read", flush=True)
            continue
        real[f"{item.path.stem} {index}"] = value
        row = [f"{item.path.stem:26s} {value}"]
        for parts, draw in stamps_for(index, args.stamps):
            stamped = draw(item.rgb, item.face, layout)
            if shown_share(item.rgb, stamped, item.matte, layout) < SHOWN:
                continue
            reading = on_edited(stamped, item.matte, layout, item.face)
            if reading is None:
                continue
            drawn += 1
            found = reading >= STAMP_GLYPHS_WARN
            seen += found
            for part in parts:
                by_part.setdefault(part, []).append(int(found))
            readings.append(reading)
            if not found:
                missed.append(f"{item.path.stem}: {' '.join(parts)} -> {reading}")
        for name, draw in NEGATIVES.items():
            reading = on_edited(draw(item.rgb, item.face, layout), item.matte, layout, item.face)
            if reading is not None:
                negatives[name].append(reading)
                row.append(f"{reading}")
        print(" ".join(row), flush=True)
    values = list(real.values())
    print(
        f"\nreal faces ({len(values)}): {min(values)}-{max(values)} glyphs, warn "
        f"{sum(v >= STAMP_GLYPHS_WARN for v in values)}: "
        + ", ".join(name for name, v in real.items() if v >= STAMP_GLYPHS_WARN)
    )
    print(f"stamps drawn: {seen} of {drawn} seen")
    for part, hits in sorted(by_part.items()):
        print(f"  {part:12s} {sum(hits)} of {len(hits)}")
    print("  readings of the stamps:", np.bincount(readings).tolist())
    for line in missed:
        print("  missed", line)
    for name, readings in negatives.items():
        over = sum(v >= STAMP_GLYPHS_WARN for v in readings)
        print(f"{name:38s} {min(readings)}-{max(readings)} glyphs, warn {over} of {len(readings)}")
    print(
        f"cost: median {1000 * float(np.median(costs)):.2f} ms CPU a face, "
        f"max {1000 * max(costs):.2f}"
    )


if __name__ == "__main__":
    main()
