"""The mouth-closed check: teeth and the gap between the lips."""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from faceflow.domain import Face, Point
from faceflow.pipeline.idphoto.compliance.regions import matte_box
from faceflow.pipeline.idphoto.compliance.report import Check, CheckStatus, Limit
from faceflow.pipeline.idphoto.matte import Matte

# Mouth: lips are redder than the cheeks (Lab a*, 90th percentile minus the cheeks' median:
# 9–34 on the test portraits), or show teeth (bright, colourless pixels) or the dark of an open
# mouth; a hand over the mouth shows none of these (0–6 redder on the six test photos, dark 0 %).
# Thin, pale lips pressed together (biden.jpg: 2 redder) still show the dark line where they
# meet (3 % of the box). The palest lips with neither, of the 82 real faces of the test set and
# the devset, are two closed smiles in nude lipstick at 10 (they failed at the old minimum, 12):
# the minimum sits halfway between them and the hands.
# Dark filling most of the mouth box is an object (a microphone: 90–100 %), not an open mouth;
# a full dark beard around a closed mouth fills 63 %.
LIPS_RED_MIN = 8.0

TEETH_MIN, OPENING_MIN = 0.03, 0.015


MOUTH_SPREAD_MIN = 4.0


# Teeth over this share of the mouth box: an open-mouthed smile (obama.jpg 0.25), which ICAO
# 9303 and most counters refuse; a closed smile stays below 0.1.
MOUTH_OPEN_WARN = 0.12

# Lips apart with no teeth showing (speech, an "O" mouth), which the teeth measure cannot see:
# the height of the dark gap between the lips, in eye distances. A band over the mouth's middle
# (±0.35 of its half-width, from 0.2 eye distances above the corners' line to 0.3 below) is
# resampled to MOUTH_GAP_SCALE_PX between the eyes and read row by row (medians across the
# band, against the cheeks): the gap is the longest run of dark rows (under MOUTH_GAP_DARK × the
# cheeks' lightness) that reaches the corners' line (MOUTH_GAP_LINE eye distances about it),
# has lips above and below it (rows redder than the cheeks by MOUTH_GAP_LIPS × the band's
# reddest row and by MOUTH_GAP_LIPS_MIN at least, within MOUTH_GAP_REACH) and holds the mouth's
# inside: a row under MOUTH_GAP_INSIDE × the cheeks' lightness and MOUTH_GAP_INSIDE_OF_LIPS ×
# the lips', less red than MOUTH_GAP_INSIDE_RED × the lips (a closed mouth's line darkest in
# shade, portrait_1's darkened to 45 %, 0.27 of the cheeks and 0.44 of the lips; the open
# mouths' insides 0.03-0.18 and 0.03-0.31).
# A closed mouth's line, however dark in the shade of a lip, keeps the lips' red; a moustache
# or beard is dark but has no lips above it; the nostrils' shade lies above the corners' line.
# Over the 82 faces of the test and dev-set photos (scripts/compliance_ranges.py) every face but
# three measures 0 (df_img1's smile 0.03 since teeth border a gap, below): closed mouths,
# bearded ones (on df_img16, df_img17 and df_img61 a run of dark rows alone read 0.16-0.22, as
# open as df_img57) and smiles showing teeth (the teeth break the run), also after JPEG at
# quality 15-60, a blur of 1-2 px, darkened to 45 % or grain of 8.
# The three open: df_img57 (mid-word, an "O") 0.17, df_img19 (lips apart, the teeth's edges) 0.11,
# df_img67 (lips parted) 0.10. portrait_2 with the lips opened (verdict_cases.open_mouth) by
# 0.04, 0.06 and 0.14 eye distances 0.08, 0.10 and 0.17. A warning, as for teeth: three real
# open mouths are too few to refuse a photo on.
# A smile's lips meet as low as 0.14 eye distances below its corners (df_img47); lips parted
# over a smile's teeth have teeth, not lip, on one side of the gap (df_img48's lower teeth,
# lighter than MOUTH_GAP_TEETH_LIGHT × the cheeks and less red than them by MOUTH_GAP_TEETH_UNRED):
# the corners' line reaches 0.2 eye distances below them, and teeth border a gap as lips do. The
# lips opened by 0.1 eye distances (verdict_cases.open_mouth) then read 0.07 or more on 4 more of
# 67 real faces (df_img8, df_img43, df_img47, df_img48), and no real face reads more than before
# (the closed ones at most 0.03, df_img1's smile, which warns on its teeth).
MOUTH_GAP_WARN = 0.07

MOUTH_GAP_SCALE_PX = 100.0

MOUTH_GAP_BAND = (-0.2, 0.3)

MOUTH_GAP_DARK, MOUTH_GAP_INSIDE = 0.45, 0.3

MOUTH_GAP_LIPS, MOUTH_GAP_INSIDE_RED = 0.3, 0.4

MOUTH_GAP_INSIDE_OF_LIPS = 0.4

MOUTH_GAP_LIPS_MIN = 4.0

MOUTH_GAP_REACH = 0.05

MOUTH_GAP_LINE = (-0.05, 0.2)

MOUTH_GAP_TEETH_LIGHT, MOUTH_GAP_TEETH_UNRED = 0.75, 3.0


def check_mouth_closed(
    teeth: float, gap: float | None, *, occluded: bool, closed_mouth: bool
) -> Check:
    """Teeth showing (``teeth``, their share of the mouth box) or the lips apart with none
    (``gap``, :func:`lips_gap`; None when not measured): a warning either way."""
    wanted = (
        "this size asks for the mouth closed"
        if closed_mouth
        else "most passports want the mouth closed"
    )
    teeth_limit = Limit(None, MOUTH_OPEN_WARN, "fraction", "teeth_of_mouth")
    if teeth >= MOUTH_OPEN_WARN and not occluded:
        # A warning even where the size asks for the mouth closed: the teeth measure reads pale
        # skin above the upper lip and the shine on the lips as teeth on 2 of 44 closed mouths
        # (rose_leslie 0.16, and only at some JPEG qualities), and misses teeth no lighter
        # than the cheeks on 8 of 25 open smiles: not sure enough to refuse a photo.
        return Check(
            "mouth_closed", teeth, teeth_limit, CheckStatus.WARN, note=f"teeth showing: {wanted}"
        )
    if gap is not None and gap >= MOUTH_GAP_WARN:
        return Check(
            "mouth_closed",
            gap,
            Limit(None, MOUTH_GAP_WARN, of="lips_gap"),
            CheckStatus.WARN,
            note=f"the lips are apart (a dark gap between them): {wanted}",
        )
    apart = "" if gap is None else f"; the lips {gap:.2f} eye distances apart"
    return Check(
        "mouth_closed",
        teeth,
        teeth_limit,
        CheckStatus.PASS,
        note=f"teeth {teeth:.0%} of the mouth area{apart}",
    )


def _mouth_rows(
    lab: NDArray[np.float32], matte: Matte, face: Face, distance: float
) -> tuple[NDArray[np.float32], NDArray[np.float32]] | None:
    """The median L and a* (OpenCV's 8-bit Lab) of each row of the band over the mouth's middle
    (see :data:`MOUTH_GAP_WARN`), resampled to :data:`MOUTH_GAP_SCALE_PX` between the eyes so
    a row is 0.01 eye distances; None when the band is not in the cut-out."""
    marks = face.landmarks
    half_mouth = max(1.0, (marks.mouth_left.x - marks.mouth_right.x) / 2)
    top, bottom = MOUTH_GAP_BAND
    middle = Point(marks.mouth_centre.x, marks.mouth_centre.y + (top + bottom) / 2 * distance)
    rows, cols = matte_box(matte, middle, 0.35 * half_mouth, (bottom - top) / 2 * distance)
    band = np.ascontiguousarray(lab[rows, cols, :2])
    if band.shape[0] < 2 or band.shape[1] < 1:
        return None
    scale = MOUTH_GAP_SCALE_PX * matte.source_px_per_matte_px / distance
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resampled = cv2.resize(band, None, fx=scale, fy=scale, interpolation=interpolation)
    if resampled.ndim < 3:
        return None
    medians = np.median(resampled, axis=1).astype(np.float32)
    return medians[:, 0], medians[:, 1]


def lips_gap(
    lab: NDArray[np.float32],
    matte: Matte,
    face: Face,
    distance: float,
    skin_l: float,
    skin_a: float,
) -> float | None:
    """The height of the dark gap between parted lips (or a lip and teeth), in eye distances
    (see :data:`MOUTH_GAP_WARN`): 0 for a closed mouth. ``lab`` is the matte's pixels in OpenCV's
    8-bit Lab, ``skin_l`` and ``skin_a`` the cheeks' median L and a* in it. None when the mouth
    is not in the cut-out."""
    found = _mouth_rows(lab, matte, face, distance)
    if found is None:
        return None
    light, red = found[0] / max(1.0, skin_l), found[1] - skin_a
    lips_red = max(MOUTH_GAP_LIPS_MIN, float(red.max()))
    lips = red >= max(MOUTH_GAP_LIPS_MIN, MOUTH_GAP_LIPS * lips_red)
    lips_light = float(np.median(light[lips])) if lips.any() else 1.0
    # What may border the gap: lips, or teeth (light and less red than the cheeks).
    border = lips | ((light >= MOUTH_GAP_TEETH_LIGHT) & (red <= -MOUTH_GAP_TEETH_UNRED))
    inside = (
        (light < MOUTH_GAP_INSIDE)
        & (light < MOUTH_GAP_INSIDE_OF_LIPS * lips_light)
        & (red < MOUTH_GAP_INSIDE_RED * lips_red)
    )
    reach = max(1, round(MOUTH_GAP_REACH * MOUTH_GAP_SCALE_PX))
    line = [round((at - MOUTH_GAP_BAND[0]) * MOUTH_GAP_SCALE_PX) for at in MOUTH_GAP_LINE]
    padded = np.concatenate(([0], (light < MOUTH_GAP_DARK).astype(np.int8), [0]))
    edges = np.flatnonzero(np.diff(padded))
    gaps = [
        int(end - start)
        for start, end in zip(edges[::2], edges[1::2], strict=True)
        if end > line[0]
        and start < line[1]
        and border[max(0, start - reach) : start].any()
        and border[end : end + reach].any()
        and inside[start:end].any()
    ]
    return max(gaps, default=0) / MOUTH_GAP_SCALE_PX
