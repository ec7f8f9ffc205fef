"""Three more measures tried for a watermark's text laid over the photo (docs/id-photos.md, "The
second round"), none adopted: the veil's colour law over the whole person, the text's straight
strokes at one pair of angles, and thin strokes on a plain wall. Each is run on every real face
of the test and dev-set photos as taken and with the second round's watermarks (and a tattoo, a
heart drawn on the cheek, a painted flag and a sticker, which are no watermark) laid over it.

    .venv/bin/python scripts/watermark_veil.py [--measure veil|bars|wall|wall-veil] [--limit N]

A white or grey veil at opacity α obeys I' = (1 − α)·I + α·W in every channel, one α and one W
for the whole text. ``veil``: over the person (the cut-out's opaque pixels, the eyes and the
mouth left out) at 40 px an eye distance, each pixel's difference u from its 11 px median is
fitted, over its three channels, as s·(1, 1, 1) + t·median (the veil's law: t = −α, s = α·W);
the area, in eye distances squared, of pixels over 6 levels off whose fit leaves under a quarter
of u, with α 0.05–0.6 and W 90–300, the median's channels 30 or more apart (on a grey the law
holds for anything). ``bars``: OpenCV's line segment detector at 80 px an eye distance over the
person; two segments of opposite sense, parallel within 6°, 1.5–10 px apart and overlapping, are
a stroke's two edges; the length, in eye distances, of such strokes 0.08–1 eye distance long in
the weaker of two bins ±4° wide 90° apart, at the best angle (a text's strokes lie along and
across its line; hair falls one way). ``wall``: on a plain backdrop (the cut-out's colour model
held), the share of the sure wall (0.15 eye distances clear of the person) at 60 px an eye
distance whose grey, softened by σ 0.7, stands over 5 levels off its median over 0.24 eye
distances, in pieces of 6 px or more; the matte does not keep the wall, so this one reads the
source. ``wall-veil``: as ``wall``, the strokes' pixels kept only where they obey the veil's law
against the wall.

The edits are placed by the face found on the original (as ``counter_edits.py`` places them) and
read through the as-taken cut-out: its box, its size, its alpha (a faint veil barely moves the
cut-out). Faces with eyes under 40 px apart in the matte are not measured. Four to seven
minutes a measure.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from counter_edits import SECOND_ROUND
from tests.fixtures.environment import TESTDATA
from tests.pipeline.idphoto.verdict_cases import RealFace, only, real_faces

from faceflow.config import Settings
from faceflow.domain import Face
from faceflow.pipeline.idphoto.backdrop import BackdropKind
from faceflow.pipeline.idphoto.matte import Matte
from faceflow.runtime.context import load_context

Rgb = NDArray[np.uint8]
Float = NDArray[np.float32]
EDITS = (
    "a SAMPLE watermark, 35 %",
    "a SAMPLE watermark, 20 %",
    "a PROOF watermark, grey, level",
    "a studio's name, 25 %, small",
    "a SAMPLE watermark over the chest, 35 %",
    "PROOF tiled over the photo, 25 %",
    "a tattoo on the face (fine)",
    "a heart drawn on the cheek",
    "a flag painted on the cheek",
    "a sticker over a cheek",
)
# (half width, half height) in eye distances: eye whites and teeth are light and grey.
LEFT_OUT = (("right_eye", 0.35, 0.22), ("left_eye", 0.35, 0.22), ("mouth_centre", 0.5, 0.25))
LSD = cv2.createLineSegmentDetector()


def matte_eye_distance(matte: Matte, face: Face) -> float:
    marks = face.landmarks
    return (marks.left_eye.x - marks.right_eye.x) / matte.source_px_per_matte_px


def person_at(matte: Matte, face: Face, scale: float) -> tuple[Rgb, NDArray[np.bool_]]:
    """The matte at ``scale`` px an eye distance and its opaque pixels (3 px clear of its
    outline), the eyes and the mouth left out."""
    k = scale / matte_eye_distance(matte, face)
    rgb = np.asarray(
        cv2.resize(matte.foreground, None, fx=k, fy=k, interpolation=cv2.INTER_AREA), np.uint8
    )
    size = (rgb.shape[1], rgb.shape[0])
    alpha = cv2.resize(matte.alpha, size, interpolation=cv2.INTER_AREA)
    opaque = cv2.erode((alpha >= 0.95).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    for name, half_w, half_h in LEFT_OUT:
        point = matte.to_matte_px(getattr(face.landmarks, name))
        cx, cy = point.x * k, point.y * k
        rows = slice(max(0, round(cy - half_h * scale)), max(0, round(cy + half_h * scale)))
        cols = slice(max(0, round(cx - half_w * scale)), max(0, round(cx + half_w * scale)))
        opaque[rows, cols] = False
    return rgb, np.asarray(opaque, bool)


def veil_area(matte: Matte, face: Face, _: Rgb) -> float:
    """``veil``: pixels that obey a veil's law (see the module's docstring), in eye distances
    squared."""
    scale = 40.0
    rgb, opaque = person_at(matte, face, scale)
    base = cv2.medianBlur(rgb, 11).astype(np.float32)
    u = rgb.astype(np.float32) - base
    coloured, veiled = veil_law(u, base, (0.05, 0.6), (90.0, 300.0))
    size = np.linalg.norm(u, axis=-1)
    return float((opaque & coloured & veiled & (size > 6)).sum()) / scale**2


def veil_law(
    u: Float, base: Float, alphas: tuple[float, float], whites: tuple[float, float]
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Where ``base``'s channels lie 30 or more apart (elsewhere the law holds for any change),
    and where the difference ``u`` from it is a veil's: fitted over the three channels as s +
    t·base (least squares, per pixel), leaving under a quarter of u, with α = −t and W = s/α
    within ``alphas`` and ``whites``."""
    sbb, sb = (base * base).sum(-1), base.sum(-1)
    su, sbu = u.sum(-1), (base * u).sum(-1)
    det = 3 * sbb - sb * sb
    coloured = det > 1350  # the channels 30 or more apart
    t = (3 * sbu - sb * su) / np.where(coloured, det, 1.0)
    s = (su - t * sb) / 3
    left = np.linalg.norm(u - s[..., None] - t[..., None] * base, axis=-1)
    alpha = -t
    white = s / np.maximum(alpha, 1e-3)
    veiled = (left < 0.25 * np.linalg.norm(u, axis=-1)) & (alpha > alphas[0]) & (alpha < alphas[1])
    veiled &= (white > whites[0]) & (white < whites[1])
    return np.asarray(coloured, bool), np.asarray(veiled, bool)


def stroke_pairs(segments: Float) -> tuple[Float, Float]:
    """The angles (degrees, 0–180) and lengths of strokes: pairs of segments of opposite sense
    (the detector orients each along its edge by the gradient), parallel, close and side by
    side."""
    x1, y1, x2, y2 = segments.T
    length = np.hypot(x2 - x1, y2 - y1)
    ux, uy = (x2 - x1) / length, (y2 - y1) / length
    mx, my = (x1 + x2) / 2, (y1 + y2) / 2
    dot = ux[:, None] * ux[None] + uy[:, None] * uy[None]
    rx, ry = mx[None] - mx[:, None], my[None] - my[:, None]
    apart = np.abs(-rx * uy[:, None] + ry * ux[:, None])
    along = np.abs(rx * ux[:, None] + ry * uy[:, None])
    shorter = np.minimum(length[:, None], length[None])
    pair = (dot < -np.cos(np.deg2rad(6))) & (apart >= 1.5) & (apart <= 10) & (along < shorter / 2)
    i, j = np.nonzero(np.triu(pair, 1))
    angles = np.degrees(np.arctan2(uy[i], ux[i])) % 180
    return angles.astype(np.float32), np.minimum(length[i], length[j]).astype(np.float32)


def bars_length(matte: Matte, face: Face, _: Rgb) -> float:
    """``bars``: strokes along and across one line (see the module's docstring), in eye
    distances."""
    scale = 80.0
    rgb, opaque = person_at(matte, face, scale)
    found = LSD.detect(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))[0]
    if found is None:
        return 0.0
    segments = found.reshape(-1, 4)
    mx = np.clip(((segments[:, 0] + segments[:, 2]) / 2).round().astype(int), 0, rgb.shape[1] - 1)
    my = np.clip(((segments[:, 1] + segments[:, 3]) / 2).round().astype(int), 0, rgb.shape[0] - 1)
    segments = segments[opaque[my, mx]]
    if len(segments) < 2:
        return 0.0
    angles, lengths = stroke_pairs(segments)
    keep = (lengths >= 0.08 * scale) & (lengths <= scale)
    angles, lengths = angles[keep], lengths[keep]

    def near(degrees: float) -> float:
        return float(lengths[np.abs((angles - degrees + 90) % 180 - 90) < 4].sum())

    best = max((min(near(a), near(a + 90)) for a in range(0, 90, 2)), default=0.0)
    return best / scale


def wall_share(matte: Matte, face: Face, source: Rgb) -> float | None:
    """``wall``: thin strokes on a plain wall (see the module's docstring); None where the
    backdrop is not plain."""
    return wall_strokes(matte, face, source, law=False)


def wall_veil_share(matte: Matte, face: Face, source: Rgb) -> float | None:
    """``wall-veil``: as ``wall``, the strokes' pixels kept only where they obey the veil's law
    against the wall's median (α 0.03–0.7, W 60–300), or on a grey wall where their change is
    grey (its channels within a quarter of its largest, and 1.5 levels): a backdrop's coloured
    print and a crowd are not a veil."""
    return wall_strokes(matte, face, source, law=True)


def wall_strokes(matte: Matte, face: Face, source: Rgb, *, law: bool) -> float | None:
    """The share of the wall in thin strokes, read from ``source`` in the cut-out's box."""
    if matte.backdrop is not BackdropKind.PLAIN:
        return None
    box = matte.crop_box
    crop = source[round(box.y1) : round(box.y2), round(box.x1) : round(box.x2)]
    distance = face.landmarks.left_eye.x - face.landmarks.right_eye.x
    k = min(1.0, 60.0 / distance)
    rgb = cv2.resize(crop, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(matte.alpha, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_AREA)
    clear = 2 * round(0.15 * distance * k) + 1
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (clear, clear))
    wall = cv2.dilate((alpha > 0.02).astype(np.uint8), disc) == 0
    wall[:3], wall[-3:], wall[:, :3], wall[:, -3:] = False, False, False, False
    size = 2 * round(0.12 * distance * k) + 1
    if law:
        base = cv2.medianBlur(rgb, size).astype(np.float32)
        u = cv2.GaussianBlur(rgb.astype(np.float32), (0, 0), 0.7) - base
        coloured, veiled = veil_law(u, base, (0.03, 0.7), (60.0, 300.0))
        grey_change = np.ptp(u, axis=-1) < 0.25 * np.abs(u).max(-1) + 1.5
        off = (np.abs(u.mean(-1)) > 5) & np.where(coloured, veiled, grey_change)
    else:
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        median = cv2.medianBlur(grey, size).astype(np.float32)
        off = np.abs(cv2.GaussianBlur(grey.astype(np.float32), (0, 0), 0.7) - median) > 5
    strokes = (off & wall).astype(np.uint8)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(strokes, connectivity=8)
    pieces = np.nonzero(stats[:, cv2.CC_STAT_AREA] >= 6)[0][1:]
    return float(np.isin(labels, pieces).sum()) / max(1, int(wall.sum()))


Measure = Callable[[Matte, Face, Rgb], float | None]
MEASURES: dict[str, Measure] = {
    "veil": veil_area,
    "bars": bars_length,
    "wall": wall_share,
    "wall-veil": wall_veil_share,
}


def read_edited(real: RealFace, edit: str) -> tuple[Matte, Rgb]:
    """The edited source and the as-taken cut-out with the edited pixels in it."""
    edited = SECOND_ROUND[edit](real.rgb, real.face, only(real.rgb))
    box, matte = real.matte.crop_box, real.matte
    crop = edited[round(box.y1) : round(box.y2), round(box.x1) : round(box.x2)]
    height, width = matte.alpha.shape
    resized = cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA)
    foreground = np.where(matte.alpha[..., None] > 0, resized, 0).astype(np.uint8)
    return replace(matte, foreground=foreground), edited


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measure", choices=sorted(MEASURES), default="veil")
    parser.add_argument("--limit", type=int, help="only the first N faces")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    measure = MEASURES[args.measure]
    models = load_context(Settings().model_dump_json()).models
    real: list[float] = []
    edited: dict[str, list[float]] = {name: [] for name in EDITS}
    costs: list[float] = []
    for n, face in enumerate(real_faces(TESTDATA, models)):
        if args.limit is not None and n >= args.limit:
            break
        if matte_eye_distance(face.matte, face.face) < 40:
            continue
        start = time.perf_counter()
        value = measure(face.matte, face.face, face.rgb)
        if value is None:
            continue
        costs.append((time.perf_counter() - start) * 1000)
        real.append(value)
        row = [f"{face.path.stem} {value:.4f}"]
        for name in EDITS:
            matte, source = read_edited(face, name)
            result = measure(matte, face.face, source)
            edited[name].append(0.0 if result is None else result)
            row.append(f"{edited[name][-1]:.4f}")
        print(" ".join(row), flush=True)
    if not real:
        print("no face measured")
        return
    top = max(real)
    print(f"\nreal faces ({len(real)}): {min(real):.4f}-{top:.4f}, median {np.median(real):.4f}")
    print(f"cost: median {np.median(costs):.1f} ms, max {max(costs):.1f} ms a face")
    spread = float(np.percentile(real, 90) - np.percentile(real, 10))
    print(f"the real faces' 10th-90th percentile spread {spread:.4f}")
    for name, values in edited.items():
        over = sum(v > top for v in values)
        # What the edit adds to its own face, against how far real faces differ.
        rise = float(np.median(np.subtract(values, real)))
        print(
            f"{name:40s} {min(values):.4f}-{max(values):.4f} median {np.median(values):.4f},"
            f" over the real faces' highest {over} of {len(values)}, adds {rise:.4f} (median)"
        )


if __name__ == "__main__":
    main()
