"""Head placement: where the source photo goes in the ID photo's frame.

The head is measured, not guessed from the detector box: the crown is the top of the matte over
the face's midline (so tall hair counts); the chin is found in the face's shading. Then one
similarity transform levels the eyes, centres the face's midline, and picks the head height and
eye line inside the spec's ranges so that the whole frame stays inside the photo.

Chin: lit from the front, the chin is a bright rounded surface over the shadow it casts on the
neck, so the brightness down the face's midline falls steeply at the chin and bottoms out in the
shadow just below. The chin is taken two thirds of the way from that steepest fall to the bottom
of the valley: measured by hand on portrait_1, portrait_2, obama, astronaut and rose_leslie, this
lands within 0.5 mm (at ICAO size) of the real chin, where the detector box's bottom edge lay
from 1.1 mm above to 0.3 mm below it. Valleys are searched between 0.45 and 1.35 eye-to-mouth
distances below the mouth, scored by depth and closeness to the landmark estimate. The face ends
at the first valley deep enough: a later valley whose fall starts below it, from something lit
again, is clothes (df_img40's white collar over a black bow tie, a fall over four times deeper
than his beard's onto the neck, was taken for the chin 2.8 mm low). The chin never lies below
where the matte's silhouette ends on the midline (a chin seen against the backdrop). Without a
clear valley (flat lighting, a beard) the estimate from the box is kept: the box edge plus 0.05
eye-to-mouth distances, or, when the box is cut by the image's bottom edge,
"mouth + 0.82 × eye-to-mouth" (measured k from 0.59 to 1.05 on the same photos).

Framing: the rules are ranges, so every combination of head height (9 steps across its range) and
eye line (17 steps) is scored by how far the frame would reach past the photo's edge where the
person runs into it (a cut through the body), then by how far the crown margin falls short of
the rule (the spec's, or 5 % of the height where it has none), then by the distance from the
middle of the ranges. When even the best choice cuts the person, the layout says by how many
millimetres on which side (``cut_mm``), and the report fails it as ``subject_cut_off``.

Nudges: a person who disagrees with the choice may fix the head height or the eye line (each
as far inside the spec's range as the search keeps, so a nudged photo still meets the rule when
measured by hand), move the face sideways by up to
a tenth of the width, and turn it by up to 5°. A fixed quantity leaves the search the others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from faceflow.domain import Face, Point
from faceflow.pipeline.detect import roll_degrees
from faceflow.pipeline.idphoto.matte import Matte, eye_centre
from faceflow.pipeline.idphoto.nudge import NO_NUDGE, Nudge, inset_range
from faceflow.pipeline.idphoto.specs import IdPhotoSpec

CHIN_BELOW_BOX = 0.05
CHIN_BELOW_MOUTH = 0.82
# The chin must lie in this band below the mouth (in eye-to-mouth distances), whatever the box says.
CHIN_BELOW_MOUTH_RANGE = (0.4, 1.4)
# Crown search: a band this many inter-eye distances wide, centred on the midline, up to this many
# face-box heights above the eyes.
CROWN_BAND_HALF_WIDTH = 0.35
CROWN_SEARCH_HEIGHT = 2.5
# When the crown is not visible (hair cut by the photo's top edge), assume it lies at least this
# many eye-to-chin distances above the eyes (measured: portrait_1 1.26, portrait_2 1.35,
# obama 0.88).
CROWN_ABOVE_EYES_FALLBACK = 1.15
# Without a crown-margin rule, keep at least this fraction of the height above the hair.
MIN_CROWN_MARGIN = 0.05
EDGES = ("top", "bottom", "left", "right")
# Chin from shading: the search window below the mouth and the band's half width (eye-to-mouth
# and inter-eye distances), the least depth of the shadow valley (0–255 luma), and where between
# the steepest fall and the valley's bottom the chin lies.
CHIN_SEARCH = (0.45, 1.35)
CHIN_BAND_HALF_WIDTH = 0.2
CHIN_VALLEY_MIN_DEPTH = 12.0
CHIN_TOWARD_VALLEY = 0.67
CHIN_PRIOR_SIGMA = 0.2
# Framing search: steps across the head-height and eye-line ranges, and how far (output px) the
# frame may reach past the photo at the person before it counts as a cut (anti-aliasing).
HEAD_STEPS, EYE_STEPS = 9, 17
CUT_TOLERANCE_PX = 1.0
EDGE_SAMPLES = 64


@dataclass(frozen=True, slots=True)
class HeadGeometry:
    """The head measured in the source, in a frame where the eyes are level.

    The *level frame* is the source rotated by ``-roll_deg`` about the eye centre, with the eye
    centre at the origin, x to the image's right and y down, in source pixels. ``crown_y`` is
    negative (above the eyes), ``chin_y`` positive. ``crown_visible`` is false when the hair
    reached the top of the crop, so the crown was estimated.
    """

    eye_centre: Point
    roll_deg: float
    midline_x: float
    crown_y: float
    chin_y: float
    eye_distance_px: float
    nose_offset: float
    crown_visible: bool

    @property
    def head_height_px(self) -> float:
        return self.chin_y - self.crown_y


@dataclass(frozen=True, slots=True)
class Layout:
    """The ID photo's geometry.

    ``transform`` is the 2×3 affine map from source pixels to output pixels. Output measurements
    are in output pixels; ``eye_line_px`` is measured up from the bottom edge. ``eye_line_moved``
    says the eye line was not put at the middle of the spec's range (the crown-margin rule moved
    it, then it was clamped into the range); ``crown_margin_px`` < 0 means hair is cut at the top.
    ``extended_edges`` are the frame edges along which the frame reaches beyond the source crop,
    where the background is filled in; ``cut_edges`` those of them where the subject visibly
    ends at the crop's edge, and ``cut_mm`` by how many millimetres the photo falls short there
    (each side of ``cut_edges`` with its shortfall, in the same order). ``centre_offset_px`` is
    how far right of the photo's middle the face's midline was put (a nudge's shift).
    """

    spec: IdPhotoSpec
    transform: NDArray[np.float64]
    width_px: int
    height_px: int
    scale: float
    head: HeadGeometry
    head_height_px: float
    eye_line_px: float
    crown_margin_px: float
    chin_margin_px: float
    eye_line_moved: bool
    extended_edges: tuple[str, ...]
    cut_edges: tuple[str, ...]
    cut_mm: tuple[float, ...] = ()
    centre_offset_px: float = 0.0

    @property
    def source_px_per_output_px(self) -> float:
        return 1.0 / self.scale


def level_rotation(face: Face) -> tuple[Point, float]:
    """The eye centre and the roll the photo is levelled by, in degrees (positive: the
    image-right eye is lower): the face's ``level_roll`` if it has one, else its eye points'."""
    if face.level_roll is not None:
        return eye_centre(face), face.level_roll
    return eye_centre(face), roll_degrees(face.landmarks)


def to_level(roll_deg: float, centre: Point) -> NDArray[np.float64]:
    """2×3 map from source pixels to the level frame (rotation by ``-roll`` about ``centre``)."""
    theta = math.radians(roll_deg)
    c, s = math.cos(theta), math.sin(theta)
    # Rotating by -theta: x' = c·dx + s·dy, y' = -s·dx + c·dy.
    return np.array(
        [
            [c, s, -(c * centre.x + s * centre.y)],
            [-s, c, s * centre.x - c * centre.y],
        ]
    )


def apply(transform: NDArray[np.float64], point: Point) -> Point:
    x = transform[0, 0] * point.x + transform[0, 1] * point.y + transform[0, 2]
    y = transform[1, 0] * point.x + transform[1, 1] * point.y + transform[1, 2]
    return Point(float(x), float(y))


def compose(outer: NDArray[np.float64], inner: NDArray[np.float64]) -> NDArray[np.float64]:
    """The 2×3 affine ``outer ∘ inner``."""
    full_outer = np.vstack([outer, [0.0, 0.0, 1.0]])
    full_inner = np.vstack([inner, [0.0, 0.0, 1.0]])
    return np.asarray((full_outer @ full_inner)[:2], dtype=np.float64)


def invert(transform: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.asarray(cv2.invertAffineTransform(transform), dtype=np.float64)


def measure_head(matte: Matte, face: Face) -> HeadGeometry:
    """Crown, chin, midline and pose of ``face``, in the level frame (see :class:`HeadGeometry`)."""
    centre, roll = level_rotation(face)
    level = to_level(roll, centre)
    marks = face.landmarks
    right, left = apply(level, marks.right_eye), apply(level, marks.left_eye)
    nose = apply(level, marks.nose)
    mouth = apply(
        level,
        Point(
            (marks.mouth_right.x + marks.mouth_left.x) / 2,
            (marks.mouth_right.y + marks.mouth_left.y) / 2,
        ),
    )
    eye_distance = max(1.0, math.hypot(left.x - right.x, left.y - right.y))
    eye_to_mouth = max(1.0, mouth.y)
    midline_x = (0.0 + nose.x) / 2
    # The turn is read within the landmarks' own frame (their eye line), where the five points
    # lean together; the photo may be levelled by another line (level.py).
    own_nose = apply(to_level(roll_degrees(marks), centre), marks.nose)
    chin = _chin_y(face, matte.source_size_px[1], roll, centre, mouth.y, eye_to_mouth)
    shaded = _chin_from_shading(matte, level, midline_x, eye_distance, mouth.y, eye_to_mouth, chin)
    if shaded is not None:
        chin = shaded
    crown, visible = _crown_y(matte, face, level, midline_x, eye_distance)
    if not visible:
        crown = min(crown, -CROWN_ABOVE_EYES_FALLBACK * chin)
    return HeadGeometry(
        eye_centre=centre,
        roll_deg=roll,
        midline_x=midline_x,
        crown_y=crown,
        chin_y=chin,
        eye_distance_px=eye_distance,
        nose_offset=own_nose.x / eye_distance,
        crown_visible=visible,
    )


def _chin_y(
    face: Face, source_height: int, roll: float, centre: Point, mouth_y: float, eye_to_mouth: float
) -> float:
    low = mouth_y + CHIN_BELOW_MOUTH_RANGE[0] * eye_to_mouth
    high = mouth_y + CHIN_BELOW_MOUTH_RANGE[1] * eye_to_mouth
    if face.box.y2 >= source_height - 1:
        return mouth_y + CHIN_BELOW_MOUTH * eye_to_mouth
    # The box bottom is horizontal in the source; the chin is where the face's down axis meets it.
    along_axis = (face.box.y2 - centre.y) / max(0.2, math.cos(math.radians(roll)))
    return min(high, max(low, along_axis + CHIN_BELOW_BOX * eye_to_mouth))


def _chin_from_shading(
    matte: Matte,
    level: NDArray[np.float64],
    midline_x: float,
    eye_distance: float,
    mouth_y: float,
    eye_to_mouth: float,
    prior: float,
) -> float | None:
    """The chin from the brightness down the face's midline (see the module docstring).

    ``None`` when no shadow valley deep enough lies in the search window.
    """
    half = CHIN_BAND_HALF_WIDTH * eye_distance
    top = mouth_y + CHIN_SEARCH[0] * eye_to_mouth
    bottom = mouth_y + CHIN_SEARCH[1] * eye_to_mouth
    # Sample at the matte's resolution, but at least 48 rows across the window.
    k = max(1.0 / matte.source_px_per_matte_px, 48.0 / (bottom - top))
    band_w, band_h = max(3, round(2 * half * k)), max(8, round((bottom - top) * k))
    to_band = np.array([[k, 0.0, -(midline_x - half) * k], [0.0, k, -top * k]])
    matte_to_band = compose(to_band, compose(level, matte.matte_to_source()))
    band = cv2.warpAffine(
        matte.foreground,
        matte_to_band,
        (band_w, band_h),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    luma = np.asarray(band, dtype=np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    # The matte below the mouth: where the person's silhouette ends on the midline (a chin
    # against the backdrop, no neck in view), the chin cannot lie lower.
    opaque = cv2.warpAffine(
        matte.alpha,
        matte_to_band,
        (band_w, band_h),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0.0,
    )
    ends = np.flatnonzero(np.asarray(opaque, dtype=np.float32).mean(axis=1) < 0.5)
    silhouette_end = top + (int(ends[0]) + 0.5) / k if len(ends) else math.inf
    profile = luma.mean(axis=1)
    sigma = max(0.8, 0.01 * eye_to_mouth * k)
    profile = np.asarray(
        cv2.GaussianBlur(profile.reshape(-1, 1), (1, 0), sigmaX=0.1, sigmaY=sigma), np.float64
    ).ravel()
    fall = np.zeros_like(profile)
    fall[1:-1] = profile[:-2] - profile[2:]  # positive where it darkens downwards
    rows = top + (np.arange(band_h) + 0.5) / k
    reach = max(2, round(0.5 * eye_to_mouth * k))
    best: tuple[float, float] | None = None
    face_end: int | None = None  # the first valley deep enough: where the face has ended
    for i in range(2, band_h - 2):
        window = profile[i - 2 : i + 3]
        if profile[i] > window.min() or profile[i] >= max(profile[i - 2], profile[i + 2]):
            continue
        start = max(0, i - reach)
        peak = start + int(np.argmax(profile[start : i + 1]))
        depth = float(profile[peak] - profile[i])
        if depth < CHIN_VALLEY_MIN_DEPTH:
            continue
        if face_end is None:
            face_end = i
        elif peak > face_end:
            # Lit again below a valley: a white collar over a dark bow tie or jacket, deeper and
            # steeper than the chin's own fall, not the face (df_img40).
            continue
        steepest = peak + int(np.argmax(fall[peak : i + 1]))
        chin = float(rows[steepest] + CHIN_TOWARD_VALLEY * (rows[i] - rows[steepest]))
        closeness = math.exp(-0.5 * ((chin - prior) / (CHIN_PRIOR_SIGMA * eye_to_mouth)) ** 2)
        if best is None or depth * closeness > best[0]:
            best = (depth * closeness, chin)
    if best is None:
        return None if prior <= silhouette_end else silhouette_end
    return min(best[1], silhouette_end)


def _crown_y(
    matte: Matte, face: Face, level: NDArray[np.float64], midline_x: float, eye_distance: float
) -> tuple[float, bool]:
    """The highest level-frame row above the eyes where the band over the midline is opaque.

    Scanning starts at the eye row and stops at the first row with no α > 0.5 in the band, so
    a raised hand or a lamp above the head cannot be mistaken for hair. Returns the row and
    whether the crown was inside the crop (false when the hair ran into the crop's top).
    """
    k = 1.0 / matte.source_px_per_matte_px  # band pixels per source pixel
    half = CROWN_BAND_HALF_WIDTH * eye_distance
    height = CROWN_SEARCH_HEIGHT * max(face.box.height_px, face.box.width_px)
    band_w, band_h = max(3, round(2 * half * k)), max(3, round(height * k))
    # level frame → band pixels: shift the band's top-left corner to the origin, then scale.
    to_band = np.array([[k, 0.0, -(midline_x - half) * k], [0.0, k, height * k]])
    matte_to_band = compose(to_band, compose(level, matte.matte_to_source()))
    opaque = (matte.alpha > 0.5).astype(np.uint8)
    band = cv2.warpAffine(
        opaque,
        matte_to_band,
        (band_w, band_h),
        flags=cv2.INTER_NEAREST,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    inside = cv2.warpAffine(
        np.ones_like(opaque),
        matte_to_band,
        (band_w, band_h),
        flags=cv2.INTER_NEAREST,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    rows_opaque = np.asarray(np.asarray(band, dtype=bool).any(axis=1), dtype=bool)
    row = band_h - 1
    while row > 0 and rows_opaque[row - 1]:
        row -= 1
    crown = row / k - height
    # The crown is trustworthy if the band continues, inside the crop, above it.
    visible = bool(row > 0 and inside[row - 1].all())
    if not rows_opaque[band_h - 1]:
        # Nothing opaque at the eyes (a failed matte): fall back to the landmark estimate.
        return 0.0, False
    return crown, visible


def plan_layout(matte: Matte, face: Face, spec: IdPhotoSpec, nudge: Nudge = NO_NUDGE) -> Layout:
    """Where ``face``'s head goes in ``spec``'s frame; see the module docstring for the rules.

    The ideal is the middle of the head-height range with the crown in the middle of the spec's
    crown margin (or the eyes in the middle of their range, moved down if the crown would come
    closer than 5 % of the height to the top). The head-height and eye-line rules always hold;
    within them the choice avoids cutting the person first, then keeps the crown margin, then
    stays near the ideal. ``nudge`` (checked by the caller) fixes what the person chose.
    """
    head = measure_head(matte, face)
    width, height = spec.width_px, spec.height_px
    ppm = spec.px_per_mm
    # The nudge turns the output clockwise: level by less than the measured roll.
    level = to_level(head.roll_deg - nudge.roll_deg, head.eye_centre)
    centre_x = width / 2 + nudge.shift_mm * ppm
    head_px = max(1.0, head.head_height_px)
    head_low, head_high = (v * ppm for v in inset_range(spec.head_height_mm))
    eye_line_low, eye_line_high = inset_range(spec.eye_line_mm)
    eye_low_px = height - eye_line_high * ppm  # highest allowed eye row (from the top)
    eye_high_px = height - eye_line_low * ppm  # lowest allowed eye row
    if spec.crown_margin_mm is not None:
        margin_low, margin_high = spec.crown_margin_mm[0] * ppm, spec.crown_margin_mm[1] * ppm
    else:
        margin_low, margin_high = MIN_CROWN_MARGIN * height, math.inf

    ideal_head = (head_low + head_high) / 2
    middle = (eye_low_px + eye_high_px) / 2

    def ideal_row_for(head_out: NDArray[np.float64]) -> NDArray[np.float64]:
        crown_to_eyes = -head.crown_y * head_out / head_px
        if spec.crown_margin_mm is not None:
            wanted = (margin_low + margin_high) / 2 + crown_to_eyes
        else:
            wanted = np.maximum(middle, margin_low + crown_to_eyes)
        return np.asarray(np.clip(wanted, eye_low_px, eye_high_px), dtype=np.float64)

    ideal_row = float(ideal_row_for(np.array([ideal_head]))[0])
    # Candidates: a grid over both ranges, plus the exact boundary solutions the grid would miss
    # (the largest head whose crown keeps its margin with the eyes as low as allowed, and for
    # every head the row nearest the ideal).
    fit_crown = (eye_high_px - margin_low) * head_px / max(1.0, -head.crown_y)
    heads = np.unique(
        np.clip(
            np.concatenate([np.linspace(head_low, head_high, HEAD_STEPS), [ideal_head, fit_crown]]),
            head_low,
            head_high,
        )
    )
    if nudge.head_mm is not None:
        heads = np.array([nudge.head_mm * ppm])
    grid_rows = np.concatenate(
        [np.tile(np.linspace(eye_low_px, eye_high_px, EYE_STEPS), len(heads)), ideal_row_for(heads)]
    )
    grid_heads = np.concatenate([np.repeat(heads, EYE_STEPS), heads])
    if nudge.eye_line_mm is not None:
        grid_rows = np.full(len(heads), height - nudge.eye_line_mm * ppm)
        grid_heads = heads
    scales = grid_heads / head_px
    cuts = _cut_px(matte, level, head.midline_x, scales, grid_rows, width, height, centre_x)
    worst_cut = cuts.max(axis=1)
    margins = grid_rows + scales * head.crown_y
    shortfall = np.maximum(0.0, margin_low - margins) + np.maximum(0.0, margins - margin_high)
    spread_head = max(1e-6, head_high - head_low)
    spread_row = max(1e-6, eye_high_px - eye_low_px)
    distance = np.abs(grid_heads - ideal_head) / spread_head + np.abs(grid_rows - ideal_row) / (
        spread_row
    )
    # Lexicographic: cut (to a pixel), then crown shortfall (to a tenth of a mm), then distance.
    order = np.lexsort(
        (
            distance,
            np.round(shortfall / (0.1 * ppm)),
            np.round(np.maximum(0.0, worst_cut - CUT_TOLERANCE_PX)),
        )
    )
    pick = int(order[0])
    scale, eye_row = float(scales[pick]), float(grid_rows[pick])
    place = np.array(
        [
            [scale, 0.0, centre_x - scale * head.midline_x],
            [0.0, scale, eye_row],
        ]
    )
    transform = compose(place, level)
    extended = extended_edges(transform, matte, width, height)
    cut = tuple(
        name for name, amount in zip(EDGES, cuts[pick], strict=True) if amount > CUT_TOLERANCE_PX
    )
    return Layout(
        spec=spec,
        transform=transform,
        width_px=width,
        height_px=height,
        scale=scale,
        head=head,
        head_height_px=head.head_height_px * scale,
        eye_line_px=height - eye_row,
        crown_margin_px=eye_row + head.crown_y * scale,
        chin_margin_px=height - (eye_row + head.chin_y * scale),
        eye_line_moved=nudge.eye_line_mm is None and abs(eye_row - middle) > 0.5,
        extended_edges=extended,
        cut_edges=cut,
        cut_mm=tuple(float(cuts[pick][EDGES.index(name)]) / ppm for name in cut),
        centre_offset_px=centre_x - width / 2,
    )


def _subject_at_crop_edges(
    matte: Matte, level: NDArray[np.float64]
) -> tuple[NDArray[np.float64], ...]:
    """For each crop side (EDGES order): level-frame points along it where the person is."""
    alpha = matte.alpha
    h, w = alpha.shape
    to_level_frame = compose(level, matte.matte_to_source())
    us, vs = np.arange(w, dtype=np.float64) + 0.5, np.arange(h, dtype=np.float64) + 0.5
    sides = (
        (np.stack([us, np.zeros(w)], axis=1), alpha[0, :]),
        (np.stack([us, np.full(w, float(h))], axis=1), alpha[-1, :]),
        (np.stack([np.zeros(h), vs], axis=1), alpha[:, 0]),
        (np.stack([np.full(h, float(w)), vs], axis=1), alpha[:, -1]),
    )
    found = []
    for points, values in sides:
        person = points[values > 0.5]
        # A sample every few pixels, and both ends: along a straight crop side the frame's
        # reach past it is largest at an end of the person's stretch or near the frame's corner.
        if len(person) > EDGE_SAMPLES:
            person = np.concatenate([person[:: len(person) // EDGE_SAMPLES], person[-1:]])
        found.append(person @ to_level_frame[:, :2].T + to_level_frame[:, 2])
    return tuple(found)


def _cut_px(
    matte: Matte,
    level: NDArray[np.float64],
    midline_x: float,
    scales: NDArray[np.float64],
    eye_rows: NDArray[np.float64],
    width: int,
    height: int,
    centre_x: float,
) -> NDArray[np.float64]:
    """(candidates, 4): how far, in output px, each frame reaches past each crop side where the
    person runs into it (0 where it does not).

    A candidate puts level-frame point (x, y) at output (s·(x − midline) + centre_x, s·y + row).
    """
    cuts = np.zeros((len(scales), len(EDGES)), dtype=np.float64)
    s = scales[:, None]
    for index, points in enumerate(_subject_at_crop_edges(matte, level)):
        if len(points) == 0:
            continue
        xs = s * (points[None, :, 0] - midline_x) + centre_x
        ys = s * points[None, :, 1] + eye_rows[:, None]
        inside_x = (xs >= 0) & (xs < width)
        inside_y = (ys >= 0) & (ys < height)
        name = EDGES[index]
        if name == "top":
            amount = np.where(inside_x & (ys > 0), ys, 0.0)
        elif name == "bottom":
            amount = np.where(inside_x & (ys < height), height - ys, 0.0)
        elif name == "left":
            amount = np.where(inside_y & (xs > 0), xs, 0.0)
        else:
            amount = np.where(inside_y & (xs < width), width - xs, 0.0)
        cuts[:, index] = amount.max(axis=1)
    return cuts


def extended_edges(
    transform: NDArray[np.float64], matte: Matte, width: int, height: int
) -> tuple[str, ...]:
    """Sides of the frame where it reaches beyond the matte's crop, named in output terms.

    Every pixel on the frame's border is mapped back to the source; one left of the crop makes
    "left" extended, one above it "top", and so on. (Roll correction is a small rotation, so the
    crop's sides and the frame's sides correspond.)
    """
    back = invert(transform)
    box = matte.crop_box
    xs = np.arange(width, dtype=np.float64) + 0.5
    ys = np.arange(height, dtype=np.float64) + 0.5
    border = np.concatenate(
        [
            np.stack([xs, np.full(width, 0.5)], axis=1),
            np.stack([xs, np.full(width, height - 0.5)], axis=1),
            np.stack([np.full(height, 0.5), ys], axis=1),
            np.stack([np.full(height, width - 0.5), ys], axis=1),
        ]
    )
    points = border @ back[:, :2].T + back[:, 2]
    tolerance = 1.0
    beyond = {
        "top": points[:, 1] < box.y1 - tolerance,
        "bottom": points[:, 1] > box.y2 + tolerance,
        "left": points[:, 0] < box.x1 - tolerance,
        "right": points[:, 0] > box.x2 + tolerance,
    }
    return tuple(name for name in EDGES if bool(beyond[name].any()))
