"""Print sheets: copies of ID photos laid out on photo paper, with cut marks.

Sheets are made at 300 dpi, and their photos are rendered at 300 dpi whatever their own DPI
(:func:`.sheet_plan.on_sheet`), so a photo is resampled once, from the cut-out; pixels of
another size given here are resized to fit. Photos are placed in rows separated by a gap, the
whole arrangement centred on the paper inside a margin printers can reach; both orientations of
the paper are tried and the one holding more copies wins. Black cut marks 3 mm long continue
each photo's edges outward from every corner; they are drawn before the photos, so where a
neighbour is nearer than 3 mm the mark runs under it and never shows on a photo.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from faceflow.imaging.encode import encode_image
from faceflow.imaging.formats import OutputFormat
from faceflow.pipeline.idphoto.sheet_plan import (
    DEFAULT_GAP_MM,
    DEFAULT_MARGIN_MM,
    SHEET_DPI,
    Paper,
    Placement,
    plan_sheet,
)

MARK_SHADE = 0  # black: a cutter must find the marks on any print
MARK_LENGTH_MM = 3.0
MARK_LENGTH_PX = math.ceil(MARK_LENGTH_MM / 25.4 * 300)  # at SHEET_DPI, never below 3 mm


@dataclass(frozen=True, slots=True, eq=False)
class SheetItem:
    """A photo (RGB uint8, any resolution) of a physical size, and how many copies to print.

    ``count=None`` asks for as many copies as fit; only a sheet's sole item may do that.
    """

    pixels: NDArray[np.uint8]
    width_mm: float
    height_mm: float
    count: int | None = None


@dataclass(frozen=True, slots=True, eq=False)
class Sheet:
    pixels: NDArray[np.uint8]
    dpi: int
    paper: Paper
    landscape: bool
    placements: tuple[Placement, ...]

    @property
    def copies(self) -> int:
        return len(self.placements)

    def encode(self, fmt: OutputFormat = OutputFormat.JPEG, quality: int = 95) -> bytes:
        """The sheet as JPEG or PNG with its DPI recorded, ready to print at 100 %; a JPEG in
        full colour resolution (4:4:4), as the photo is (:func:`.render.render_id_photo`)."""
        return encode_image(self.pixels, fmt, quality=quality, dpi=self.dpi, full_chroma=True)


def compose_sheet(
    items: Sequence[SheetItem],
    paper: Paper,
    *,
    gap_mm: float = DEFAULT_GAP_MM,
    margin_mm: float = DEFAULT_MARGIN_MM,
    cut_marks: bool = True,
) -> Sheet:
    """Lay ``items`` out on ``paper`` at 300 dpi (see :func:`plan_sheet` for what it refuses)."""
    plan = plan_sheet(
        [(item.width_mm, item.height_mm) for item in items],
        [item.count for item in items],
        paper,
        gap_mm=gap_mm,
        margin_mm=margin_mm,
    )
    sheet_w, sheet_h = plan.size_px
    canvas = np.full((sheet_h, sheet_w, 3), 255, dtype=np.uint8)
    scaled = [_at_size(item.pixels, size) for item, size in zip(items, plan.sizes_px, strict=True)]
    if cut_marks:
        # Marks first, photos over them: a mark may reach a neighbour, and must never cover it.
        for placement in plan.placements:
            _draw_marks(canvas, placement, MARK_LENGTH_PX)
    for placement in plan.placements:
        x, top, w, h = placement.x_px, placement.y_px, placement.width_px, placement.height_px
        canvas[top : top + h, x : x + w] = scaled[placement.item]
    return Sheet(canvas, SHEET_DPI, paper, plan.landscape, plan.placements)


def tile_sheet(pixels: NDArray[np.uint8], width_mm: float, height_mm: float, paper: Paper) -> Sheet:
    """As many copies of one photo as fit on ``paper``."""
    return compose_sheet([SheetItem(pixels, width_mm, height_mm, None)], paper)


def _at_size(pixels: NDArray[np.uint8], size: tuple[int, int]) -> NDArray[np.uint8]:
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"sheet photos must be (H, W, 3) RGB, got {pixels.shape}")
    if (pixels.shape[1], pixels.shape[0]) == size:
        return pixels
    shrinking = size[0] < pixels.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    return np.asarray(cv2.resize(pixels, size, interpolation=interpolation), dtype=np.uint8)


def _draw_marks(canvas: NDArray[np.uint8], p: Placement, length: int) -> None:
    """Short lines continuing the photo's edges outward from each corner, one pixel off it."""
    height, width = canvas.shape[:2]
    left, right = p.x_px, p.x_px + p.width_px - 1
    top, bottom = p.y_px, p.y_px + p.height_px - 1

    def hline(y: int, x1: int, x2: int) -> None:
        if 0 <= y < height:
            canvas[y, max(0, x1) : max(0, min(width, x2 + 1))] = MARK_SHADE

    def vline(x: int, y1: int, y2: int) -> None:
        if 0 <= x < width:
            canvas[max(0, y1) : max(0, min(height, y2 + 1)), x] = MARK_SHADE

    for y in (top, bottom):
        hline(y, left - 1 - length, left - 2)
        hline(y, right + 2, right + 1 + length)
    for x in (left, right):
        vline(x, top - 1 - length, top - 2)
        vline(x, bottom + 2, bottom + 1 + length)
