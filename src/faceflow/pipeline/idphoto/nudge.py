"""Nudges: a person's corrections to the automatic framing, and the ranges they must keep to.

Plain arithmetic on a size preset, no pixels (:mod:`.layout` applies them): the API process
checks them and lists their ranges, and does not import numpy or OpenCV.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from faceflow.errors import OutOfRange
from faceflow.pipeline.idphoto.specs import IdPhotoSpec

# Nudges no rule bounds: the face's midline may move this fraction of the width off centre (a
# counter looks for a centred face: beyond 5 % the report's `face_centred` warns), and the eyes
# may be turned this far from level.
MAX_SHIFT_FRACTION = 0.1
MAX_ROLL_NUDGE_DEG = 5.0
# The automatic framing keeps this far inside the head-height and eye-line rules (the smaller of
# the two), so a counter measuring the print by hand, a pixel or two off, still finds it inside;
# a nudge keeps as far in. (A nudge was allowed to the rule's very edge: eye_line_mm=22.5 on a US
# passport reported 22.50 mm and passed, and the finished photo measured again read 22.3.)
RANGE_INSET_MM, RANGE_INSET_FRACTION = 0.5, 0.1


@dataclass(frozen=True, slots=True)
class Nudge:
    """A person's corrections to the automatic framing; ``None``/0 leaves it to the search.

    ``head_mm`` is the head height (chin to crown) and ``eye_line_mm`` the eye line from the
    bottom edge; ``shift_mm`` moves the face right (negative: left); ``roll_deg`` turns it
    clockwise as seen in the photo (negative: anticlockwise).
    """

    head_mm: float | None = None
    eye_line_mm: float | None = None
    shift_mm: float = 0.0
    roll_deg: float = 0.0

    def check(self, spec: IdPhotoSpec) -> None:
        """:class:`OutOfRange` (400) for a nudge outside what :func:`nudge_ranges` allows."""
        ranges = nudge_ranges(spec)
        values = {
            "head_mm": self.head_mm,
            "eye_line_mm": self.eye_line_mm,
            "shift_mm": self.shift_mm,
            "roll_deg": self.roll_deg,
        }
        for name, value in values.items():
            low, high = ranges[name]
            if value is not None and not low <= value <= high:
                raise OutOfRange(
                    f"{name} must be from {low:g} to {high:g} for {spec.key}",
                    {"parameter": name, "min": low, "max": high},
                )


NO_NUDGE = Nudge()


def inset_range(allowed: tuple[float, float]) -> tuple[float, float]:
    """``allowed`` (a rule's range, mm) narrowed at both ends by :data:`RANGE_INSET_MM` or
    :data:`RANGE_INSET_FRACTION` of its width, whichever is less."""
    low, high = allowed
    inset = min(RANGE_INSET_MM, RANGE_INSET_FRACTION * (high - low))
    return low + inset, high - inset


def _inward_to_tenths(allowed: tuple[float, float]) -> tuple[float, float]:
    # round(…, 6) first: 21.28 * 10 is 212.80000000000001, whose ceil would lose a tenth.
    low, high = allowed
    inner = math.ceil(round(low * 10, 6)) / 10, math.floor(round(high * 10, 6)) / 10
    return inner if inner[0] <= inner[1] else allowed  # a range under 0.1 mm wide stays as it is


def nudge_ranges(spec: IdPhotoSpec) -> dict[str, tuple[float, float]]:
    """What each :class:`Nudge` field may be for ``spec``: head height and eye line inside the
    spec's own ranges as far in as the automatic framing keeps (:func:`inset_range`, rounded
    inwards to 0.1 mm), the sideways shift and the turn inside the bounds above."""
    shift = round(spec.width_mm * MAX_SHIFT_FRACTION, 1)
    return {
        "head_mm": _inward_to_tenths(inset_range(spec.head_height_mm)),
        "eye_line_mm": _inward_to_tenths(inset_range(spec.eye_line_mm)),
        "shift_mm": (-shift, shift),
        "roll_deg": (-MAX_ROLL_NUDGE_DEG, MAX_ROLL_NUDGE_DEG),
    }
