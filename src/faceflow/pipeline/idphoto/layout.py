"""Head placement: where the source photo goes in the ID photo's frame.

The head is measured, not guessed from the detector box: the crown is the top of the matte over
the face's midline (so tall hair counts), the chin comes from the detector. Then one similarity
transform levels the eyes, scales the head to the middle of the spec's head-height range, centres
the face's midline and puts the eye line inside the spec's range.

Chin: YuNet's box bottom edge sits on the chin. Measured on six test photos (portrait_1/2, obama,
biden, rose_leslie, astronaut), the chin lay (0.05 ± 0.08) × the eye-to-mouth distance below the
box edge, while "mouth + k × eye-to-mouth" needed k from 0.59 to 1.05 (smiles lift the mouth
corners; chins differ). So the chin is the box edge plus 0.05 of that distance, and the landmark
rule with the mean k = 0.82 is the fallback when the box is cut by the image's bottom edge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from faceflow.domain import Face, Point
from faceflow.pipeline.idphoto.matte import Matte, eye_centre
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
MIN_CROWN_MARGIN = 0.02
EDGES = ("top", "bottom", "left", "right")


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
    ends at the crop's edge.
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

    @property
    def source_px_per_output_px(self) -> float:
        return 1.0 / self.scale


def level_rotation(face: Face) -> tuple[Point, float]:
    """The eye centre and the roll in degrees (positive: the image-right eye is lower)."""
    marks = face.landmarks
    dx = marks.left_eye.x - marks.right_eye.x
    dy = marks.left_eye.y - marks.right_eye.y
    return eye_centre(face), math.degrees(math.atan2(dy, dx))


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
    eye_distance = max(1.0, left.x - right.x)
    eye_to_mouth = max(1.0, mouth.y)
    midline_x = (0.0 + nose.x) / 2
    chin = _chin_y(face, matte.source_size_px[1], roll, centre, mouth.y, eye_to_mouth)
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
        nose_offset=(nose.x - 0.0) / eye_distance,
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


def plan_layout(matte: Matte, face: Face, spec: IdPhotoSpec) -> Layout:
    """Where ``face``'s head goes in ``spec``'s frame; see the module docstring for the rules.

    Vertical placement: with a crown-margin rule (China), the crown goes to the middle of that
    margin; otherwise the eye line goes to the middle of its range, moved down if that would put
    the crown closer than 2 % of the height to the top. Either way the eye line is then clamped
    into the spec's range: the head-height rule always holds, the eye line rule holds by
    clamping, and the crown margin gives way (reported as ``crown_margin_px``).
    """
    head = measure_head(matte, face)
    width, height = spec.width_px, spec.height_px
    ppm = spec.px_per_mm
    target_head = (spec.head_height_mm[0] + spec.head_height_mm[1]) / 2 * ppm
    scale = target_head / max(1.0, head.head_height_px)
    crown_to_eyes = -head.crown_y * scale
    eye_low_px = height - spec.eye_line_mm[1] * ppm  # highest allowed eye row (from the top)
    eye_high_px = height - spec.eye_line_mm[0] * ppm  # lowest allowed eye row
    middle = (eye_low_px + eye_high_px) / 2
    if spec.crown_margin_mm is not None:
        wanted = (spec.crown_margin_mm[0] + spec.crown_margin_mm[1]) / 2 * ppm + crown_to_eyes
    else:
        wanted = max(middle, MIN_CROWN_MARGIN * height + crown_to_eyes)
    eye_row = min(eye_high_px, max(eye_low_px, wanted))
    level = to_level(head.roll_deg, head.eye_centre)
    place = np.array(
        [
            [scale, 0.0, width / 2 - scale * head.midline_x],
            [0.0, scale, eye_row],
        ]
    )
    transform = compose(place, level)
    extended = extended_edges(transform, matte, width, height)
    return Layout(
        spec=spec,
        transform=transform,
        width_px=width,
        height_px=height,
        scale=scale,
        head=head,
        head_height_px=head.head_height_px * scale,
        eye_line_px=height - eye_row,
        crown_margin_px=eye_row - crown_to_eyes,
        chin_margin_px=height - (eye_row + head.chin_y * scale),
        eye_line_moved=abs(eye_row - middle) > 0.5,
        extended_edges=extended,
        cut_edges=tuple(e for e in cut_edges(transform, matte, width, height) if e in extended),
    )


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


def cut_edges(
    transform: NDArray[np.float64], matte: Matte, width: int, height: int
) -> tuple[str, ...]:
    """Crop sides where the subject (α > 0.5) runs into the crop's edge inside the frame.

    Along an extended edge these show as a hard cut (a shoulder ending in mid-air); elsewhere
    an extended edge only adds more plain background.
    """
    alpha = matte.alpha
    h, w = alpha.shape
    to_output = compose(transform, matte.matte_to_source())
    us, vs = np.arange(w, dtype=np.float64) + 0.5, np.arange(h, dtype=np.float64) + 0.5
    sides = {
        "top": (np.stack([us, np.zeros(w)], axis=1), alpha[0, :]),
        "bottom": (np.stack([us, np.full(w, float(h))], axis=1), alpha[-1, :]),
        "left": (np.stack([np.zeros(h), vs], axis=1), alpha[:, 0]),
        "right": (np.stack([np.full(h, float(w)), vs], axis=1), alpha[:, -1]),
    }
    found: list[str] = []
    for name in EDGES:
        points, values = sides[name]
        mapped = points @ to_output[:, :2].T + to_output[:, 2]
        in_frame = (
            (mapped[:, 0] >= 0)
            & (mapped[:, 0] < width)
            & (mapped[:, 1] >= 0)
            & (mapped[:, 1] < height)
        )
        if bool((in_frame & (values > 0.5)).any()):
            found.append(name)
    return tuple(found)
