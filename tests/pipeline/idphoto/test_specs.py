"""Size presets: pixel sizes derived from millimetres and DPI, custom sizes, validation."""

from __future__ import annotations

import json

import pytest

from faceflow.errors import InvalidParameter
from faceflow.pipeline.idphoto.specs import (
    PRESET_HEAD_PX,
    IdPhotoSpec,
    custom_spec,
    get_spec,
    list_specs,
    matte_head_px,
    mm_to_px,
)

# (key, width_px, height_px, dpi): round(mm / 25.4 × dpi), worked out by hand.
PIXEL_SIZES = [
    ("cn-1inch", 295, 413, 300),
    ("cn-small-1inch", 260, 378, 300),
    ("cn-large-1inch", 390, 567, 300),
    ("cn-2inch", 413, 579, 300),
    ("cn-large-2inch", 413, 626, 300),
    ("cn-small-2inch", 413, 531, 300),
    ("cn-passport", 390, 567, 300),
    ("cn-id-card", 358, 441, 350),
    ("icao", 413, 531, 300),
    ("eu-passport", 413, 531, 300),
    ("schengen-visa", 413, 531, 300),
    ("uk-passport", 413, 531, 300),
    ("us-passport", 600, 600, 300),
    ("us-visa", 600, 600, 300),
    ("ca-passport", 591, 827, 300),
    ("jp-visa", 531, 531, 300),
    ("kr-visa", 413, 531, 300),
    ("cn-civil-service", 295, 413, 300),
    ("cn-driving-licence", 260, 378, 300),
    ("in-passport", 413, 531, 300),
    ("in-visa", 600, 600, 300),
    ("au-passport", 413, 531, 300),
    ("kr-passport", 413, 531, 300),
    ("jp-passport", 413, 531, 300),
    ("us-green-card", 600, 600, 300),
]


@pytest.mark.parametrize(("key", "width_px", "height_px", "dpi"), PIXEL_SIZES)
def test_pixel_size_is_derived_from_millimetres(
    key: str, width_px: int, height_px: int, dpi: int
) -> None:
    spec = get_spec(key)

    assert (spec.width_px, spec.height_px, spec.dpi) == (width_px, height_px, dpi)


def test_every_preset_is_in_the_table() -> None:
    assert {s.key for s in list_specs()} == {row[0] for row in PIXEL_SIZES}


@pytest.mark.parametrize("spec", list_specs(), ids=lambda s: s.key)
def test_rules_leave_room_for_the_head(spec: IdPhotoSpec) -> None:
    low, high = spec.head_height_mm
    assert 0 < low < high < spec.height_mm
    eye_low, eye_high = spec.eye_line_mm
    assert 0 < eye_low < eye_high < spec.height_mm
    assert set(spec.backgrounds) <= {"white", "blue", "red", "grey"}
    # With the eyes at the lowest allowed line, a mid-range head whose crown is 42 % of it above
    # the eyes (short hair) must still end above the photo's bottom edge at the chin.
    middle = (low + high) / 2
    assert eye_low - 0.58 * middle > 0


@pytest.mark.parametrize(
    ("key", "head_mm", "eyes_mm"),
    [
        ("icao", (32, 36), (22.5, 31.5)),
        ("us-passport", (25.4, 34.9), (28.6, 34.9)),
        ("ca-passport", (31, 36), (35.0, 49.0)),
        ("cn-passport", (28, 33), (25.5, 31.5)),
        ("uk-passport", (29, 34), (22.5, 31.5)),
    ],
)
def test_published_rules(
    key: str, head_mm: tuple[float, float], eyes_mm: tuple[float, float]
) -> None:
    spec = get_spec(key)

    assert spec.head_height_mm == head_mm
    assert spec.eye_line_mm == eyes_mm


def test_unknown_key_lists_the_known_ones() -> None:
    with pytest.raises(InvalidParameter) as caught:
        get_spec("cn-3inch")

    assert "cn-1inch" in caught.value.message
    assert "us-passport" in caught.value.message


def test_to_dict_is_json() -> None:
    data = json.loads(json.dumps([s.to_dict() for s in list_specs()]))

    first = next(d for d in data if d["key"] == "cn-1inch")
    assert (first["width_px"], first["height_px"], first["dpi"]) == (295, 413, 300)
    assert (first["width_mm"], first["height_mm"]) == (25, 35)
    assert len(first["eye_line_from_bottom_mm"]) == 2


@pytest.mark.parametrize(
    ("width", "height", "unit", "dpi", "size_px"),
    [
        (35, 45, "mm", 300, (413, 531)),
        (25, 35, "mm", 600, (591, 827)),
        (413, 531, "px", 300, (413, 531)),
        (358, 441, "px", 350, (358, 441)),
        (600, 600, "px", 300, (600, 600)),
        (1001, 1333, "px", 400, (1001, 1333)),
    ],
)
def test_custom_sizes(
    width: float, height: float, unit: str, dpi: int, size_px: tuple[int, int]
) -> None:
    spec = custom_spec(width, height, unit, dpi)  # type: ignore[arg-type]

    assert (spec.width_px, spec.height_px) == size_px
    assert spec.dpi == dpi
    low, high = spec.head_height_mm
    assert 0.55 < low / spec.height_mm < high / spec.height_mm < 0.75


@pytest.mark.parametrize(
    ("width", "height", "unit", "dpi"),
    [
        (0, 45, "mm", 300),
        (35, -1, "mm", 300),
        (35, 45, "in", 300),
        (35, 45, "mm", 10),
        (35, 45, "mm", 5000),
        (413.5, 531, "px", 300),
        (10, 10, "px", 300),
        (100, 10, "mm", 300),
        (35, 45000, "px", 300),
        (290, 290, "mm", 1200),
    ],
)
def test_invalid_custom_sizes_are_refused(width: float, height: float, unit: str, dpi: int) -> None:
    with pytest.raises(InvalidParameter):
        custom_spec(width, height, unit, dpi)  # type: ignore[arg-type]


def test_mm_to_px_rounds() -> None:
    assert mm_to_px(25.4, 300) == 300
    assert mm_to_px(25, 300) == 295
    assert mm_to_px(26, 350) == 358


def test_presets_need_no_cut_out_of_their_own() -> None:
    assert pytest.approx(36 / 25.4 * 300, abs=1) == PRESET_HEAD_PX
    assert matte_head_px(list_specs()) is None


def test_a_custom_size_with_a_taller_head_than_any_preset_names_its_need() -> None:
    large = custom_spec(70, 90, dpi=600)  # head up to 0.68 × 90 mm at 600 dpi: 1,446 px
    assert matte_head_px([large]) == 1500
    assert matte_head_px([get_spec("icao"), large]) == 1500
    assert matte_head_px([custom_spec(35, 45, dpi=300)]) is None
