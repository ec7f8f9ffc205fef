"""What is laid over the face in a colour no skin has: a sticker, an emoji, face paint.

A yellow smiley over an eye or a cheek passed every check (scripts/counter_edits.py --round 2):
its drawn eyes and mouth keep light-dark detail over the eye, and the lips stay in view. What no
face has is a solid patch far more colourful than its own cheeks. Measured over the face from just
above the eyes to just below the mouth, between the outer eye corners (0.2 eye distances beyond
the eyes), the mouth's box left out (red lips and lipstick): the share of pixels whose chroma
(CIE a*b*) exceeds both COLOUR_PATCH_GAIN times and COLOUR_PATCH_OVER more than the less colourful
cheek's (the other cheek may lie under the sticker), after an opening by a disc
COLOUR_PATCH_SOLID eye distances across, so a line (a coloured glasses frame, an eyeliner's
stroke) is not counted, only a patch. Softened first by σ 0.03 eye distances, as the chin's
cover is: a pixel's grain is of any colour. Only a patch that lies on the face as an island
counts: the colourful pixels are followed COLOUR_PATCH_AROUND eye distances round the zone, and a
patch that reaches that far or the cut-out's outline is cloth or hair framing the face (a hijab,
a hood, dyed hair; ICAO takes a religious head covering in any colour), not a sticker on it.

On the 78 real faces of the test and dev-set photos with eyes 40 px or more apart (made-up faces,
beards, glasses, Obama's darker skin and faces under stage light among them) 0; a yellow smiley
0.35 eye distances in radius drawn over a cheek 0.03-0.21 (median 0.18, 69 of 78 over the limit),
over an eye 0-0.23 (median 0.17, 64 of 78; Obama's more colourful skin and a glasses wearer's eye
among those missed); a three-band flag painted on a cheek, its bands 0.17 eye distances wide, 9
of 78 (12 before patches reaching past the face were left out); hijabs in red, pink, green,
yellow, teal, orange and purple (their opening from 1.05 or 0.8 eye distances above the eye
line, or pinned close over the cheeks' edges) and a saffron turban 0 on all 78; hair dyed pink,
blue or green up to 0.030, red or thick blue glasses frames 0 (0.13 on df_img27's and df_img14's
pale skin with lines counted, the opening's disc 0.1 eye distances), a tattoo or a heart drawn
in dark ink 0 (scripts/colour_patch.py, on the edited source). On the matte of the edited photo
re-cut (portrait_2, df_img14, rose_leslie, obama, df_img27) the hijabs read at most 0.002. Not
seen: a sticker of a skin's colour, a black, grey or white one, one beside the face or reaching
its outline; a watermark's white text (docs/id-photos.md). Not judged on eyes under
EYES_OPEN_MIN_PX apart in the matte, on a face the cut-out leaves partly out, nor where the
photo's colour is not trusted. About 2.8 ms a face (1.1 before the patches were followed round
the zone; bench/compliance_cost.py).
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from faceflow.domain import Face, Point
from faceflow.pipeline.idphoto.compliance.eyes import EYES_OPEN_MIN_PX
from faceflow.pipeline.idphoto.compliance.regions import LIGHTING_MIN_ALPHA, cie, eye_distance_px
from faceflow.pipeline.idphoto.matte import Matte

COLOUR_PATCH_GAIN = 1.8
COLOUR_PATCH_OVER = 25.0
COLOUR_PATCH_SOLID = 0.2
COLOUR_PATCH_WARN = 0.08
# How far around the zone a patch is followed: one that reaches this far, or the cut-out's
# outline, frames the face (a hijab, a hood, dyed hair) rather than lying on it.
COLOUR_PATCH_AROUND = 0.5
# The face's zone, in eye distances: above the eye line, below the mouth, beyond each eye.
_ABOVE_EYES, _BELOW_MOUTH, _BESIDE_EYES = 0.1, 0.1, 0.2
# The mouth's box left out, half width and half height: lips and lipstick are red.
_MOUTH_HALF = (0.5, 0.22)
_OPAQUE = 0.5
_SOFTEN = 0.03


def colour_patch(matte: Matte, face: Face) -> float | None:
    """The share of the face covered by a patch far more colourful than the cheeks (see the
    module's docstring); None where the eyes are under :data:`EYES_OPEN_MIN_PX` apart in the
    matte or the cut-out does not hold the whole zone."""
    distance = eye_distance_px(face) / matte.source_px_per_matte_px
    if distance < EYES_OPEN_MIN_PX:
        return None
    marks = face.landmarks
    right, left = matte.to_matte_px(marks.right_eye), matte.to_matte_px(marks.left_eye)
    mouth = matte.to_matte_px(marks.mouth_centre)
    y1 = round(min(right.y, left.y) - _ABOVE_EYES * distance)
    y2 = round(mouth.y + _BELOW_MOUTH * distance)
    x1, x2 = round(right.x - _BESIDE_EYES * distance), round(left.x + _BESIDE_EYES * distance)
    height, width = matte.alpha.shape
    # The cheeks' boxes lie inside the zone: a zone the matte holds whole holds them.
    if y1 < 0 or x1 < 0 or y2 > height or x2 > width or y2 <= y1 or x2 <= x1:
        return None
    if float(matte.alpha[y1:y2, x1:x2].mean()) < LIGHTING_MIN_ALPHA:
        return None
    around = round(COLOUR_PATCH_AROUND * distance)
    ox1, oy1 = max(0, x1 - around), max(0, y1 - around)
    ox2, oy2 = min(width, x2 + around), min(height, y2 + around)
    origin = Point(ox1, oy1)
    return colour_patch_share(
        matte.foreground[oy1:oy2, ox1:ox2],
        matte.alpha[oy1:oy2, ox1:ox2] >= _OPAQUE,
        (x1 - ox1, y1 - oy1, x2 - ox1, y2 - oy1),
        tuple(Point(p.x - origin.x, p.y - origin.y) for p in (right, left, mouth)),
        distance,
    )


def colour_patch_share(
    region: NDArray[np.uint8],
    opaque: NDArray[np.bool_],
    zone: tuple[int, int, int, int],
    points: tuple[Point, ...],
    distance: float,
) -> float | None:
    """:func:`colour_patch` on ``region`` (RGB, the zone and what lies around it; ``opaque``
    where the cut-out holds the person) given the zone's box (x1, y1, x2, y2), the right eye, the
    left eye and the mouth's middle (``points``) in its pixels and the eye distance in its pixels;
    None when a cheek's box lies outside it."""
    right, left, mouth = points
    sigma = max(1.0, _SOFTEN * distance)
    soft = cv2.GaussianBlur(region, (0, 0), sigma)
    lab = cie(cv2.cvtColor(soft, cv2.COLOR_RGB2LAB).astype(np.float32))
    chroma = np.hypot(lab[..., 1], lab[..., 2])
    cheeks = []
    for eye in (right, left):
        cx, cy = round(eye.x), round(eye.y + 0.5 * distance)
        half_w, half_h = round(0.1 * distance), round(0.08 * distance)
        box = chroma[max(0, cy - half_h) : cy + half_h + 1, max(0, cx - half_w) : cx + half_w + 1]
        if box.size == 0:
            return None
        cheeks.append(float(np.median(box)))
    skin = min(cheeks)
    vivid = (chroma > max(COLOUR_PATCH_GAIN * skin, skin + COLOUR_PATCH_OVER)).astype(np.uint8)
    size = max(3, round(COLOUR_PATCH_SOLID * distance) | 1)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    laid = laid_on(cv2.morphologyEx(vivid, cv2.MORPH_OPEN, disc) > 0, opaque)
    x1, y1, x2, y2 = zone
    keep = np.ones((y2 - y1, x2 - x1), bool)
    half_w, half_h = (round(h * distance) for h in _MOUTH_HALF)
    mx, my = round(mouth.x) - x1, round(mouth.y) - y1
    keep[max(0, my - half_h) : my + half_h + 1, max(0, mx - half_w) : mx + half_w + 1] = False
    return float(laid[y1:y2, x1:x2][keep].mean()) if keep.any() else None


def laid_on(solid: NDArray[np.bool_], opaque: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """The patches of ``solid`` that lie on the person as islands: those that reach the region's
    edge or the cut-out's outline (next to a pixel not ``opaque``) left out, as cloth or hair
    framing the face does (a coloured hijab, a hood, dyed hair)."""
    _, labels = cv2.connectedComponents(solid.astype(np.uint8), connectivity=8)
    edge = cv2.dilate((~opaque).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    edge[0, :] = edge[-1, :] = edge[:, 0] = edge[:, -1] = True
    framing = np.unique(labels[edge & solid])
    return np.asarray(solid & ~np.isin(labels, framing), bool)
