"""The ID-photo options: a chosen face and nudges join the cache keys only when set, and a nudge
is checked against the chosen size's ranges."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from faceflow.errors import InvalidParameter, OutOfRange
from faceflow.operations.idphoto import (
    PhotoOptions,
    PhotoRouteOptions,
    PhotoWork,
    SheetOptions,
    SheetWork,
    sheet_work,
)
from faceflow.operations.parse import parse_options
from faceflow.pipeline.idphoto.options import IdPhotoOptions
from tests.service.option_queries import PHOTO_VALUES, SHEET_VALUES, queries


def test_an_unchosen_face_and_no_nudge_leave_the_keys_as_they_were() -> None:
    plain = PhotoOptions().work()

    assert {"face", "nudge"}.isdisjoint(plain.cache_params())
    assert plain.matte_params() == {}
    assert plain.matte_request(b"x").face is None


def test_a_chosen_face_and_a_nudge_have_keys_of_their_own() -> None:
    chosen = PhotoOptions(face=2, shift_mm=-1.5).work()

    params = chosen.cache_params()
    assert params["face"] == 2
    assert params["nudge"] == (
        '{"head_mm": null, "eye_line_mm": null, "shift_mm": -1.5, "roll_deg": 0.0}'
    )
    assert chosen.matte_params() == {"face": 2}
    assert chosen.matte_request(b"x").face == 2
    # /v1/id-photo?sheet= puts the chosen face's photo on a sheet: that face's matte, its own key.
    sheet = sheet_work([(chosen.options, None)], "6inch", face=chosen.face)
    assert sheet.cache_params()["face"] == 2
    assert sheet.matte_request(b"x").face == 2
    assert "face" not in sheet_work([(chosen.options, None)], "6inch").cache_params()


def test_every_preset_shares_one_cut_out_and_a_taller_custom_head_has_its_own() -> None:
    presets = [PhotoOptions(spec=key).work() for key in ("cn-1inch", "icao", "us-passport")]
    large = PhotoOptions(width=70, height=90, dpi=600).work()

    assert all(work.matte_params() == {} for work in presets)
    assert all(work.matte_request(b"x").head_px is None for work in presets)
    assert large.matte_params() == {"head_px": 1500}
    assert large.matte_request(b"x").head_px == 1500
    # Its fallback when only the presets' cut-out is cached (a source= render).
    assert large.preset_matte_params() == {}
    # On a sheet it is printed at the sheet's 300 dpi: its cut-out is sized for that.
    sheet = sheet_work([(presets[0].options, 2), (large.options, 1)], "a4")
    assert sheet.matte_params() == {"head_px": 800}


@pytest.mark.parametrize(
    ("spec", "nudge", "low", "high"),
    [("cn-1inch", {"head_mm": 24.0}, 21.3, 23.5), ("icao", {"eye_line_mm": 10.0}, 23.0, 31.0)],
)
def test_a_nudge_outside_the_chosen_sizes_range_is_out_of_range(
    spec: str, nudge: dict[str, float], low: float, high: float
) -> None:
    with pytest.raises(OutOfRange) as refused:
        PhotoOptions.model_validate({"spec": spec, **nudge}).work()

    details = refused.value.details
    assert (details["parameter"], details["min"], details["max"]) == (*nudge, low, high)


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        # Each would have been dropped without a word: the preset for the custom size, the dpi
        # and unit for the preset's own, the height's absence for... nothing at all.
        ({"spec": "us-passport", "width": "35", "height": "45"}, "spec"),
        ({"spec": "cn-1inch", "dpi": "600"}, "dpi"),
        ({"dpi": "600"}, "dpi"),
        ({"unit": "px"}, "unit"),
        ({"width": "35"}, "height"),
        ({"height": "45", "unit": "mm"}, "width"),
        ({"quality": "80", "max_kb": "30"}, "quality"),  # max_kb chooses the quality
        ({"quality": "80", "format": "png"}, "quality"),
    ],
)
def test_an_option_that_would_be_ignored_is_refused_naming_it(
    query: dict[str, str], parameter: str
) -> None:
    with pytest.raises(InvalidParameter) as refused:
        parse_options(PhotoOptions, query, "id-photo").work()

    assert refused.value.details == {"parameter": parameter}


def test_a_dpi_beside_a_preset_is_told_the_presets_own_pixels_and_dpi() -> None:
    with pytest.raises(InvalidParameter) as refused:
        parse_options(PhotoOptions, {"spec": "cn-1inch", "dpi": "600"}, "id-photo").work()

    assert refused.value.message == (
        "dpi applies to a custom size (width and height); cn-1inch is 295×413 px at 300 dpi"
    )


def test_a_custom_size_takes_its_unit_and_dpi() -> None:
    query = {"width": "300", "height": "400", "unit": "px", "dpi": "600"}
    spec = parse_options(PhotoOptions, query, "id-photo").work().options.spec

    assert (spec.width_px, spec.height_px, spec.dpi) == (300, 400, 600)


def test_a_sheet_takes_a_preset_or_a_layout_not_both() -> None:
    both = SheetOptions.model_validate({"spec": "us-passport", "layout": "cn-1inch:4"})

    with pytest.raises(InvalidParameter) as refused:
        both.work()

    assert refused.value.details == {"parameter": "spec"}
    assert len(SheetOptions(layout="cn-1inch:4").work().items) == 1


@pytest.mark.parametrize("option", ["roll_deg", "shift_mm", "head_mm", "width"])
def test_a_number_that_is_not_finite_is_called_so(option: str) -> None:
    with pytest.raises(InvalidParameter, match="finite number") as refused:
        parse_options(PhotoOptions, {option: "nan", "height": "45"}, "id-photo")

    assert refused.value.details == {"parameter": option}


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ({"response": "json"}, "response"),
        ({"max_kb": "50"}, "max_kb"),
        ({"quality": "80"}, "quality"),
    ],
)
def test_a_photos_file_option_beside_a_sheet_is_refused_naming_it(
    query: dict[str, str], parameter: str
) -> None:
    options = parse_options(PhotoRouteOptions, {"sheet": "6inch", **query}, "id-photo")

    with pytest.raises(InvalidParameter) as refused:
        options.sheet_work(options.work())

    assert refused.value.details == {"parameter": parameter}


def test_a_sheet_of_the_route_keeps_the_photos_format_face_and_nudges() -> None:
    query = {"sheet": "a4", "format": "png", "face": "2", "shift_mm": "1"}
    options = parse_options(PhotoRouteOptions, query, "id-photo")

    sheet = options.sheet_work(options.work())

    assert sheet is not None
    assert (sheet.paper, sheet.output_format.value, sheet.face) == ("a4", "png", 2)
    assert sheet.items[0][0].nudge.shift_mm == 1
    assert (
        parse_options(PhotoRouteOptions, {}, "id-photo").sheet_work(PhotoOptions().work()) is None
    )


def test_a_transparent_photos_key_ignores_the_background_it_does_not_have() -> None:
    plain = PhotoOptions(transparent=True, format="png").work().cache_params()
    coloured = PhotoOptions(transparent=True, format="png", background="red", gradient="radial")

    assert coloured.work().cache_params() == plain
    # An opaque photo's background is its own.
    assert (
        PhotoOptions(background="red").work().cache_params() != PhotoOptions().work().cache_params()
    )


def _rendered(options: IdPhotoOptions) -> IdPhotoOptions:
    """``options`` as far as the photo made from them goes: a colour's name labels it (white and
    #ffffff are one colour), and a transparent photo has no background at all."""
    if options.transparent:
        return replace(options, background=PhotoOptions().photo().background)
    return replace(options, background=replace(options.background, name=None))


def _made(work: PhotoWork | SheetWork) -> Any:
    if isinstance(work, PhotoWork):
        return replace(work, options=_rendered(work.options))
    return replace(work, items=tuple((_rendered(options), n) for options, n in work.items))


@pytest.mark.parametrize(
    ("model", "values"), [(PhotoOptions, PHOTO_VALUES), (SheetOptions, SHEET_VALUES)]
)
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_an_option_that_changes_the_photo_changes_its_cache_key(
    model: type[PhotoOptions | SheetOptions],
    values: dict[str, st.SearchStrategy[str]],
    data: st.DataObject,
) -> None:
    # One query, then the same with one option set to another value: an option left out of
    # photo_cache_params() would be answered with another value's cached photo. The values cover
    # every option of the models (option_queries.py), so a new one is checked with nothing more.
    query = dict(parse_qsl(data.draw(queries(values))))
    name = data.draw(st.sampled_from(sorted(values)))
    changed = {**query, name: data.draw(values[name])}
    try:
        one, other = model.model_validate(query).work(), model.model_validate(changed).work()
    except (ValidationError, InvalidParameter):
        return  # refused: no work, no key

    if _made(one) != _made(other):
        assert one.cache_params() != other.cache_params()
