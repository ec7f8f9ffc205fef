"""Framing inside the source, on test portraits cropped in code: the layout picks a head height and
eye line inside the spec's ranges that keep the frame inside the photo, and when none does the
report fails with what is missing.

The cut sources come from the ID-photo tests' shared cut-outs (conftest.py): the chin and narrow
cases are verdict cases too, and the chest crop serves two sizes from one matte."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from faceflow.pipeline.idphoto.compliance import CheckStatus, ComplianceReport, assess
from faceflow.pipeline.idphoto.layout import Layout
from faceflow.pipeline.idphoto.options import IdPhotoOptions
from faceflow.pipeline.idphoto.palette import parse_background
from faceflow.pipeline.idphoto.render import render_pixels
from faceflow.pipeline.idphoto.specs import get_spec
from tests.pipeline.idphoto.conftest import CutOut
from tests.pipeline.idphoto.verdict_cases import Edit, crop_below_chin, narrow


def made(
    name: str, edit: Edit | None, key: str, cut_out: CutOut
) -> tuple[Layout, ComplianceReport, NDArray[np.uint8]]:
    item = cut_out(name, edit)
    white = parse_background("white")
    rendered = render_pixels(item.matte, item.face, IdPhotoOptions(get_spec(key), white))
    return rendered.layout, assess(rendered.layout, item.matte, item.face, white), rendered.pixels


@pytest.mark.parametrize(
    ("name", "key"),
    [
        # Cut at the chest: a head in the middle of the range with the eyes in the middle of
        # theirs would reach past the bottom (measured); a choice inside the ranges does not.
        ("portrait_1.jpg", "cn-passport"),
        ("portrait_2.jpg", "cn-1inch"),
        ("portrait_2.jpg", "icao"),
    ],
)
def test_a_photo_cut_at_the_chest_is_framed_inside_it(
    name: str,
    key: str,
    cut_out: CutOut,
) -> None:
    spec = get_spec(key)

    layout, report, pixels = made(name, crop_below_chin(1.4), key, cut_out)

    assert layout.cut_edges == ()
    assert report.check("subject_cut_off").status is CheckStatus.PASS
    ppm = spec.px_per_mm
    assert spec.head_height_mm[0] <= layout.head_height_px / ppm <= spec.head_height_mm[1]
    assert spec.eye_line_mm[0] <= layout.eye_line_px / ppm <= spec.eye_line_mm[1]
    # The bottom row is the person (clothes), not the white background.
    bottom = pixels[-1].astype(np.float64)
    assert (np.abs(bottom - 255.0).max(axis=1) > 40).mean() > 0.5


def test_a_photo_cut_at_the_chin_fails_and_says_how_much_is_missing(
    cut_out: CutOut,
) -> None:
    layout, report, _ = made("portrait_1.jpg", crop_below_chin(0.12), "cn-1inch", cut_out)

    check = report.check("subject_cut_off")
    assert check.status is CheckStatus.FAIL
    assert report.status is CheckStatus.FAIL
    assert layout.cut_edges == ("bottom",)
    missing = layout.cut_mm[0]
    assert 3.0 < missing < 12.0
    hint, hint_zh = check.hints()
    assert hint.startswith(f"The photo ends {missing:.1f} mm above the shoulder line")
    assert hint.endswith("take it from further away so both shoulders are in it.")
    assert "肩" in hint_zh
    as_json = report.to_dict()
    assert as_json["status"] == "fail"
    listed = {c["name"]: c for c in as_json["checks"]}
    assert listed["subject_cut_off"]["hint"] == hint
    assert listed["subject_cut_off"]["hint_zh"] == hint_zh


def test_a_body_cut_by_the_photos_bottom_runs_on_to_the_frames_bottom(cut_out: CutOut) -> None:
    # Cut just under the chin, the photo ends mm above the frame's bottom. The clothes' last row
    # faded into the background over 2 mm made a grey band under a dark top that ended in a
    # line across the chest (df_img61); the body runs on to the frame's edge now, as it would
    # in a photo taken lower.
    layout, _, pixels = made("portrait_1.jpg", crop_below_chin(0.12), "cn-1inch", cut_out)

    assert layout.cut_edges == ("bottom",)
    assert layout.cut_mm[0] > 2.0
    middle = pixels[-1, layout.width_px // 2 - 20 : layout.width_px // 2 + 20]
    assert (np.abs(middle.astype(np.float64) - 255.0).max(axis=1) > 40).all()


def test_a_narrow_photo_fails_on_a_wide_size_and_says_which_side(
    cut_out: CutOut,
) -> None:
    layout, report, pixels = made("portrait_1.jpg", narrow(1.5), "us-passport", cut_out)

    check = report.check("subject_cut_off")
    assert check.status is CheckStatus.FAIL
    assert set(layout.cut_edges) == {"left", "right"}
    assert "too narrow on the" in check.note
    assert "more room at the sides" in check.hints()[0]
    # No hard edge is painted: past the photo the person fades into the background, so the
    # outermost columns are background.
    for column in (pixels[:, 0], pixels[:, -1]):
        assert (np.abs(column.astype(np.float64) - 255.0).max(axis=1) < 8).mean() > 0.9


def _above_the_source(layout: Layout, margin_px: float) -> NDArray[np.bool_]:
    """Output pixels lying more than ``margin_px`` above the source photo's top edge."""
    back = np.linalg.inv(np.vstack([layout.transform, [0.0, 0.0, 1.0]]))[:2]
    ys, xs = np.mgrid[0 : layout.height_px, 0 : layout.width_px] + 0.5
    source_y = back[1, 0] * xs + back[1, 1] * ys + back[1, 2]
    return np.asarray(source_y * layout.scale < -margin_px)


def test_a_head_cut_by_the_photos_top_is_not_continued_above_it(cut_out: CutOut) -> None:
    # rose_leslie's photo cuts the top of her head; on China's 1-inch size the frame reaches
    # 3.3 mm past it. The hair's top row, continued, made a streaked smear over the missing
    # crown: the background shows there now, and the report fails the photo.
    layout, report, pixels = made("rose_leslie.jpg", None, "cn-1inch", cut_out)

    assert layout.cut_edges == ("top",)
    assert layout.cut_mm[0] > 2.0
    assert report.check("subject_cut_off").status is CheckStatus.FAIL
    above = _above_the_source(layout, 1.5)
    assert above[0].all()  # the whole top row
    assert np.abs(pixels[above].astype(np.float64) - 255.0).max() < 3


def test_a_sliver_cut_off_the_top_is_still_continued(cut_out: CutOut) -> None:
    # On the UK's size the frame reaches 0.2 mm past her hair: the hair runs on to the photo's
    # top edge, as the report's warning says, not a white line above a flat cut.
    layout, report, pixels = made("rose_leslie.jpg", None, "uk-passport", cut_out)

    assert layout.cut_edges == ("top",)
    assert layout.cut_mm[0] < 0.5
    assert report.check("subject_cut_off").status is CheckStatus.WARN
    middle = pixels[0, layout.width_px // 2 - 20 : layout.width_px // 2 + 20]
    assert (np.abs(middle.astype(np.float64) - 255.0).max(axis=1) > 40).all()
