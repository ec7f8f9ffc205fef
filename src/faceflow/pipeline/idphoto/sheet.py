"""Print sheets: copies of ID photos laid out on photo paper, with cut marks.

Sheets are made at 300 dpi. Photos are placed in rows separated by a gap, the whole arrangement
centred on the paper inside a margin printers can reach; both orientations of the paper are
tried and the one holding more copies wins. Black cut marks 3 mm long continue each photo's edges
outward from every corner; they are drawn before the photos, so where a neighbour is nearer than
3 mm the mark runs under it and never shows on a photo.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from faceflow.errors import InvalidParameter
from faceflow.imaging.encode import OutputFormat, encode_image
from faceflow.pipeline.idphoto.specs import mm_to_px

SHEET_DPI = 300
DEFAULT_GAP_MM = 2.0
DEFAULT_MARGIN_MM = 3.0
MARK_SHADE = 0  # black: a cutter must find the marks on any print
MARK_LENGTH_MM = 3.0
MARK_LENGTH_PX = math.ceil(MARK_LENGTH_MM / 25.4 * 300)  # at SHEET_DPI, never below 3 mm
MAX_COPIES = 200


@dataclass(frozen=True, slots=True)
class Paper:
    key: str
    title: str
    width_mm: float
    height_mm: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "width_mm": self.width_mm,
            "height_mm": self.height_mm,
        }


PAPERS: tuple[Paper, ...] = (
    Paper("6inch", "6-inch (4×6 in)", 101.6, 152.4),
    Paper("5inch", "5-inch (3.5×5 in)", 88.9, 127.0),
    Paper("a4", "A4 (210×297 mm)", 210.0, 297.0),
)
_PAPER_BY_KEY = {paper.key: paper for paper in PAPERS}


_ALIASES = {"6in": "6inch", "5in": "5inch"}


def get_paper(key: str) -> Paper:
    """The paper called ``key`` (or ``6in`` / ``5in``); :class:`InvalidParameter` naming the
    known ones otherwise."""
    try:
        return _PAPER_BY_KEY[_ALIASES.get(key, key)]
    except KeyError:
        known = ", ".join(_PAPER_BY_KEY)
        raise InvalidParameter(
            f"unknown sheet {key!r}; known sheets: {known}", {"parameter": "sheet"}
        ) from None


@dataclass(frozen=True, slots=True, eq=False)
class SheetItem:
    """A photo (RGB uint8, any resolution) of a physical size, and how many copies to print.

    ``count=None`` asks for as many copies as fit; only a sheet's sole item may do that.
    """

    pixels: NDArray[np.uint8]
    width_mm: float
    height_mm: float
    count: int | None = None


@dataclass(frozen=True, slots=True)
class Placement:
    """Where one copy went, in sheet pixels; ``item`` indexes the items given."""

    item: int
    x_px: int
    y_px: int
    width_px: int
    height_px: int


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
        """The sheet as JPEG or PNG with its DPI recorded, ready to print at 100 %."""
        return encode_image(self.pixels, fmt, quality=quality, dpi=self.dpi)


def _rows(
    sizes: Sequence[tuple[int, int]], counts: Sequence[int], width: int, height: int, gap: int
) -> list[list[tuple[int, int, int]]]:
    """Shelf packing in the given order: rows of (item, w, h) that fit ``width × height``.

    Stops at the first copy that does not fit, so the copies placed are a prefix of the request.
    """
    rows: list[list[tuple[int, int, int]]] = []
    row: list[tuple[int, int, int]] = []
    row_width = 0
    used_height = 0  # height of the finished rows, gaps included
    for index, count in enumerate(counts):
        w, h = sizes[index]
        for _ in range(count):
            if row and row_width + gap + w <= width:
                candidate_height = max(max(r[2] for r in row), h)
                if used_height + candidate_height <= height:
                    row.append((index, w, h))
                    row_width += gap + w
                    continue
            if row:
                rows.append(row)
                used_height += max(r[2] for r in row) + gap
            if w > width or used_height + h > height:
                return rows
            row, row_width = [(index, w, h)], w
    if row:
        rows.append(row)
    return rows


def _place(
    rows: list[list[tuple[int, int, int]]], sheet_w: int, sheet_h: int, gap: int
) -> list[Placement]:
    """Rows centred on the sheet, each row centred on its own, photos centred in their row."""
    row_heights = [max(h for _, _, h in row) for row in rows]
    block_h = sum(row_heights) + gap * (len(rows) - 1)
    y = (sheet_h - block_h) // 2
    placements: list[Placement] = []
    for row, row_h in zip(rows, row_heights, strict=True):
        row_w = sum(w for _, w, _ in row) + gap * (len(row) - 1)
        x = (sheet_w - row_w) // 2
        for index, w, h in row:
            placements.append(Placement(index, x, y + (row_h - h) // 2, w, h))
            x += w + gap
        y += row_h + gap
    return placements


def _border(placements: list[Placement], sheet_w: int, sheet_h: int) -> int:
    """The narrowest blank border between the placed photos and the sheet's edges."""
    if not placements:
        return 0
    left = min(p.x_px for p in placements)
    top = min(p.y_px for p in placements)
    right = sheet_w - max(p.x_px + p.width_px for p in placements)
    bottom = sheet_h - max(p.y_px + p.height_px for p in placements)
    return min(left, top, right, bottom)


def _transpose(p: Placement) -> Placement:
    return Placement(p.item, p.y_px, p.x_px, p.height_px, p.width_px)


def _grid_count(size: tuple[int, int], width: int, height: int, gap: int) -> int:
    w, h = size
    if w > width or h > height:
        return 0
    return ((width + gap) // (w + gap)) * ((height + gap) // (h + gap))


MAX_LAYOUT_ITEMS = 12
"""Entries in one mixed sheet's layout: a bound on the work one request can ask for (each entry
is a photo rendered at its own size; real sheets mix two or three)."""


@dataclass(frozen=True, slots=True)
class SheetPlan:
    """Where every copy goes, worked out from sizes alone (no pixels)."""

    paper: Paper
    landscape: bool
    placements: tuple[Placement, ...]
    sizes_px: tuple[tuple[int, int], ...]

    @property
    def size_px(self) -> tuple[int, int]:
        """(width, height) of the sheet in pixels at 300 dpi, in its chosen orientation."""
        width = mm_to_px(self.paper.width_mm, SHEET_DPI)
        height = mm_to_px(self.paper.height_mm, SHEET_DPI)
        return (height, width) if self.landscape else (width, height)


def plan_sheet(
    sizes_mm: Sequence[tuple[float, float]],
    counts: Sequence[int | None],
    paper: Paper,
    *,
    gap_mm: float = DEFAULT_GAP_MM,
    margin_mm: float = DEFAULT_MARGIN_MM,
) -> SheetPlan:
    """Lay photos of these (width, height) sizes out on ``paper``: pure arithmetic, so a request
    can be refused before any photo is rendered.

    Raises :class:`InvalidParameter` if the request is malformed (no photo, too many photos, a
    count out of range) or if the requested copies do not all fit either way round
    (``details`` says how many would).
    """
    if not sizes_mm or len(sizes_mm) != len(counts):
        raise InvalidParameter("a sheet needs at least one photo", {"parameter": "items"})
    if len(sizes_mm) > MAX_LAYOUT_ITEMS:
        raise InvalidParameter(
            f"a sheet holds at most {MAX_LAYOUT_ITEMS} different photos, got {len(sizes_mm)}",
            {"parameter": "layout", "limit": MAX_LAYOUT_ITEMS},
        )
    open_ended = [i for i, count in enumerate(counts) if count is None]
    if open_ended and len(counts) > 1:
        raise InvalidParameter(
            "give a count for every photo on a mixed sheet", {"parameter": "count"}
        )
    if any(count is not None and not 1 <= count <= MAX_COPIES for count in counts):
        raise InvalidParameter(
            f"copies per photo must be from 1 to {MAX_COPIES}", {"parameter": "count"}
        )
    wanted = None if open_ended else sum(count or 0 for count in counts)
    if wanted is not None and wanted > MAX_COPIES:
        raise InvalidParameter(
            f"a sheet holds at most {MAX_COPIES} copies, {wanted} requested",
            {"parameter": "count", "limit": MAX_COPIES},
        )
    if not 0 <= gap_mm <= 20 or not 0 <= margin_mm <= 30:
        raise InvalidParameter("gap must be 0–20 mm and margin 0–30 mm", {"parameter": "gap"})
    gap = mm_to_px(gap_mm, SHEET_DPI)
    margin = mm_to_px(margin_mm, SHEET_DPI)
    sizes = [(mm_to_px(w, SHEET_DPI), mm_to_px(h, SHEET_DPI)) for w, h in sizes_mm]
    paper_w, paper_h = mm_to_px(paper.width_mm, SHEET_DPI), mm_to_px(paper.height_mm, SHEET_DPI)
    # Four candidates: paper upright or turned, photos packed in rows or in columns. Most copies
    # wins; among equals, the one wasting least space beside shorter photos in a shelf, then the
    # one leaving the widest blank border (so 4 × 1-inch + 2 × 2-inch comes out as two columns of
    # 1-inch pairs beside the two 2-inch photos, not as one long column squeezed to the edges).
    best_key: tuple[int, int, int] = (0, 0, 0)
    best: tuple[bool, list[Placement]] = (False, [])
    for landscape in (False, True):
        sheet_w, sheet_h = (paper_h, paper_w) if landscape else (paper_w, paper_h)
        usable_w, usable_h = sheet_w - 2 * margin, sheet_h - 2 * margin
        if open_ended:
            fitting = [_grid_count(sizes[0], usable_w, usable_h, gap)]
        else:
            fitting = [count or 0 for count in counts]
        for by_columns in (False, True):
            if by_columns:
                turned = [(h, w) for w, h in sizes]
                shelves = _rows(turned, fitting, usable_h, usable_w, gap)
                placed = [_transpose(p) for p in _place(shelves, sheet_h, sheet_w, gap)]
            else:
                shelves = _rows(sizes, fitting, usable_w, usable_h, gap)
                placed = _place(shelves, sheet_w, sheet_h, gap)
            waste = sum(
                (max(t for _, _, t in shelf) - t) * length
                for shelf in shelves
                for _, length, t in shelf
            )
            key = (len(placed), -waste, _border(placed, sheet_w, sheet_h))
            if key > best_key:
                best_key, best = key, (landscape, placed)
    count = best_key[0]
    landscape, placements = best
    if count == 0 or (wanted is not None and count < wanted):
        raise InvalidParameter(
            f"only {count} of the photos fit on a {paper.title} sheet",
            {"fits": count, "requested": wanted or 0},
        )
    return SheetPlan(paper, landscape, tuple(placements), tuple(sizes))


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
