"""The compliance report: each rule an ID photo is judged by, measured, with pass / warn / fail.

The verdict is what a counter would decide: ``pass`` it would accept, ``fail`` it would not,
``warn`` for something a person should look at. The overall status is the worst check's.

Geometry checks (head height, eye line, crown margin, whether the frame cuts the person) measure the
photo as laid out; pose checks (roll, yaw), the face checks (something in front of the face, eyes
visible and open, no glare over them, mouth closed, even lighting) and image-quality checks
(background, resolution, sharpness and focus, exposure, colour and skin colour, JPEG blocks or
mosaic, banded tones) measure the subject's pixels, because a tilted head, a hand over the mouth, a
blurred, black-and-white, sepia, colour-cast, over-compressed, posterised or enlarged shot cannot be
fixed by cropping (`resolution` counts the detail the face holds, not only its pixels). The face
checks look at a few small patches around the landmarks, the quality checks at the central face, so
the whole report costs a few milliseconds.

Every check carries a plain-language hint in English and Chinese (``hint``, ``hint_zh``): what to
do about it when it does not pass.

The checks live by what they look at: ``geometry`` (the layout: head size and place, pose,
resolution, cut edges), ``background`` (the backdrop, its colour, the clothing's edge against it),
``quality`` (sharpness, focus, smears, exposure, noise, JPEG blocks, banding), ``colour`` (colour,
skin colour, even lighting), ``eyes``, ``mouth``, ``overlays`` (a sticker or paint over the
face) and ``features`` (what covers the face, and the face checks together); ``report`` holds the
result types, ``hints`` the messages and ``regions`` where on the face the checks look.
:func:`assess` runs them all.
"""

from __future__ import annotations

from faceflow.domain import Face
from faceflow.pipeline.idphoto.compliance.background import (
    check_background_colour,
    check_background_uniformity,
    check_clothing_contrast,
    check_leftover_backdrop,
)
from faceflow.pipeline.idphoto.compliance.colour import (
    check_colour,
    check_skin_colour,
    measurable_lab,
    tone_spread,
)
from faceflow.pipeline.idphoto.compliance.eyes import check_eye_glare
from faceflow.pipeline.idphoto.compliance.features import check_face_features
from faceflow.pipeline.idphoto.compliance.geometry import (
    check_crown,
    check_eye_line,
    check_face_centred,
    check_face_count,
    check_head_height,
    check_resolution,
    check_roll,
    check_subject_cut_off,
    check_yaw,
)
from faceflow.pipeline.idphoto.compliance.hints import HINTS
from faceflow.pipeline.idphoto.compliance.quality import (
    check_banding,
    check_blockiness,
    check_face_quality,
    check_motion_blur,
    check_noise,
    enlargement,
    file_compression,
)
from faceflow.pipeline.idphoto.compliance.regions import (
    eye_distance_px,
    face_region,
    forehead_pixels,
)
from faceflow.pipeline.idphoto.compliance.report import Check, CheckStatus, ComplianceReport, Limit
from faceflow.pipeline.idphoto.layout import Layout
from faceflow.pipeline.idphoto.matte import Matte
from faceflow.pipeline.idphoto.palette import Background


def assess(
    layout: Layout, matte: Matte, face: Face, background: Background | None
) -> ComplianceReport:
    """Every check for a photo laid out by ``layout`` from ``matte`` on ``background`` (None: a
    transparent photo, whose background is whatever it is later placed on)."""
    spec = layout.spec
    region = face_region(matte, face)
    quality = check_face_quality(region, forehead_pixels(matte, face))
    lab = measurable_lab(region)  # converted once for both colour checks
    colour = check_colour(lab, tone_spread(region))
    skin = check_skin_colour(lab, colour)
    # Lips and teeth are told by colour: not judged where there is none or a cast hides them.
    if colour.status is CheckStatus.FAIL:
        colour_off = "the photo has no colour to tell lips and teeth by"
    elif colour.status is CheckStatus.WARN:
        # Under half the least colour of a real face: greyed lips read as teeth (portrait_1
        # under a mild cyan cast).
        colour_off = "the photo has too little colour to tell lips and teeth by"
    elif skin.status is CheckStatus.FAIL:
        colour_off = "the face's colour cast hides lips and teeth"
    elif skin.status is CheckStatus.WARN and skin.limit.of == "saturation":
        # Pale skin washed grey reads as teeth (df_img3 under a cyan cast: "mouth open").
        colour_off = "the face's colour is too washed out to tell lips and teeth by"
    else:
        colour_off = ""
    yaw = check_yaw(layout)
    blocks = check_blockiness(region)
    checks = [
        check_face_count(layout, matte),
        check_head_height(layout),
        check_eye_line(layout),
        check_face_centred(layout),
        check_crown(layout, matte),
        check_roll(layout),
        yaw,
        check_background_uniformity(matte),
        check_leftover_backdrop(matte, face),
        check_background_colour(background, spec.backgrounds)
        if background is not None
        else Check(
            "background_colour",
            "transparent",
            Limit(one_of=spec.backgrounds),
            CheckStatus.PASS,
            note="not judged: a transparent photo takes the background it is placed on",
        ),
        check_resolution(layout, enlargement(region, matte.source_px_per_matte_px)),
        check_clothing_contrast(matte, face, background),
        *quality,
        check_motion_blur(region, focus_value=float(quality[1].value or 0.0)),
        check_noise(matte, face, eye_distance_px(face)),
        colour,
        skin,
        blocks,
        check_banding(region, grid=float(blocks.value or 1.0)),
        *check_face_features(
            matte,
            face,
            colour_off=colour_off,
            glasses_allowed=spec.glasses_allowed,
            closed_mouth=spec.closed_mouth,
            turned=yaw.status is CheckStatus.FAIL,
        ),
        check_eye_glare(matte, face),
        check_subject_cut_off(layout),
    ]
    return ComplianceReport(tuple(checks), layout.extended_edges)


__all__ = [
    "HINTS",
    "Check",
    "CheckStatus",
    "ComplianceReport",
    "Limit",
    "assess",
    "file_compression",
]
