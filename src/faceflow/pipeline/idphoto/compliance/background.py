"""Checks of what surrounds the person: the backdrop, its colour, the clothing's edge."""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from faceflow.domain import Face, Point
from faceflow.pipeline.idphoto.backdrop import BackdropKind
from faceflow.pipeline.idphoto.compliance.colour import lab_rows
from faceflow.pipeline.idphoto.compliance.regions import eye_distance_px
from faceflow.pipeline.idphoto.compliance.report import Check, CheckStatus, Limit
from faceflow.pipeline.idphoto.matte import Matte
from faceflow.pipeline.idphoto.palette import PRESET_COLOURS, Background, Rgb, matches_any

# Plain studio backgrounds measure about 6 (portrait_2); streets and offices 50–70.
BACKGROUND_STD_PASS = 12.0

# The background chosen: one the size does not list is a warning near one of those it does (an
# off-white: #f2f2f2 is ΔE 4.3 from white, the light grey preset 5.1) and a fail far from all of
# them, as a counter refuses it: red on a US passport is ΔE 103 from white, the Chinese ID blue 63.
BACKGROUND_FAR_DE = 20.0

# Share of the hair zone still the old backdrop's colour (ΔE < 10) after re-keying; portrait_2 on
# its plain grey backdrop leaves 0.01 %, so a share this large is a patch a person can see.
LEFTOVER_BACKDROP_WARN = 0.02

# Something of the old backdrop the cut-out keeps with the person (a lamp, a shade, a leaf touching
# the hair) joins the head's outline through a neck narrower than itself: a notch between it and
# the hair that a head does not make. The head's outline is taken down to HEAD_NOTCH_CUT eye
# distances below the eye line (beside the head, above the shoulders), worked on at
# HEAD_NOTCH_PX pixels an eye distance; the notch is the deepest convexity defect of its outline,
# in eye distances, leaving out the straight cut at the bottom. Of the 82 real faces of the test
# and dev-set photos (scripts/head_notch.py), 77 measure 0.03-0.31 (the deepest a gold award logo
# kept beside df_img9's hair; real hair 0.26 and less); five faces, 0.55-2.31, on busy backdrops,
# where this check warned already: four of a crowd, others' heads and bodies joined to theirs,
# and a profile at the photo's edge whose hair the cut-out dropped (df_img59's, 0.67). Of the
# objects drawn touching the hair that the cut-out kept, 183 of 196 an eye distance or more
# across are seen, 35 of 113 smaller ones (docs/id-photos.md).
HEAD_NOTCH_CUT = 0.3
HEAD_NOTCH_PX = 32.0
HEAD_NOTCH_WARN = 0.35

# Clothes that blend into the chosen background (a white top on white): the share of the
# silhouette's inner edge over the shoulders within CLOTHING_NEAR_DE of the background's colour.
# Of the 66 faces of the test and dev-set photos with shoulders in view (of 82), one (a cream top
# before a cream wall) measures 0.61 against white and 0.79 against grey; the rest (skin, lace,
# white shirts under dark suits) at most 0.34 against white, 0.42 grey, 0.37 blue and 0 red.
CLOTHING_NEAR_DE = 15.0

CLOTHING_BLEND_WARN = 0.5

SHOULDER_EDGE_MIN_PX = 50

# Clothes the colour of the old wall (a white top before a white wall, grey before grey) can be cut
# away with it, leaving a head and neck over the new background: the shoulders' edge is then gone
# and the share above reads "no shoulders in view". What is left is the cut-out's widest opaque
# row 0.6-1.2 eye-to-mouth distances below the chin (mouth + 0.9 of them, as for the shoulders'
# edge), on the rows the photo holds: a neck's width there, a real person's shoulders wider. Of
# the 82 real faces of the test and dev-set photos (docs/id-photos.md, "Clothes and hair the
# colour of the wall"), 40 hold such rows inside the frame with the cut-out short of its sides:
# 39 measure 2.87 eye distances or more (the least a long neck under a bob, df_img26), one 0 (a
# hand in a crowd taken for a face, which fails `yaw`); tops the wall's colour cut away with it
# measure 0.00-2.18 (scripts/wall_clothes.py).
SHOULDER_ROWS = (0.6, 0.8, 1.0, 1.2)
SHOULDER_WIDTH_MIN = 2.3


def check_background_uniformity(matte: Matte) -> Check:
    std = matte.background_std
    if std is None:
        return Check(
            "background_uniformity",
            None,
            Limit(None, BACKGROUND_STD_PASS, of="std"),
            CheckStatus.WARN,
            note="too little background visible to measure",
        )
    return Check(
        "background_uniformity",
        std,
        Limit(None, BACKGROUND_STD_PASS, of="std"),
        CheckStatus.PASS if std <= BACKGROUND_STD_PASS else CheckStatus.WARN,
        note="source background around the person; replaced in the output, but a busy one"
        " makes hair edges less certain",
    )


def head_notch(matte: Matte, face: Face) -> float | None:
    """The deepest notch in the cut-out's outline of the head, in eye distances (see
    :data:`HEAD_NOTCH_WARN`); None when the cut-out holds nothing down to
    :data:`HEAD_NOTCH_CUT` below the eye line (with nothing above the eyes, the strip below
    them is measured) or OpenCV takes no defects of its outline."""
    distance = eye_distance_px(face) / matte.source_px_per_matte_px
    eye = matte.to_matte_px(face.landmarks.eye_centre)
    bottom = min(matte.alpha.shape[0], round(eye.y + HEAD_NOTCH_CUT * distance))
    if bottom < 2:
        return None
    head = matte.alpha[:bottom]
    scale = min(1.0, HEAD_NOTCH_PX / distance)
    if scale < 1.0:
        size = (max(1, round(head.shape[1] * scale)), max(1, round(head.shape[0] * scale)))
        head = np.asarray(cv2.resize(head, size, interpolation=cv2.INTER_AREA), np.float32)
    # Any of the person in a cell counts: shrinking must not cut the neck an object hangs by.
    solid = (head >= np.float32(0.5 * scale * scale)).astype(np.uint8)
    contours, _ = cv2.findContours(solid, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    outline = max(contours, key=cv2.contourArea)
    unit = distance * scale
    try:
        defects = cv2.convexityDefects(outline, cv2.convexHull(outline, returnPoints=False))
    except cv2.error:  # a hull OpenCV finds not monotonic (a self-touching outline)
        return None
    if defects is None:
        return 0.0
    defects = defects.reshape(-1, 4)
    # Notches whose deepest point lies on the cut at the bottom are the cut's, not the head's.
    far_y = outline.reshape(-1, 2)[defects[:, 2], 1]
    depths = defects[:, 3][far_y < head.shape[0] - 1 - 0.1 * unit]
    return float(depths.max()) / 256.0 / unit if depths.size else 0.0


def check_leftover_backdrop(matte: Matte, face: Face) -> Check:
    """What of the old backdrop the photo still shows: an object kept with the head (its notch in
    the head's outline, :func:`head_notch`, the plainer thing to point at), else the old
    backdrop's colour left in the hair (a busy backdrop is not re-keyed: always a warning)."""
    allowed = Limit(None, LEFTOVER_BACKDROP_WARN, "fraction", "hair_zone")
    notch = head_notch(matte, face)
    if notch is not None and notch > HEAD_NOTCH_WARN:
        return Check(
            "leftover_backdrop",
            notch,
            Limit(None, HEAD_NOTCH_WARN, of="head_notch"),
            CheckStatus.WARN,
            note="the cut-out's outline of the head has a notch this deep: something of the old"
            " background joined to the head through a narrower neck, kept with the person",
            hint="Something behind you (a lamp, a plant, a picture) looks kept with your head in"
            " the cut-out: look at the outline of the head, or take the photo in front of a plain"
            " wall with nothing near the head.",
            hint_zh="抠图时您身后的物体（台灯、植物、画框等）似乎连同头部一起被保留了：请检查头部"
            "轮廓，或在头部附近没有任何物品的纯色墙前重新拍摄。",
        )
    share = matte.leftover_backdrop
    if matte.backdrop is BackdropKind.PLAIN and share is not None:
        return Check(
            "leftover_backdrop",
            share,
            allowed,
            CheckStatus.PASS if share <= LEFTOVER_BACKDROP_WARN else CheckStatus.WARN,
            note="share of the hair zone still the old backdrop's colour (ΔE < 10)",
        )
    # A busy backdrop has no colour model to re-key against: its cut-out is the model's as it is.
    note = (
        "busy backdrop: what shows through the hair could not be removed"
        if matte.backdrop is BackdropKind.BUSY
        else "too little backdrop visible to measure"
    )
    return Check("leftover_backdrop", None, allowed, CheckStatus.WARN, note=note)


def shoulder_edge(matte: Matte, face: Face) -> NDArray[np.uint8] | None:
    """The subject's own pixels along the silhouette's inner edge over the shoulders (from
    about a face's height below the chin down to three), RGB, one row each: where clothes meet
    the background. None when the cut-out does not reach the shoulders."""
    marks = face.landmarks
    mouth_y = marks.mouth_centre.y
    unit = max(1.0, mouth_y - marks.eye_centre.y)
    chin = mouth_y + 0.9 * unit
    alpha = matte.alpha
    top = int(matte.to_matte_px(Point(marks.nose.x, chin + 1.2 * unit)).y)
    bottom = int(matte.to_matte_px(Point(marks.nose.x, chin + 3.0 * unit)).y)
    top, bottom = max(0, top), min(alpha.shape[0], bottom)
    if bottom - top < 4:
        return None
    solid = (alpha[top:bottom] >= 0.95).astype(np.uint8)
    eye_distance = (marks.left_eye.x - marks.right_eye.x) / matte.source_px_per_matte_px
    reach = max(3, int(0.25 * eye_distance))
    inner = cv2.erode(solid, np.ones((2 * reach + 1, 2 * reach + 1), np.uint8))
    edge = solid.astype(bool) & ~inner.astype(bool)
    if int(edge.sum()) < SHOULDER_EDGE_MIN_PX:
        return None
    return np.asarray(matte.foreground[top:bottom][edge], dtype=np.uint8)


def shoulder_width(matte: Matte, face: Face) -> float | None:
    """The cut-out's widest opaque row (α ≥ 0.5) over ``SHOULDER_ROWS`` (eye-to-mouth distances
    below the chin) that the cut-out holds, in eye distances: a neck's where clothes the colour of
    the old wall were cut away with it, a real person's widening shoulders otherwise (the widest
    row, so a long neck above the shoulders is not taken for one). None where no row is in the
    cut-out (the photo ends above them) or the cut-out reaches the side of its crop on one (the
    shoulders go on out of the frame)."""
    marks = face.landmarks
    mouth_y = marks.mouth_centre.y
    unit = max(1.0, mouth_y - marks.eye_centre.y)
    chin = mouth_y + 0.9 * unit
    alpha = matte.alpha
    eye_distance = (marks.left_eye.x - marks.right_eye.x) / matte.source_px_per_matte_px
    widths = []
    for below in SHOULDER_ROWS:
        row = int(matte.to_matte_px(Point(marks.nose.x, chin + below * unit)).y)
        if row < 2 or row + 3 > alpha.shape[0]:
            continue
        opaque = alpha[row - 2 : row + 3] >= 0.5
        if opaque[:, 0].any() or opaque[:, -1].any():
            return None
        widths.append(float(opaque.sum(axis=1).mean()) / max(1.0, eye_distance))
    return max(widths) if widths else None


def clothing_blend(matte: Matte, face: Face, background: Background) -> float | None:
    """The share of the shoulders' edge (:func:`shoulder_edge`) within ``CLOTHING_NEAR_DE`` of
    ``background``'s colour; None with no shoulders in view."""
    edge = shoulder_edge(matte, face)
    if edge is None:
        return None
    lab = lab_rows(edge)
    target = lab_rows(np.asarray([background.colour], dtype=np.uint8))[0]
    return float((np.linalg.norm(lab - target, axis=1) < CLOTHING_NEAR_DE).mean())


def check_clothing_contrast(matte: Matte, face: Face, background: Background | None) -> Check:
    """Clothes that blend into the chosen background, or that were cut away with the old one
    (:func:`shoulder_width`; judged on a transparent photo too, which has no background yet)."""
    allowed = Limit(None, CLOTHING_BLEND_WARN, "fraction", "shoulder_edge")
    width = shoulder_width(matte, face)
    if width is not None and width < SHOULDER_WIDTH_MIN:
        return Check(
            "clothing_contrast",
            round(width, 2),
            Limit(SHOULDER_WIDTH_MIN, None, of="shoulder_width"),
            CheckStatus.WARN,
            note="the cut-out is this many eye distances wide just below the chin, a neck's "
            "width where the photo shows more: the shoulders were cut away with the old backdrop",
            hint="The cut-out has no shoulders where the photo has them: clothes the colour of "
            "the wall behind you were cut away with it. Wear a top that differs from the wall, "
            "or stand before a wall of another colour, and take the photo again.",
            hint_zh="照片中有肩部，抠图后却只剩头颈：与身后墙面颜色相近的衣服被当作背景一并去掉了。"
            "请换一件与墙面颜色不同的上衣，或换一面其他颜色的墙重新拍摄。",
        )
    if background is None:
        return Check(
            "clothing_contrast",
            None,
            allowed,
            CheckStatus.PASS,
            note="not judged: a transparent photo has no background yet",
        )
    share = clothing_blend(matte, face, background)
    if share is None:
        return Check(
            "clothing_contrast", None, allowed, CheckStatus.PASS, note="no shoulders in view"
        )
    return Check(
        "clothing_contrast",
        share,
        allowed,
        CheckStatus.PASS if share <= CLOTHING_BLEND_WARN else CheckStatus.WARN,
        note=f"share of the shoulders' edge within ΔE {CLOTHING_NEAR_DE:g} of the background",
    )


def colour_difference(a: Rgb, b: Rgb) -> float:
    """ΔE (CIE76, in CIE Lab) between two sRGB colours."""
    lab = lab_rows(np.asarray([a, b], dtype=np.uint8))
    return float(np.linalg.norm(lab[0] - lab[1]))


def check_background_colour(background: Background, allowed: tuple[str, ...]) -> Check:
    """The chosen background against the ones the size accepts: a pass on one of them, a
    warning near one (an off-white, a gradient), a fail far from all (:data:`BACKGROUND_FAR_DE`)."""
    limit = Limit(one_of=allowed)
    gradient = "" if background.style.value == "solid" else f"{background.style.value} gradient"
    if matches_any(background, allowed):
        return Check("background_colour", background.hex, limit, CheckStatus.PASS, note=gradient)
    nearest = min(
        colour_difference(background.colour, PRESET_COLOURS[name])
        for name in allowed
        if name in PRESET_COLOURS
    )
    far = nearest > BACKGROUND_FAR_DE
    note = f"ΔE {nearest:.0f} from the nearest colour it accepts" + (
        f"; {gradient}" if gradient else ""
    )
    status = CheckStatus.FAIL if far else CheckStatus.WARN
    return Check("background_colour", background.hex, limit, status, note=note)
