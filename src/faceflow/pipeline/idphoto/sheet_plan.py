"""Print sheets planned from sizes alone: the papers, and where every copy goes.

Pure arithmetic (:mod:`.sheet` draws the sheet): the API process refuses a layout that cannot
fit before any photo is rendered, and lists the papers, without importing numpy or OpenCV.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from faceflow.errors import InvalidParameter, did_you_mean, quoted
from faceflow.pipeline.idphoto.options import IdPhotoOptions
from faceflow.pipeline.idphoto.specs import mm_to_px

SHEET_DPI = 300
DEFAULT_GAP_MM = 2.0
DEFAULT_MARGIN_MM = 3.0
MAX_COPIES = 200


def on_sheet(options: IdPhotoOptions) -> IdPhotoOptions:
    """``options`` for the photo as a sheet prints it: the same size in millimetres, rendered at
    :data:`SHEET_DPI`, so that its pixels are the sheet's and it is resampled once, from the
    cut-out. Rendered at its own DPI and then resized to the sheet's, a China ID card's photo
    (350 dpi) kept a third of its fine detail (Laplacian variance 235 against 673 rendered at
    300 dpi), and a 72 dpi custom size came out as a blur, enlarged 4 times."""
    spec = options.spec
    if spec.dpi == SHEET_DPI:
        return options
    return replace(options, spec=replace(spec, dpi=SHEET_DPI))


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
            f"unknown sheet {quoted(key)}{did_you_mean(key, _PAPER_BY_KEY)}; known sheets: {known}",
            {"parameter": "sheet"},
        ) from None


@dataclass(frozen=True, slots=True)
class Placement:
    """Where one copy went, in sheet pixels; ``item`` indexes the items given."""

    item: int
    x_px: int
    y_px: int
    width_px: int
    height_px: int


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

    A count of None (a sole photo) asks for as many copies as fit, at most :data:`MAX_COPIES`.

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
            # As many as fit, up to the copies a sheet may hold: a custom size can be 64 px at
            # 1,200 dpi (16 px on the sheet), 5,160 of which on A4 took 0.12 s of the API
            # process's event loop to plan, for a request whose body was then refused.
            fitting = [min(_grid_count(sizes[0], usable_w, usable_h, gap), MAX_COPIES)]
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
