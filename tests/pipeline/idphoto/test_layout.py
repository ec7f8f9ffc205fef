"""Head placement on synthetic heads: a drawn matte and landmarks with known geometry."""

from __future__ import annotations

import math

import numpy as np
import pytest

from faceflow.domain import Box, Face, Point
from faceflow.errors import OutOfRange
from faceflow.pipeline.idphoto.layout import (
    CHIN_BELOW_MOUTH,
    CROWN_ABOVE_EYES_FALLBACK,
    Layout,
    apply,
    measure_head,
    plan_layout,
)
from faceflow.pipeline.idphoto.nudge import Nudge, nudge_ranges
from faceflow.pipeline.idphoto.specs import IdPhotoSpec, get_spec, list_specs
from tests.pipeline.idphoto.synthetic import (
    CHIN_Y,
    CROWN_Y,
    EYE_TO_MOUTH,
    SOURCE_H,
    SOURCE_W,
    rotate,
    synthetic,
)


def output_eyes(layout: Layout, face: Face) -> tuple[Point, Point]:
    return (
        apply(layout.transform, face.landmarks.right_eye),
        apply(layout.transform, face.landmarks.left_eye),
    )


@pytest.mark.parametrize("roll", [0.0, 7.5, -12.0])
def test_measure_head_finds_crown_chin_and_roll(roll: float) -> None:
    matte, face = synthetic(roll)

    head = measure_head(matte, face)

    assert head.roll_deg == pytest.approx(roll, abs=1e-6)
    assert head.crown_y == pytest.approx(CROWN_Y, abs=2.0)
    assert head.chin_y == pytest.approx(CHIN_Y, abs=1e-6)
    assert head.crown_visible
    assert head.midline_x == pytest.approx(0.0, abs=1e-6)
    assert head.nose_offset == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    "key", ["icao", "us-passport", "cn-passport", "cn-1inch", "ca-passport", "cn-id-card"]
)
@pytest.mark.parametrize("roll", [0.0, 10.0, -15.0])
def test_layout_meets_the_spec(key: str, roll: float) -> None:
    spec = get_spec(key)
    matte, face = synthetic(roll)

    layout = plan_layout(matte, face, spec)

    right, left = output_eyes(layout, face)
    assert right.y == pytest.approx(left.y, abs=1e-6)  # eyes levelled
    assert (layout.width_px, layout.height_px) == (spec.width_px, spec.height_px)
    ppm = spec.px_per_mm
    head_mm = layout.head_height_px / ppm
    assert spec.head_height_mm[0] - 1e-6 <= head_mm <= spec.head_height_mm[1] + 1e-6
    eye_line_mm = (layout.height_px - right.y) / ppm
    assert spec.eye_line_mm[0] - 1e-6 <= eye_line_mm <= spec.eye_line_mm[1] + 1e-6
    assert layout.eye_line_px == pytest.approx(layout.height_px - right.y, abs=1e-6)
    # The face's midline (between the eyes and the nose, in the level frame) is centred.
    mid = apply(layout.transform, rotate(Point(500, 522.5), roll))
    assert mid.x == pytest.approx(layout.width_px / 2, abs=1e-6)
    # The synthetic photo covers every frame, and the crown keeps its margin.
    assert layout.extended_edges == ()
    assert layout.cut_edges == ()
    if spec.crown_margin_mm is None:
        assert layout.crown_margin_px >= 0.05 * layout.height_px - 0.1 * ppm
    else:
        low, high = spec.crown_margin_mm
        assert low - 0.1 <= layout.crown_margin_px / ppm <= high + 0.1


@pytest.mark.parametrize("key", ["cn-passport", "cn-1inch"])
def test_crown_margin_rule_puts_the_crown_in_its_range(key: str) -> None:
    spec = get_spec(key)
    assert spec.crown_margin_mm is not None
    matte, face = synthetic()

    layout = plan_layout(matte, face, spec)

    margin_mm = layout.crown_margin_px / spec.px_per_mm
    low, high = spec.crown_margin_mm
    assert low - 0.1 <= margin_mm <= high + 0.1


def test_tall_hair_is_fitted_by_a_smaller_head_and_lower_eyes_within_range() -> None:
    spec = get_spec("cn-id-card")  # crown 0.5–1.5 mm below the top, eyes ≥ 15 mm up
    matte, face = synthetic(crown_y=-420.0)  # hair piled high: crown 3.7 chins above the eyes

    layout = plan_layout(matte, face, spec)

    ppm = spec.px_per_mm
    # A head at the middle of its range cannot keep the crown margin; one nearer the low end
    # with the eyes as low as allowed keeps every rule.
    assert spec.head_height_mm[0] <= layout.head_height_px / ppm < sum(spec.head_height_mm) / 2
    # As low as the search goes: 0.5 mm inside the range, so a hand measurement finds it inside.
    assert layout.eye_line_px / ppm == pytest.approx(spec.eye_line_mm[0] + 0.5, abs=0.01)
    assert spec.crown_margin_mm is not None
    assert layout.crown_margin_px / ppm >= spec.crown_margin_mm[0] - 0.05


def test_without_a_crown_rule_tall_hair_moves_the_eyes_down_within_range() -> None:
    spec = get_spec("icao")
    matte, face = synthetic(crown_y=-175.0)

    layout = plan_layout(matte, face, spec)

    eye_line_mm = layout.eye_line_px / spec.px_per_mm
    assert spec.eye_line_mm[0] <= eye_line_mm < sum(spec.eye_line_mm) / 2
    assert layout.eye_line_moved
    # At least 5 % of the height above the hair, and no more than needed.
    assert layout.crown_margin_px == pytest.approx(0.05 * layout.height_px, abs=1.5)


def test_a_tight_crop_is_extended_with_background_and_the_cut_is_reported() -> None:
    # Only the head and a strip of shoulder were photographed.
    matte, face = synthetic(crop=Box(330, 300, 670, 760))

    layout = plan_layout(matte, face, get_spec("ca-passport"))

    assert set(layout.extended_edges) == {"top", "bottom", "left", "right"}
    # The shoulders run into the crop's bottom edge inside the frame; the top is only sky.
    assert "bottom" in layout.cut_edges
    assert "top" not in layout.cut_edges


def test_a_crown_cut_by_the_photo_is_estimated() -> None:
    matte, face = synthetic(crop=Box(0, 400, SOURCE_W, SOURCE_H))

    head = measure_head(matte, face)

    assert not head.crown_visible
    assert head.crown_y == pytest.approx(-CROWN_ABOVE_EYES_FALLBACK * CHIN_Y, abs=1e-6)


def test_chin_falls_back_to_landmarks_when_the_box_is_cut_by_the_bottom_edge() -> None:
    matte, face = synthetic(box_bottom_at_edge=True)

    head = measure_head(matte, face)

    assert head.chin_y == pytest.approx(EYE_TO_MOUTH * (1 + CHIN_BELOW_MOUTH), abs=1e-6)


def test_transform_is_a_similarity(tmp_path: object) -> None:
    spec: IdPhotoSpec = get_spec("us-passport")
    matte, face = synthetic(8.0)

    layout = plan_layout(matte, face, spec)

    linear = layout.transform[:, :2]
    assert np.allclose(linear @ linear.T, layout.scale**2 * np.eye(2))


@pytest.mark.parametrize("roll", [0.0, 10.0])
def test_a_nudge_fixes_head_height_eye_line_shift_and_turn(roll: float) -> None:
    spec = get_spec("cn-1inch")
    matte, face = synthetic(roll)
    ppm = spec.px_per_mm
    nudge = Nudge(head_mm=21.5, eye_line_mm=21.5, shift_mm=-1.5, roll_deg=3.0)
    nudge.check(spec)

    layout = plan_layout(matte, face, spec, nudge)

    assert layout.head_height_px / ppm == pytest.approx(21.5, abs=1e-6)
    assert layout.eye_line_px / ppm == pytest.approx(21.5, abs=1e-6)
    assert not layout.eye_line_moved
    right, left = output_eyes(layout, face)
    turned = math.degrees(math.atan2(left.y - right.y, left.x - right.x))
    assert turned == pytest.approx(3.0, abs=1e-6)  # clockwise: the image-right eye is lower
    assert (right.x + left.x) / 2 == pytest.approx(layout.width_px / 2 - 1.5 * ppm, abs=1e-6)


def test_a_nudge_of_one_quantity_leaves_the_others_to_the_search() -> None:
    spec = get_spec("icao")
    matte, face = synthetic()
    tallest = nudge_ranges(spec)["head_mm"][1]
    taller = plan_layout(matte, face, spec, Nudge(head_mm=tallest))

    assert taller.head_height_px / spec.px_per_mm == pytest.approx(tallest)
    low, high = spec.eye_line_mm
    assert low <= taller.eye_line_px / spec.px_per_mm <= high


@pytest.mark.parametrize("spec", list_specs(), ids=lambda spec: spec.key)
def test_nudges_keep_as_far_inside_the_rules_as_the_automatic_framing(spec: IdPhotoSpec) -> None:
    """A nudge to the edge of its range still leaves the print inside the rule for a counter
    measuring by hand: 0.5 mm in (a tenth of a narrow range), rounded inwards to 0.1 mm."""
    for name, rule in (("head_mm", spec.head_height_mm), ("eye_line_mm", spec.eye_line_mm)):
        low, high = nudge_ranges(spec)[name]
        inset = min(0.5, (rule[1] - rule[0]) / 10)
        assert rule[0] + inset <= low + 1e-9 <= rule[0] + inset + 0.1, (name, low)
        assert rule[1] - inset - 0.1 <= high - 1e-9 <= rule[1] - inset, (name, high)
        for edge in rule:
            with pytest.raises(OutOfRange):
                Nudge(**{name: edge}).check(spec)


@pytest.mark.parametrize(
    ("nudge", "parameter"),
    [
        (Nudge(head_mm=20.0), "head_mm"),
        (Nudge(eye_line_mm=30.0), "eye_line_mm"),
        (Nudge(shift_mm=3.0), "shift_mm"),
        (Nudge(roll_deg=-5.01), "roll_deg"),
        (Nudge(roll_deg=math.inf), "roll_deg"),
    ],
)
def test_a_nudge_outside_the_specs_ranges_is_out_of_range(nudge: Nudge, parameter: str) -> None:
    spec = get_spec("cn-1inch")  # 25 × 35 mm: head 21–23.8, eyes 18.2–22.4, shift ±2.5

    with pytest.raises(OutOfRange) as raised:
        nudge.check(spec)

    assert raised.value.details["parameter"] == parameter
    assert (raised.value.details["min"], raised.value.details["max"]) == nudge_ranges(spec)[
        parameter
    ]
