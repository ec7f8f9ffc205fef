"""Print sheets: copies counted by the detector, both paper orientations, mixed sheets, marks."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from faceflow.domain import Face
from faceflow.errors import InvalidParameter
from faceflow.imaging.formats import OutputFormat
from faceflow.pipeline.idphoto.options import IdPhotoOptions
from faceflow.pipeline.idphoto.palette import parse_background
from faceflow.pipeline.idphoto.render import render_pixels
from faceflow.pipeline.idphoto.sheet import MARK_SHADE, SheetItem, compose_sheet, tile_sheet
from faceflow.pipeline.idphoto.sheet_plan import MAX_COPIES, SHEET_DPI, get_paper, plan_sheet
from faceflow.pipeline.idphoto.specs import get_spec
from tests.pipeline.idphoto.conftest import Portrait

FindFaces = Callable[[np.ndarray], tuple[Face, ...]]


def photo(portrait: Callable[[str], Portrait], key: str) -> np.ndarray:
    item = portrait("portrait_2.jpg")
    options = IdPhotoOptions(get_spec(key), parse_background("blue"))
    return render_pixels(item.matte, item.face, options).pixels


def flat(width_px: int, height_px: int) -> np.ndarray:
    return np.full((height_px, width_px, 3), 90, dtype=np.uint8)


def test_six_inch_sheet_of_one_inch_photos_has_n_faces(
    portrait: Callable[[str], Portrait], find_faces: FindFaces
) -> None:
    spec = get_spec("cn-1inch")

    sheet = tile_sheet(
        photo(portrait, "cn-1inch"), spec.width_mm, spec.height_mm, get_paper("6inch")
    )

    # 4×6 in upright, 3 mm margins, 2 mm gaps: 3 columns × 4 rows of 25×35 mm.
    assert sheet.copies == 12
    assert sheet.pixels.shape == (1800, 1200, 3)
    assert len(find_faces(sheet.pixels)) == sheet.copies


def test_mixed_sheet_has_every_photo(
    portrait: Callable[[str], Portrait], find_faces: FindFaces
) -> None:
    one, two = get_spec("cn-1inch"), get_spec("cn-2inch")
    items = [
        SheetItem(photo(portrait, "cn-1inch"), one.width_mm, one.height_mm, 4),
        SheetItem(photo(portrait, "cn-2inch"), two.width_mm, two.height_mm, 2),
    ]

    sheet = compose_sheet(items, get_paper("6inch"))

    assert sheet.copies == 6
    assert [p.item for p in sheet.placements].count(0) == 4
    assert len(find_faces(sheet.pixels)) == 6
    # The classic layout: paper turned, two columns of 1-inch pairs beside the two 2-inch.
    assert sheet.landscape


@pytest.mark.parametrize(
    ("paper", "size_mm", "copies", "landscape"),
    [
        # Usable 95.6 × 146.4 mm, 2 mm gaps: 35×45 fits 2 × 3 upright but 4 × 2 turned.
        ("6inch", (35, 45), 8, True),
        ("5inch", (25, 35), 9, False),
        ("a4", (35, 45), 30, False),
        ("a4", (50, 70), 12, False),
    ],
)
def test_the_orientation_holding_more_copies_wins(
    paper: str, size_mm: tuple[float, float], copies: int, landscape: bool
) -> None:
    width_px = round(size_mm[0] / 25.4 * SHEET_DPI)
    height_px = round(size_mm[1] / 25.4 * SHEET_DPI)

    sheet = tile_sheet(flat(width_px, height_px), *size_mm, get_paper(paper))

    assert (sheet.copies, sheet.landscape) == (copies, landscape)


def test_grid_is_centred_and_photos_do_not_overlap() -> None:
    sheet = tile_sheet(flat(295, 413), 25, 35, get_paper("6inch"))

    boxes = [(p.x_px, p.y_px, p.x_px + p.width_px, p.y_px + p.height_px) for p in sheet.placements]
    left = min(b[0] for b in boxes)
    right = sheet.pixels.shape[1] - max(b[2] for b in boxes)
    top = min(b[1] for b in boxes)
    bottom = sheet.pixels.shape[0] - max(b[3] for b in boxes)
    assert abs(left - right) <= 1
    assert abs(top - bottom) <= 1
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]


def test_cut_marks_sit_outside_each_corner() -> None:
    sheet = tile_sheet(flat(295, 413), 25, 35, get_paper("6inch"))
    first = sheet.placements[0]
    x, y = first.x_px, first.y_px

    # Beside the top-left corner, continuing the top edge leftwards and the left edge upwards.
    assert (sheet.pixels[y, x - 5] == MARK_SHADE).all()
    assert (sheet.pixels[y - 5, x] == MARK_SHADE).all()
    # Not on the photo, and not diagonal from the corner.
    assert (sheet.pixels[y + 5, x + 5] == 90).all()
    assert (sheet.pixels[y - 5, x - 5] == 255).all()


def dark_run(line: NDArray[np.uint8]) -> int:
    """Length of the run of dark pixels at the start of ``line`` (a row or column, RGB)."""
    dark = np.asarray((line < 64).all(axis=-1), dtype=bool)
    return int(dark.size) if bool(dark.all()) else int(np.argmin(dark))


@pytest.mark.parametrize("paper", ["6inch", "5inch", "a4"])
def test_outer_cut_marks_are_dark_and_at_least_3_mm(paper: str) -> None:
    sheet = tile_sheet(flat(295, 413), 25, 35, get_paper(paper))
    pixels = sheet.pixels
    three_mm = 3.0 / 25.4 * sheet.dpi
    top_row = min(p.y_px for p in sheet.placements)
    left_col = min(p.x_px for p in sheet.placements)
    first = next(p for p in sheet.placements if p.y_px == top_row and p.x_px == left_col)
    x, y = first.x_px, first.y_px

    # Leftwards along the top edge, upwards along the left edge, from one pixel off the corner.
    assert dark_run(pixels[y, x - 2 :: -1]) >= three_mm
    assert dark_run(pixels[y - 2 :: -1, x]) >= three_mm
    # Nothing dark on any photo (the flat test photo is grey 90 everywhere).
    for p in sheet.placements:
        assert (pixels[p.y_px : p.y_px + p.height_px, p.x_px : p.x_px + p.width_px] == 90).all()


def test_photos_at_another_dpi_are_resized_to_their_print_size() -> None:
    spec = get_spec("cn-id-card")  # 350 dpi

    sheet = tile_sheet(
        flat(spec.width_px, spec.height_px), spec.width_mm, spec.height_mm, get_paper("5inch")
    )

    assert sheet.placements[0].width_px == round(26 / 25.4 * 300)


def test_too_many_copies_are_refused_with_the_number_that_fits() -> None:
    items = [SheetItem(flat(591, 827), 50, 70, 5)]

    with pytest.raises(InvalidParameter) as caught:
        compose_sheet(items, get_paper("6inch"))

    assert caught.value.details["fits"] == 2


@pytest.mark.parametrize(
    "items",
    [
        [],
        [SheetItem(flat(10, 10), 25, 35, None), SheetItem(flat(10, 10), 25, 35, 1)],
        [SheetItem(flat(10, 10), 25, 35, 0)],
    ],
)
def test_malformed_requests_are_refused(items: list[SheetItem]) -> None:
    with pytest.raises(InvalidParameter):
        compose_sheet(items, get_paper("a4"))


@pytest.mark.parametrize(
    ("sizes", "counts", "parameter"),
    [
        ([(25, 35)] * 13, [1] * 13, "layout"),
        ([(25, 35), (22, 32)], [150, 60], "count"),
        ([(25, 35)], [201], "count"),
    ],
    ids=["13-items", "210-copies-in-all", "201-copies"],
)
def test_plans_over_the_bounds_are_refused_before_any_pixel(
    sizes: list[tuple[float, float]], counts: list[int | None], parameter: str
) -> None:
    with pytest.raises(InvalidParameter) as caught:
        plan_sheet(sizes, counts, get_paper("a4"))

    assert caught.value.details["parameter"] == parameter


def test_as_many_as_fit_stops_at_the_copies_a_sheet_may_hold() -> None:
    # The smallest custom size (64 px at 1,200 dpi) fits 5,160 times on A4: planning that many
    # cost the API process's event loop 0.12 s per request, before the upload was even read.
    smallest_mm = 64 / 1200 * 25.4

    plan = plan_sheet([(smallest_mm, smallest_mm)], [None], get_paper("a4"))

    assert len(plan.placements) == MAX_COPIES


def test_a_plan_is_the_composed_sheet_without_pixels() -> None:
    items = [SheetItem(flat(295, 413), 25, 35, 4), SheetItem(flat(413, 579), 35, 49, 2)]

    plan = plan_sheet([(25, 35), (35, 49)], [4, 2], get_paper("6inch"))
    sheet = compose_sheet(items, get_paper("6inch"))

    assert plan.placements == sheet.placements
    assert plan.landscape == sheet.landscape
    assert plan.size_px == (sheet.pixels.shape[1], sheet.pixels.shape[0])


def test_unknown_paper() -> None:
    with pytest.raises(InvalidParameter, match="6inch"):
        get_paper("letter")


def test_encoded_sheet_carries_its_dpi() -> None:
    sheet = tile_sheet(flat(295, 413), 25, 35, get_paper("5inch"))

    image = Image.open(io.BytesIO(sheet.encode(OutputFormat.JPEG)))

    assert image.size == (1050, 1500)
    assert image.info["dpi"] == pytest.approx((300, 300), abs=0.01)
