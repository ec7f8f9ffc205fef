"""The compliance report: each rule an ID photo is judged by, measured, with pass / warn / fail.

Geometry checks (head height, eye line, crown margin) measure the photo as laid out; pose checks
(roll, yaw) and image-quality checks (background, resolution, sharpness, exposure) measure the
source, because a tilted head or a blurred shot cannot be fixed by cropping. The overall status
is the worst check's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from faceflow.domain import Face, Point
from faceflow.pipeline.idphoto.background import Background, matches_any
from faceflow.pipeline.idphoto.layout import Layout
from faceflow.pipeline.idphoto.matte import Matte

# Roll is corrected by rotating the photo, but a strongly tilted head leaves the shoulders tilted.
ROLL_PASS_DEG, ROLL_WARN_DEG = 8.0, 20.0
YAW_PASS_DEG, YAW_WARN_DEG = 8.0, 15.0
# The nose tip stands about half an inter-eye distance in front of the eyes (adult average), so
# turning the head by yaw shifts it sideways by ~0.5 · sin(yaw) eye distances.
NOSE_DEPTH_EYE_DISTANCES = 0.5
# Plain studio backgrounds measure about 6 (portrait_2); streets and offices 50–70.
BACKGROUND_STD_PASS = 12.0
RESOLUTION_PASS, RESOLUTION_FAIL = 1.0, 0.6
# Laplacian variance of the central face scaled to SHARPNESS_FACE_PX wide. Measured on seven test
# photos: 150–520 as taken; 5–10 after a Gaussian blur of σ = 2 px at that scale; 2–3.5 at σ = 5.
SHARPNESS_FACE_PX = 128
SHARPNESS_PASS, SHARPNESS_FAIL = 50.0, 12.0
EXPOSURE_PASS = (70.0, 210.0)
EXPOSURE_WARN = (45.0, 235.0)
CLIPPED_PASS, CLIPPED_WARN = 0.02, 0.10
HEAD_HEIGHT_WARN_SLACK = 0.05  # a head within 5 % outside the range is a warning


class CheckStatus(StrEnum):
    PASS = "pass"  # noqa: S105 - a verdict, not a password
    WARN = "warn"
    FAIL = "fail"

    @property
    def rank(self) -> int:
        return {"pass": 0, "warn": 1, "fail": 2}[self.value]


@dataclass(frozen=True, slots=True)
class Check:
    """One rule: the measured ``value``, what is ``allowed`` (human-readable) and the verdict."""

    name: str
    value: float | int | str | None
    allowed: str
    status: CheckStatus
    unit: str = ""
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        value = round(self.value, 3) if isinstance(self.value, float) else self.value
        out: dict[str, Any] = {
            "name": self.name,
            "value": value,
            "allowed": self.allowed,
            "status": self.status.value,
        }
        if self.unit:
            out["unit"] = self.unit
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True, slots=True)
class ComplianceReport:
    checks: tuple[Check, ...]
    extended_edges: tuple[str, ...]

    @property
    def status(self) -> CheckStatus:
        return max((c.status for c in self.checks), key=lambda s: s.rank, default=CheckStatus.PASS)

    def check(self, name: str) -> Check:
        for item in self.checks:
            if item.name == name:
                return item
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "extended_edges": list(self.extended_edges),
            "checks": [c.to_dict() for c in self.checks],
        }


def _within(value: float, low: float, high: float) -> bool:
    return low <= value <= high


def assess(
    layout: Layout, matte: Matte, face: Face, background: Background, face_count: int = 1
) -> ComplianceReport:
    """Every check for a photo laid out by ``layout`` from ``matte`` on ``background``."""
    spec = layout.spec
    checks = [
        Check(
            "face_count",
            face_count,
            "exactly 1",
            CheckStatus.PASS if face_count == 1 else CheckStatus.FAIL,
        ),
        _head_height(layout),
        _eye_line(layout),
        _crown(layout),
        _roll(layout),
        _yaw(layout),
        _background_uniformity(matte),
        Check(
            "background_colour",
            background.hex,
            " or ".join(spec.backgrounds),
            CheckStatus.PASS if matches_any(background, spec.backgrounds) else CheckStatus.WARN,
            note="" if background.style.value == "solid" else f"{background.style.value} gradient",
        ),
        _resolution(layout),
        *_face_quality(matte, face),
        _coverage(layout),
    ]
    return ComplianceReport(tuple(checks), layout.extended_edges)


def _head_height(layout: Layout) -> Check:
    spec = layout.spec
    ratio = layout.head_height_px / layout.height_px
    low, high = spec.head_height_mm[0] / spec.height_mm, spec.head_height_mm[1] / spec.height_mm
    if _within(ratio, low, high):
        status = CheckStatus.PASS
    elif _within(ratio, low * (1 - HEAD_HEIGHT_WARN_SLACK), high * (1 + HEAD_HEIGHT_WARN_SLACK)):
        status = CheckStatus.WARN
    else:
        status = CheckStatus.FAIL
    mm = layout.head_height_px / spec.px_per_mm
    return Check(
        "head_height_ratio",
        ratio,
        f"{low:.3f}–{high:.3f} ({spec.head_height_mm[0]:g}–{spec.head_height_mm[1]:g} mm)",
        status,
        note=f"{mm:.1f} mm chin to crown",
    )


def _eye_line(layout: Layout) -> Check:
    spec = layout.spec
    mm = layout.eye_line_px / spec.px_per_mm
    low, high = spec.eye_line_mm
    if _within(mm, low - 0.05, high + 0.05):
        status = CheckStatus.PASS
    elif _within(mm, low - 1.0, high + 1.0):
        status = CheckStatus.WARN
    else:
        status = CheckStatus.FAIL
    note = (
        "moved from the middle of the range to respect the crown margin"
        if (layout.eye_line_moved)
        else ""
    )
    return Check("eye_line", mm, f"{low:g}–{high:g} mm from the bottom", status, "mm", note)


def _crown(layout: Layout) -> Check:
    spec = layout.spec
    mm = layout.crown_margin_px / spec.px_per_mm
    if spec.crown_margin_mm is not None:
        low, high = spec.crown_margin_mm
        allowed = f"{low:g}–{high:g} mm"
        ok = _within(mm, low - 0.05, high + 0.05)
    else:
        allowed = "≥ 0 mm (hair inside the frame)"
        ok = mm >= 0.0
    status = CheckStatus.PASS if ok else CheckStatus.WARN
    note = ""
    if not layout.head.crown_visible:
        status = CheckStatus.WARN
        note = "the top of the head is cut off in the source; the crown was estimated"
    elif mm < 0:
        note = "hair is cut at the top to keep the head-height and eye-line rules"
    return Check("crown_margin", mm, allowed, status, "mm", note)


def _roll(layout: Layout) -> Check:
    roll = layout.head.roll_deg
    magnitude = abs(roll)
    status = (
        CheckStatus.PASS
        if magnitude <= ROLL_PASS_DEG
        else CheckStatus.WARN
        if magnitude <= ROLL_WARN_DEG
        else CheckStatus.FAIL
    )
    note = "eyes levelled in the output" if magnitude >= 0.5 else ""
    return Check("roll", roll, f"±{ROLL_PASS_DEG:g}°", status, "deg", note)


def _yaw(layout: Layout) -> Check:
    shift = layout.head.nose_offset / NOSE_DEPTH_EYE_DISTANCES
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, shift))))
    magnitude = abs(yaw)
    status = (
        CheckStatus.PASS
        if magnitude <= YAW_PASS_DEG
        else CheckStatus.WARN
        if magnitude <= YAW_WARN_DEG
        else CheckStatus.FAIL
    )
    return Check(
        "yaw", yaw, f"±{YAW_PASS_DEG:g}°", status, "deg", "estimated from the nose's offset"
    )


def _background_uniformity(matte: Matte) -> Check:
    std = matte.background_std
    if std is None:
        return Check(
            "background_uniformity",
            None,
            f"std ≤ {BACKGROUND_STD_PASS:g}",
            CheckStatus.WARN,
            note="too little background visible to measure",
        )
    return Check(
        "background_uniformity",
        std,
        f"std ≤ {BACKGROUND_STD_PASS:g}",
        CheckStatus.PASS if std <= BACKGROUND_STD_PASS else CheckStatus.WARN,
        note="source background around the person; replaced in the output, but a busy one"
        " makes hair edges less certain",
    )


def _resolution(layout: Layout) -> Check:
    value = layout.source_px_per_output_px
    status = (
        CheckStatus.PASS
        if value >= RESOLUTION_PASS
        else CheckStatus.WARN
        if value >= RESOLUTION_FAIL
        else CheckStatus.FAIL
    )
    return Check(
        "resolution",
        value,
        f"≥ {RESOLUTION_PASS:g} source px per output px",
        status,
        note="" if status is CheckStatus.PASS else "the source is enlarged; the print may be soft",
    )


def face_region(matte: Matte, face: Face) -> NDArray[np.uint8]:
    """The central face (brows to mouth, between the outer eye corners) from the matte, RGB."""
    marks = face.landmarks
    eye_distance = max(1.0, marks.left_eye.x - marks.right_eye.x)
    mouth_y = max(marks.mouth_left.y, marks.mouth_right.y)
    top_left = matte.to_matte_px(
        Point(
            marks.right_eye.x - 0.3 * eye_distance,
            min(marks.right_eye.y, marks.left_eye.y) - 0.3 * eye_distance,
        )
    )
    bottom_right = matte.to_matte_px(
        Point(marks.left_eye.x + 0.3 * eye_distance, mouth_y + 0.1 * eye_distance)
    )
    height, width = matte.alpha.shape
    x1, y1 = max(0, int(top_left.x)), max(0, int(top_left.y))
    x2, y2 = min(width, math.ceil(bottom_right.x)), min(height, math.ceil(bottom_right.y))
    return matte.foreground[y1:y2, x1:x2]


def sharpness(region: NDArray[np.uint8]) -> float:
    """Variance of the Laplacian of ``region`` scaled to a fixed width (so size does not count)."""
    if region.size == 0:
        return 0.0
    scale = SHARPNESS_FACE_PX / region.shape[1]
    size = (SHARPNESS_FACE_PX, max(1, round(region.shape[0] * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    gray = cv2.cvtColor(cv2.resize(region, size, interpolation=interpolation), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def _face_quality(matte: Matte, face: Face) -> tuple[Check, Check, Check]:
    region = face_region(matte, face)
    sharp = sharpness(region)
    sharp_status = (
        CheckStatus.PASS
        if sharp >= SHARPNESS_PASS
        else CheckStatus.WARN
        if sharp >= SHARPNESS_FAIL
        else CheckStatus.FAIL
    )
    if region.size == 0:
        luma = np.zeros(1, dtype=np.float32)
    else:
        luma = region.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    mean = float(luma.mean())
    clipped = float(((luma >= 250) | (luma <= 5)).mean())
    if _within(mean, *EXPOSURE_PASS):
        exposure_status = CheckStatus.PASS
    elif _within(mean, *EXPOSURE_WARN):
        exposure_status = CheckStatus.WARN
    else:
        exposure_status = CheckStatus.FAIL
    clipped_status = (
        CheckStatus.PASS
        if clipped <= CLIPPED_PASS
        else CheckStatus.WARN
        if clipped <= CLIPPED_WARN
        else CheckStatus.FAIL
    )
    return (
        Check("sharpness", sharp, f"≥ {SHARPNESS_PASS:g}", sharp_status, note="Laplacian variance"),
        Check(
            "exposure",
            mean,
            f"{EXPOSURE_PASS[0]:g}–{EXPOSURE_PASS[1]:g}",
            exposure_status,
            note="mean face luminance, 0–255",
        ),
        Check(
            "clipped",
            clipped,
            f"≤ {CLIPPED_PASS:g}",
            clipped_status,
            note="fraction of face pixels blown out or crushed",
        ),
    )


def _coverage(layout: Layout) -> Check:
    if layout.cut_edges:
        return Check(
            "frame_coverage",
            ",".join(layout.extended_edges),
            "full",
            CheckStatus.WARN,
            note="the photo did not reach these edges and the person is cut off at: "
            + ", ".join(layout.cut_edges),
        )
    return Check(
        "frame_coverage",
        ",".join(layout.extended_edges) or "full",
        "full",
        CheckStatus.PASS,
        note="plain background added at these edges" if layout.extended_edges else "",
    )
