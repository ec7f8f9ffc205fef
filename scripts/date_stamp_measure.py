"""A measure tried for a camera's date stamp over the clothes, and not adopted (about a third of
the stamps seen, a printed orange word on a shirt read as one: docs/id-photos.md, "The second
round"); kept here, outside the service, with scripts/date_stamp.py that measured it, for the
next attempt.

A film or early digital camera imprints the date ('98 7 14, 2024.07.14) in a lower corner, in
small seven-segment or dot-matrix digits of one height, saturated orange, amber, red-orange or
yellow and bright, often with a soft glow. The ID photo is cut out and put on a new backdrop, so a
stamp over the old wall is dropped with it, but one over the clothes stays in the finished photo
and passed every check (scripts/counter_edits.py --round 2). Read on the person as the finished
photo shows them: the cut-out's opaque pixels inside the photo's frame, from
STAMP_BELOW_MOUTH eye distances under the mouth down (the clothes; the face's warm skin and the
lips left out), at most 100 px an eye distance. A pixel is stamp-coloured where its CIE hue
angle is STAMP_HUE (red-orange to yellow), its chroma over STAMP_CHROMA and STAMP_CHROMA_GAIN
times the less colourful cheek's, its L* over STAMP_LIGHTNESS. The stamp-coloured pieces (joined
over a gap of STAMP_JOIN eye distances, as a seven-segment digit's bars or a dot-matrix digit's
dots are) are glyphs where they are STAMP_GLYPH_HEIGHT eye distances tall (and STAMP_MIN_PX or
more), not cut by the cut-out's outline or the line under the mouth (cloth, hair going on past
it), stand alone (at most STAMP_CLEAR of the strips half their height above and below them in
their colour: a sequinned or printed cloth has more), and are strokes, not a solid dot or patch
(under STAMP_SOLID of their convex hull, unless a bar). A piece up to STAMP_WIDEST heights wide
is glyphs set close and joined: it counts as its width over STAMP_PITCH heights glyphs. Glyphs
of about one height (within STAMP_SAME_HEIGHT) whose middles lie on one line, each within
STAMP_GAP heights of the next, make a row, bars ('1', a stripe's pieces) at most half of it; the
value is the longest row's number of glyphs, a warning from STAMP_GLYPHS_WARN.

Figures: scripts/date_stamp.py and docs/id-photos.md ("The second round").
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from faceflow.domain import Face, Point
from faceflow.pipeline.idphoto.compliance.regions import cie, eye_distance_px
from faceflow.pipeline.idphoto.layout import Layout
from faceflow.pipeline.idphoto.matte import Matte

# CIE hue angle, degrees: red-orange (255, 90, 20) reads 50, orange 60, amber 76, yellow 91.
STAMP_HUE = (35.0, 100.0)
# CIE chroma: the stamps' colours 80-90, a stroke blended with the clothes less; skin 15-35.
STAMP_CHROMA = 40.0
STAMP_CHROMA_GAIN = 1.6
STAMP_LIGHTNESS = 45.0
STAMP_JOIN = 0.045
STAMP_GLYPH_HEIGHT = (0.08, 0.6)
STAMP_MIN_PX = 7
# A glyph other than a bar fills at most this share of its convex hull (a dot or a patch fills
# it whole; a digit's strokes leave its corners and loops open).
STAMP_SOLID = 0.92
# A piece wider than this many heights is not glyphs set close (a stripe, a hem, a strap).
STAMP_WIDEST = 3.0
# A digit is about this share of its height wide with the space to the next.
STAMP_PITCH = 0.75
# A bar no wider than this share of its height ('1', a stripe's piece): at most half the row.
STAMP_BAR = 0.35
STAMP_SAME_HEIGHT = 0.3
STAMP_GAP = 1.6
STAMP_GLYPHS_WARN = 4
# At most this share of the strips half a glyph's height above and below it in its colour.
STAMP_CLEAR = 0.1
# Where the clothes begin: the mouth's middle plus this many eye distances.
STAMP_BELOW_MOUTH = 0.5
# The region is read at most this many pixels an eye distance: a stamp's strokes stay 2 px or
# more at the smallest glyph, and a large face costs no more than a small one.
_PX_PER_EYE_DISTANCE = 100.0
_OPAQUE = 0.5


@dataclass(frozen=True, slots=True)
class Glyph:
    """A stamp-coloured piece's box, in the region's pixels."""

    x1: int
    y1: int
    x2: int
    y2: int
    bar: bool = False

    @property
    def height(self) -> int:
        return self.y2 - self.y1

    @property
    def middle(self) -> float:
        return (self.y1 + self.y2) / 2


def date_stamp(layout: Layout, matte: Matte, face: Face) -> int | None:
    """The glyphs of the longest row of stamp-coloured digits on the person in the finished
    photo, below the mouth (see the module's docstring); None where the photo holds nothing of
    the person that low."""
    distance = eye_distance_px(face) / matte.source_px_per_matte_px
    top = round(matte.to_matte_px(face.landmarks.mouth_centre).y + STAMP_BELOW_MOUTH * distance)
    height, width = matte.alpha.shape
    if top >= height:
        return None
    shown = frame_in_matte(layout, matte)[top:]
    opaque = matte.alpha[top:] >= _OPAQUE
    if not (opaque & shown).any():
        return None
    skin = cheek_chroma(matte, face, distance)
    if skin is None:
        return None
    region = matte.foreground[top:]
    shrink = min(1.0, _PX_PER_EYE_DISTANCE / distance)
    if shrink < 1.0:
        size = (max(1, round(width * shrink)), max(1, round(region.shape[0] * shrink)))
        region = np.asarray(cv2.resize(region, size, interpolation=cv2.INTER_AREA), np.uint8)
        opaque = cv2.resize(opaque.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
        shown = cv2.resize(shown.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    return stamp_row(region, opaque, shown, distance * shrink, skin)


def frame_in_matte(layout: Layout, matte: Matte) -> NDArray[np.bool_]:
    """The matte's pixels the finished photo's frame shows."""
    to_source = cv2.invertAffineTransform(np.asarray(layout.transform, np.float64))
    corners = []
    for x, y in (
        (0, 0),
        (layout.width_px, 0),
        (layout.width_px, layout.height_px),
        (0, layout.height_px),
    ):
        sx, sy = to_source @ np.array([x, y, 1.0])
        point = matte.to_matte_px(Point(float(sx), float(sy)))
        corners.append((round(point.x), round(point.y)))
    shown = np.zeros(matte.alpha.shape, np.uint8)
    cv2.fillConvexPoly(shown, np.asarray(corners, np.int32), 1)
    return shown > 0


def stamp_coloured(region: NDArray[np.uint8], skin_chroma: float) -> NDArray[np.bool_]:
    """Where ``region`` (RGB) has a date stamp's colour: red-orange to yellow, far more
    colourful than the skin (``skin_chroma``, the cheeks' CIE chroma), light."""
    lab = cie(cv2.cvtColor(region, cv2.COLOR_RGB2LAB).astype(np.float32))
    chroma = np.hypot(lab[..., 1], lab[..., 2])
    hue = np.degrees(np.arctan2(lab[..., 2], lab[..., 1]))
    return np.asarray(
        (hue >= STAMP_HUE[0])
        & (hue <= STAMP_HUE[1])
        & (chroma >= max(STAMP_CHROMA, STAMP_CHROMA_GAIN * skin_chroma))
        & (lab[..., 0] >= STAMP_LIGHTNESS),
        bool,
    )


def cheek_chroma(matte: Matte, face: Face, distance: float) -> float | None:
    """The less colourful cheek's median CIE chroma (boxes ±0.1 × ±0.08 eye distances, half an
    eye distance below each eye), None where the matte lacks them."""
    values = []
    for eye in (face.landmarks.right_eye, face.landmarks.left_eye):
        centre = matte.to_matte_px(eye)
        cx, cy = round(centre.x), round(centre.y + 0.5 * distance)
        half_w, half_h = max(1, round(0.1 * distance)), max(1, round(0.08 * distance))
        box = matte.foreground[
            max(0, cy - half_h) : cy + half_h + 1, max(0, cx - half_w) : cx + half_w + 1
        ]
        if box.size == 0:
            return None
        lab = cie(cv2.cvtColor(np.ascontiguousarray(box), cv2.COLOR_RGB2LAB).astype(np.float32))
        values.append(float(np.median(np.hypot(lab[..., 1], lab[..., 2]))))
    return min(values)


def stamp_row(
    region: NDArray[np.uint8],
    opaque: NDArray[np.bool_],
    shown: NDArray[np.bool_],
    distance: float,
    skin_chroma: float,
) -> int:
    """:func:`date_stamp` on ``region`` (RGB; ``opaque`` where the cut-out holds the person,
    ``shown`` where the frame shows it) with ``distance`` px between the eyes and the cheeks'
    chroma ``skin_chroma``: the longest row's number of glyphs."""
    coloured = (stamp_coloured(region, skin_chroma) & opaque & shown).astype(np.uint8)
    join = max(1, round(STAMP_JOIN * distance))
    joined = cv2.morphologyEx(coloured, cv2.MORPH_CLOSE, np.ones((join, join), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
    # Pieces cut by the cut-out's outline or the line under the mouth are something going on
    # past it: cloth, hair, not a glyph. (The frame's edge may cut a stamp in a corner.)
    edge = cv2.dilate((~opaque).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    edge[0, :] = True
    cut = {int(v) for v in np.unique(labels[edge & (joined > 0)])}
    summed = np.asarray(cv2.integral(joined), np.int64)
    low, high = (max(STAMP_MIN_PX, h * distance) for h in STAMP_GLYPH_HEIGHT)
    glyphs: list[Glyph] = []
    for index in range(1, count):
        x, y, w, h, _ = (int(v) for v in stats[index])
        if not low <= h <= high or w > STAMP_WIDEST * h or index in cut:
            continue
        # A stamp stands alone on the clothes: half a height above and below it holds little of
        # its colour, where a sequinned or printed cloth's pieces lie among more of them.
        reach = max(1, h // 2)
        below = min(joined.shape[0], y + h + reach)
        around = _count(summed, x, max(0, y - reach), x + w, y) + _count(
            summed, x, y + h, x + w, below
        )
        if around > STAMP_CLEAR * 2 * reach * w:
            continue
        inside = (labels[y : y + h, x : x + w] == index).astype(np.uint8)
        outline = cv2.findContours(inside, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0]
        hull = float(cv2.contourArea(cv2.convexHull(np.concatenate(outline))))
        bar = w <= STAMP_BAR * h
        area = float(inside.sum())
        # A glyph (or glyphs set close, joined) is strokes, not a solid dot or patch.
        if not bar and area > STAMP_SOLID * max(hull, 1.0):
            continue
        # Glyphs set close are joined into one piece: it holds as many as its width takes.
        pieces = 1 if bar else max(1, round(w / (STAMP_PITCH * h)))
        step = w / pieces
        glyphs.extend(
            Glyph(round(x + k * step), y, round(x + (k + 1) * step), y + h, bar)
            for k in range(pieces)
        )
    return longest_row(glyphs)


def _count(summed: NDArray[np.int64], x1: int, y1: int, x2: int, y2: int) -> int:
    """Pixels set in the box (x1, y1)-(x2, y2) of the image whose integral is ``summed``."""
    return int(summed[y2, x2] - summed[y1, x2] - summed[y2, x1] + summed[y1, x1])


def longest_row(glyphs: list[Glyph]) -> int:
    """The most glyphs in one row: of about one height, their middles on one line, each within
    :data:`STAMP_GAP` heights of the one before (left to right)."""
    ordered = sorted(glyphs, key=lambda g: g.x1)
    best = 0
    # The longest row ending at each glyph, with how many of it are bars.
    longest = [(1, int(g.bar)) for g in ordered]
    for j, glyph in enumerate(ordered):
        for i in range(j):
            before = ordered[i]
            tall = max(glyph.height, before.height)
            if (
                abs(glyph.height - before.height) <= STAMP_SAME_HEIGHT * tall
                and abs(glyph.middle - before.middle) <= 0.35 * tall
                and -0.2 * tall <= glyph.x1 - before.x2 <= STAMP_GAP * tall
                and longest[i][0] + 1 > longest[j][0]
            ):
                longest[j] = (longest[i][0] + 1, longest[i][1] + int(glyph.bar))
        count, bars = longest[j]
        # A row of bars alone is a stripe's pieces: a date is not all ones.
        best = max(best, min(count, 2 * (count - bars)))
    return best
