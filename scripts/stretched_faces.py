"""Can a stretched or squashed face be told from a real one? Four measures on every real face,
as taken and with its photo resized without keeping the aspect ratio, beside the ID-photo
report's verdict on each.

    .venv/bin/python scripts/stretched_faces.py [--only NAME] [--save DIR]

Every face of ``../shared/testdata`` and ``../shared/devset`` (or ``FACEFLOW_TESTDATA`` and the
``devset`` folder beside it), its photo as taken and resized 0.8, 0.9, 1.1 and 1.25 times across
or down (``verdict_cases.stretch``), is found, levelled and cut out as the service does it, and
made into an ICAO photo (a face of several with the others passed to the cut-out, as the
service's ``face`` option does). For each, the report's verdict and the checks that did not pass,
and four measures a stretch should move:

- ``marks``: YuNet's eye distance over the eye line's distance to the mouth, in the eye line's
  frame (a face stretched 1.25 across reads 1.25 times as much, if the points followed it);
- ``iris_fit``: the iris's width over its height, an ellipse (axes along the eye line) fitted to
  the iris's edge found along rays from its centre within 40° of the eye line, where the lids
  leave it (the catchlights opened away first); the median of the two eyes;
- ``iris_rows``: the same from the iris's width row by row: a circle's squared width falls with
  the square of the distance from its middle row, an ellipse's faster or slower by its
  width/height squared; so the curvature of the visible rows' widths against their height reads
  the aspect wherever the lids cut it;
- ``head``: the cut-out's width along the eye line over the eye line's height below the top of
  the head (hair and all).

The iris measures need eyes 40 px apart or more (``-`` otherwise, or where the iris is not found).
The summary gives each measure's range on the real faces, how many stretched faces read beyond
it in the stretch's direction, and how many reports changed. About fifteen minutes on 2 busy
cores; ``--save`` writes portrait_2's finished photos (JPEG), to be looked at.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.environment import TESTDATA
from tests.pipeline.idphoto.verdict_cases import _iris_centre, no_photo, real_photos, stretch

from faceflow.config import LimitSettings, Settings
from faceflow.domain import Face, Point
from faceflow.errors import NoSubject
from faceflow.imaging.ingest import decode_image
from faceflow.models.registry import ModelSet
from faceflow.pipeline.detect import detect_faces
from faceflow.pipeline.detect_options import DetectOptions
from faceflow.pipeline.idphoto.level import levelled_face
from faceflow.pipeline.idphoto.matte import Matte, compute_matte
from faceflow.pipeline.idphoto.options import IdPhotoOptions
from faceflow.pipeline.idphoto.render import render_id_photo
from faceflow.pipeline.idphoto.specs import get_spec
from faceflow.runtime.context import load_context

Rgb = NDArray[np.uint8]
Grey = NDArray[np.float32]

# (across, down): the photo as taken first.
STRETCHES = (
    (1.0, 1.0),
    (0.8, 1.0),
    (0.9, 1.0),
    (1.1, 1.0),
    (1.25, 1.0),
    (1.0, 0.8),
    (1.0, 0.9),
    (1.0, 1.1),
    (1.0, 1.25),
)
MEASURES = ("marks", "iris_fit", "iris_rows", "head")
# The iris is looked at with the eyes this many pixels apart: its radius about 19.
IRIS_SCALE_PX = 200.0
MIN_EYE_PX = 40.0


@dataclass(frozen=True)
class Reading:
    """One face of one photo, as taken or stretched."""

    face: Face
    verdict: str
    not_passed: tuple[str, ...]
    measures: dict[str, float | None]


def eye_frame(face: Face) -> list[tuple[float, float]]:
    """The five points turned so the eye line is level."""
    marks = face.landmarks
    angle = math.atan2(marks.left_eye.y - marks.right_eye.y, marks.left_eye.x - marks.right_eye.x)
    cos, sin = math.cos(-angle), math.sin(-angle)
    return [(p.x * cos - p.y * sin, p.x * sin + p.y * cos) for p in marks.points()]


def marks_ratio(face: Face) -> float | None:
    right, left, _, mouth_right, mouth_left = eye_frame(face)
    down = (mouth_right[1] + mouth_left[1]) / 2 - (right[1] + left[1]) / 2
    return math.dist(right, left) / down if down > 0 else None


def iris_box(grey: Grey, eye: Point, distance: float) -> tuple[Grey, float, float] | None:
    """The iris's surroundings at :data:`IRIS_SCALE_PX` an eye distance, catchlights opened
    away, and the iris's centre in it."""
    cx, cy = _iris_centre(grey, eye, distance)
    scale = IRIS_SCALE_PX / distance
    x1, y1 = max(0, round(cx - 0.22 * distance)), max(0, round(cy - 0.17 * distance))
    x2 = min(grey.shape[1], round(cx + 0.22 * distance))
    y2 = min(grey.shape[0], round(cy + 0.17 * distance))
    if x2 - x1 < 4 or y2 - y1 < 4:
        return None
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    box = cv2.resize(grey[y1:y2, x1:x2], None, fx=scale, fy=scale, interpolation=interpolation)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))
    box = cv2.GaussianBlur(cv2.morphologyEx(box, cv2.MORPH_OPEN, disc), (0, 0), 1.0)
    return np.asarray(box, np.float32), (cx - x1) * scale, (cy - y1) * scale


def iris_fit(box: Grey, cx: float, cy: float) -> float | None:
    """Width over height of the axis-aligned ellipse through the iris's edge along rays within
    40° of the eye line (the strongest dark-to-light step between radius 10 and 30)."""
    radii = np.arange(10.0, 30.0, 0.5)
    points, steps = [], []
    for angle in np.deg2rad(np.concatenate([np.arange(-40, 41, 4), np.arange(140, 221, 4)])):
        xs, ys = cx + radii * math.cos(angle), cy + radii * math.sin(angle)
        profile = cv2.remap(
            box, xs.astype(np.float32)[None], ys.astype(np.float32)[None], cv2.INTER_LINEAR
        )[0]
        step = np.diff(profile)
        i = int(np.argmax(step))
        points.append((xs[i] - cx, ys[i] - cy))
        steps.append(step[i])
    xy, strength = np.asarray(points), np.asarray(steps)
    if not (strength > 0).any():
        return None
    xy = xy[strength > 0.35 * np.median(strength[strength > 0])]
    if len(xy) < 12:
        return None
    # x²/a² + y²/b² with the centre free: A x² + C y² + D x + E y = 1, refitted without the
    # fifth of the points farthest from the first fit.
    terms = np.stack([xy[:, 0] ** 2, xy[:, 1] ** 2, xy[:, 0], xy[:, 1]], axis=1)
    solution = np.linalg.lstsq(terms, np.ones(len(xy)), rcond=None)[0]
    residual = np.abs(terms @ solution - 1)
    near = residual <= np.quantile(residual, 0.8)
    solution = np.linalg.lstsq(terms[near], np.ones(int(near.sum())), rcond=None)[0]
    a_term, c_term = solution[0], solution[1]
    return math.sqrt(c_term / a_term) if a_term > 0 and c_term > 0 else None


def iris_rows(box: Grey, cx: float, cy: float) -> float | None:
    """Width over height of the iris from its rows' widths (dark below the midpoint of the
    iris's middle and the sclera's light): w² = 4a² (1 - y²/b²) has y²'s coefficient
    -4 (a/b)²."""
    height, width = box.shape
    ix, iy = round(cx), round(cy)
    if not (8 <= ix < width - 8 and 8 <= iy < height - 8):
        return None
    dark = float(np.median(box[iy - 6 : iy + 7, ix - 6 : ix + 7]))
    light = float(np.percentile(box[max(0, iy - 8) : iy + 9], 95))
    if light - dark < 20:
        return None
    threshold = (dark + light) / 2
    rows, widths = [], []
    for y in range(max(0, iy - 28), min(height, iy + 29)):
        row = box[y]
        if row[ix] >= threshold:
            continue
        left = right = ix
        while left > 0 and row[left - 1] < threshold and ix - left < 36:
            left -= 1
        while right < width - 1 and row[right + 1] < threshold and right - ix < 36:
            right += 1
        if left == 0 or right == width - 1 or ix - left >= 36 or right - ix >= 36:
            continue
        left_edge = left - (threshold - row[left]) / max(1e-3, row[left - 1] - row[left])
        right_edge = right + (threshold - row[right]) / max(1e-3, row[right + 1] - row[right])
        rows.append(y - cy)
        widths.append(right_edge - left_edge)
    # The unbroken run of rows through the middle, less two at each end (lashes, the lid).
    run = [i for i, y in enumerate(rows) if abs(y) < 1.5]
    if not run:
        return None
    first = last = run[0]
    while first > 0 and rows[first] - rows[first - 1] < 1.5:
        first -= 1
    while last < len(rows) - 1 and rows[last + 1] - rows[last] < 1.5:
        last += 1
    ys, ws = np.asarray(rows[first + 2 : last - 1]), np.asarray(widths[first + 2 : last - 1])
    if len(ys) < 10 or ws.max() < 14:
        return None
    curve = float(np.polyfit(ys, ws**2, 2)[0])
    return math.sqrt(-curve / 4) if curve < 0 else None


def iris_measures(grey: Grey, face: Face) -> dict[str, float | None]:
    marks = face.landmarks
    distance = math.dist(
        (marks.right_eye.x, marks.right_eye.y), (marks.left_eye.x, marks.left_eye.y)
    )
    out: dict[str, float | None] = {"iris_fit": None, "iris_rows": None}
    if distance < MIN_EYE_PX:
        return out
    boxes = [iris_box(grey, eye, distance) for eye in (marks.right_eye, marks.left_eye)]
    for name, measure in (("iris_fit", iris_fit), ("iris_rows", iris_rows)):
        values = [v for b in boxes if b is not None and (v := measure(*b)) is not None]
        out[name] = statistics.median(values) if values else None
    return out


def head_ratio(matte: Matte, face: Face) -> float | None:
    """The cut-out's width along the eye line (the run through the eyes' middle, α ≥ 0.5) over
    the eye line's height below the top of the head (the median top of the columns within 0.3
    eye distances of the middle); None where the run reaches the photo's edge."""
    marks = face.landmarks
    distance = math.dist(
        (marks.right_eye.x, marks.right_eye.y), (marks.left_eye.x, marks.left_eye.y)
    )
    distance /= matte.source_px_per_matte_px
    eye = matte.to_matte_px(marks.eye_centre)
    solid = matte.alpha >= 0.5
    x, y = round(eye.x), round(eye.y)
    if not (0 <= y < solid.shape[0] and 0 <= x < solid.shape[1]) or not solid[y, x]:
        return None
    clear = np.flatnonzero(~solid[y])
    left = clear[clear < x].max(initial=-1) + 1
    right = clear[clear > x].min(initial=solid.shape[1]) - 1
    columns = solid[: y + 1, max(0, x - round(0.3 * distance)) : x + round(0.3 * distance) + 1]
    tops = [int(np.argmax(column)) for column in columns.T if column.any()]
    if left == 0 or right == solid.shape[1] - 1 or not tops:
        return None
    height = y - statistics.median(tops)
    return float(right - left) / height if height > 0 else None


def readings(rgb: Rgb, models: ModelSet, save: Path | None) -> list[Reading]:
    """Every face of ``rgb`` the cut-out keeps, made into an ICAO photo."""
    faces = [
        levelled_face(rgb, found, models.aligner)
        for found in detect_faces(rgb, models.detector, DetectOptions())
    ]
    grey = np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), np.float32)
    out = []
    for face in faces:
        others = tuple(other for other in faces if other is not face)
        try:
            matte = compute_matte(rgb, face, models.segmenter, others=others)
        except NoSubject:
            continue
        result = render_id_photo(matte, face, IdPhotoOptions(get_spec("icao")))
        report = result.report
        if save is not None:
            save.parent.mkdir(parents=True, exist_ok=True)
            save.write_bytes(result.data)
        measures: dict[str, float | None] = {"marks": marks_ratio(face)}
        measures.update(iris_measures(grey, face))
        measures["head"] = head_ratio(matte, face)
        out.append(
            Reading(
                face,
                report.status.value,
                tuple(c.name for c in report.checks if c.status.value != "pass"),
                measures,
            )
        )
    return out


def matching(reading: Reading, found: list[Reading], across: float, down: float) -> Reading | None:
    """The reading of the stretched photo whose face stands where ``reading``'s does."""
    centre = reading.face.box.center

    def off(other: Reading) -> float:
        there = other.face.box.center
        return math.dist((there.x / across, there.y / down), (centre.x, centre.y))

    best = min(found, key=off, default=None)
    return best if best is not None and off(best) < 0.5 * reading.face.box.width_px else None


def show(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="only photos whose name holds this")
    parser.add_argument("--save", type=Path, help="a folder for portrait_2's photos (JPEG)")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    models = load_context(Settings().model_dump_json()).models
    limits = LimitSettings()
    photos = [p for p in real_photos(TESTDATA) if args.only is None or args.only in p.name]
    # Per stretch: the real face's reading as taken, and as stretched.
    pairs: dict[tuple[float, float], list[tuple[Reading, Reading]]] = {s: [] for s in STRETCHES}
    print("photo face stretch verdict " + " ".join(MEASURES) + " not-passed")
    for path in photos:
        rgb = decode_image(path.read_bytes(), limits).rgb
        taken: list[Reading] = []
        for across, down in STRETCHES:
            save = None
            if args.save is not None and path.stem == "portrait_2":
                save = args.save / f"{path.stem}_{across}x{down}.jpg"
            if (across, down) == (1.0, 1.0):
                found = taken = readings(rgb, models, save)
            elif taken:
                edited = stretch(across, down)(rgb, taken[0].face, no_photo)
                found = readings(edited, models, save)
            for index, before in enumerate(taken, 1):
                after = matching(before, found, across, down)
                if after is None:
                    print(f"{path.name} {index} {across}x{down} lost")
                    continue
                pairs[(across, down)].append((before, after))
                print(
                    f"{path.name} {index} {across}x{down} {after.verdict}",
                    *(show(after.measures[m]) for m in MEASURES),
                    ",".join(after.not_passed),
                    flush=True,
                )
    summarise(pairs)


def summarise(pairs: dict[tuple[float, float], list[tuple[Reading, Reading]]]) -> None:
    real = [before for before, _ in pairs[(1.0, 1.0)]]
    print(f"\n{len(real)} real faces")
    ranges = {}
    for name in MEASURES:
        values = sorted(v for r in real if (v := r.measures[name]) is not None)
        ranges[name] = (values[0], values[-1])
        deciles = statistics.quantiles(values, n=10) if len(values) > 1 else values * 9
        median = statistics.median(values)
        print(
            f"{name}: {len(values)} measured, {values[0]:.3f}-{values[-1]:.3f}, 10th-90th"
            f" percentile {deciles[0]:.3f}-{deciles[-1]:.3f}, median {median:.3f}"
        )
    print(
        "\nstretch   faces  new-warnings  verdict-worse  still-pass  "
        + "  ".join(f"{m}-beyond" for m in MEASURES)
    )
    worse_order = {"pass": 0, "warn": 1, "fail": 2}
    for stretch_, found in pairs.items():
        if stretch_ == (1.0, 1.0):
            continue
        across, down = stretch_
        wider = across / down > 1  # width over height grows
        new = sum(bool(set(after.not_passed) - set(before.not_passed)) for before, after in found)
        worse = sum(
            worse_order[after.verdict] > worse_order[before.verdict] for before, after in found
        )
        # Of the faces whose photo passes as taken, those whose stretched photo passes too.
        passing = [after for before, after in found if before.verdict == "pass"]
        still = f"{sum(after.verdict == 'pass' for after in passing)}/{len(passing)}"
        beyond = []
        for name in MEASURES:
            low, high = ranges[name]
            values = [v for _, after in found if (v := after.measures[name]) is not None]
            out = sum(v > high if wider else v < low for v in values)
            beyond.append(f"{out}/{len(values)}")
        print(
            f"{f'{across}x{down}':9} {len(found):5d}  {new:12d}  {worse:13d}  {still:>10}  "
            + "  ".join(f"{b:>14}" for b in beyond)
        )


if __name__ == "__main__":
    main()
