"""id-photo and id-photo-sheet: their options, cache parameters, and the tasks a job runs.

:class:`PhotoOptions` and :class:`SheetOptions` are the one place of these options' defaults and
bounds (``/v1/id-photo``, ``/v1/id-photo/sheet``, jobs, the library). They resolve into a
:class:`PhotoWork` or :class:`SheetWork`: what to render from the upload's matte, which the sync
routes cache per upload and a job computes in its own task (:func:`id_photo_task`,
:func:`sheet_job_task`), storing the result under the sync route's key, so a sync request after
the job is a cache hit and vice versa.

A job stores the client's validated options (the canonical parameters cannot be turned back into
a size preset), and the worker parses them again; parsing uses no setting, so API and worker build
the same work.

A photo's ``face`` picks one person of several (whose matte is cached apart), and its nudges
correct the framing within the size's ranges; each joins the cache keys only when set, so the keys
made before them still hold.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

from pydantic import BaseModel, Field

from faceflow.cache.compute import CachedCompute
from faceflow.cache.entry import CacheEntry
from faceflow.cache.keys import CUTOUT_OPERATION, cache_key_from_hash
from faceflow.cache.tiered import CacheStatus
from faceflow.config import MAX_FACES
from faceflow.errors import InvalidParameter, JsonScalar, quoted
from faceflow.imaging.formats import OutputFormat
from faceflow.operations.choices import Gradient
from faceflow.operations.parse import OPTIONS_CONFIG
from faceflow.pipeline.idphoto.nudge import NO_NUDGE, Nudge
from faceflow.pipeline.idphoto.options import IdPhotoOptions
from faceflow.pipeline.idphoto.palette import BackgroundStyle, parse_background
from faceflow.pipeline.idphoto.sheet_plan import MAX_LAYOUT_ITEMS, get_paper, on_sheet, plan_sheet
from faceflow.pipeline.idphoto.specs import IdPhotoSpec, custom_spec, get_spec, matte_head_px
from faceflow.runtime.context import WorkerContext
from faceflow.runtime.idphoto_tasks import (
    MatteRequest,
    RenderRequest,
    ResponseKind,
    SheetRequest,
    matte_task,
    render_task,
    sheet_task,
)
from faceflow.runtime.tasks import TaskOutput

_SPEC = "size preset key (see GET /v1/id-photo/specs); not with width and height"
_BACKGROUND = "white, blue, red, grey or #rrggbb (URL-encode # as %23)"
_GRADIENT = "fade the background to white"
_FACE = (
    "which face to use when the photo has several, counted from 1 left to right (400 "
    "out_of_range past the last); without it the photo must hold exactly one"
)


def photo_cache_params(options: IdPhotoOptions) -> dict[str, JsonScalar]:
    """Every option that changes the photo, canonically, for the cache key (sync and jobs). A
    transparent photo has no background: the colour and gradient asked for beside it (the web
    page sends its swatch's) change nothing, so they do not split its key."""
    background = None if options.transparent else options.background
    return {
        "spec": json.dumps(options.spec.to_dict(), sort_keys=True, separators=(",", ":")),
        "background": None if background is None else background.hex,
        "style": None if background is None else background.style.value,
        "format": options.output_format.value,
        "max_kb": options.max_kb,
        "transparent": options.transparent,
        "quality": options.quality,
        # Only a nudged photo's key names its nudge, so every key made before nudges still holds.
        **({} if options.nudge == NO_NUDGE else {"nudge": json.dumps(asdict(options.nudge))}),
    }


def _face_params(face: int | None) -> dict[str, JsonScalar]:
    # A chosen face has its own matte, and so its own photos; without one the key is as it was.
    return {} if face is None else {"face": face}


def _matte_params(face: int | None, head_px: int | None) -> dict[str, JsonScalar]:
    # A cut-out made for the presets serves every preset; a custom size whose head needs more
    # pixels has its own, keyed by that need (a matte at another resolution is another entry).
    return {**_face_params(face), **({} if head_px is None else {"head_px": head_px})}


@dataclass(frozen=True, slots=True)
class PhotoWork:
    """A validated photo: which face's matte (``face``: counted from 1 left to right; None: the
    photo's only one), what to render from it, and how to answer."""

    options: IdPhotoOptions
    response: ResponseKind = ResponseKind.IMAGE
    face: int | None = None

    def cache_params(self) -> dict[str, JsonScalar]:
        return {
            **photo_cache_params(self.options),
            "response": self.response.value,
            **_face_params(self.face),
        }

    @property
    def head_px(self) -> int | None:
        return matte_head_px([self.options.spec])

    @property
    def output_px(self) -> int:
        """The pixels of the photo rendered."""
        return self.options.spec.width_px * self.options.spec.height_px

    def matte_params(self) -> dict[str, JsonScalar]:
        """The parameters of the matte's cache key (the upload's content hash is the rest)."""
        return _matte_params(self.face, self.head_px)

    def preset_matte_params(self) -> dict[str, JsonScalar]:
        """The key of the cut-out made for the presets, which also serves this work (less
        sharply when :attr:`head_px` asks for more) when its own is not cached."""
        return _face_params(self.face)

    def matte_request(self, data: bytes) -> MatteRequest:
        return MatteRequest(data, self.face, self.head_px)

    def request(self, matte: bytes) -> RenderRequest:
        return RenderRequest(matte, self.options, self.response)


@dataclass(frozen=True, slots=True)
class SheetWork:
    """A validated print sheet: (photo options, copies) per preset — copies None: as many as
    fit (single preset only) — on a paper."""

    items: tuple[tuple[IdPhotoOptions, int | None], ...]
    paper: str
    output_format: OutputFormat = OutputFormat.JPEG
    face: int | None = None
    """As :attr:`PhotoWork.face` (``/v1/id-photo?sheet=`` passes the photo's on)."""

    def cache_params(self) -> dict[str, JsonScalar]:
        items = [[photo_cache_params(options), count] for options, count in self.items]
        return {
            "paper": self.paper,
            "items": json.dumps(items, sort_keys=True),
            **_face_params(self.face),
        }

    @property
    def head_px(self) -> int | None:
        return matte_head_px([options.spec for options, _ in self.items])

    def matte_params(self) -> dict[str, JsonScalar]:
        return _matte_params(self.face, self.head_px)

    def preset_matte_params(self) -> dict[str, JsonScalar]:
        return _face_params(self.face)

    def matte_request(self, data: bytes) -> MatteRequest:
        return MatteRequest(data, self.face, self.head_px)

    def request(self, matte: bytes) -> SheetRequest:
        return SheetRequest(matte, self.items, self.paper, self.output_format)


def sheet_work(
    items: Sequence[tuple[IdPhotoOptions, int | None]],
    paper: str,
    output_format: OutputFormat = OutputFormat.JPEG,
    face: int | None = None,
) -> SheetWork:
    """A validated sheet; InvalidParameter for a transparent photo, an unknown paper, or photos
    that cannot all fit on it (worked out from their sizes alone, so a hopeless layout is
    refused before any rendering)."""
    if any(options.transparent for options, _ in items):
        raise InvalidParameter(
            "a print sheet cannot be transparent; choose a background",
            {"parameter": "transparent"},
        )
    chosen = get_paper(paper)
    plan_sheet(
        [(options.spec.width_mm, options.spec.height_mm) for options, _ in items],
        [count for _, count in items],
        chosen,
    )
    # Each photo rendered at the sheet's DPI: resampled once, and its cut-out sized for that.
    printed = tuple((on_sheet(options), count) for options, count in items)
    return SheetWork(printed, chosen.key, output_format, face)


class PhotoOptions(BaseModel):
    """The options of an ID photo (``/v1/id-photo`` without ``sheet`` and ``source``; a job)."""

    model_config = OPTIONS_CONFIG

    spec: str = Field("cn-1inch", description=_SPEC)
    width: float | None = Field(None, gt=0, description="custom width (with height and unit)")
    height: float | None = Field(None, gt=0, description="custom height")
    unit: Literal["mm", "px"] = Field("mm", description="unit of a custom width and height")
    dpi: int | None = Field(
        None, ge=72, le=1200, description="print resolution of a custom size (default 300)"
    )
    background: str = Field("white", description=_BACKGROUND)
    gradient: Gradient = Field("none", description=_GRADIENT)
    format: OutputFormat = Field(OutputFormat.JPEG, description="output image format")
    max_kb: int | None = Field(
        None,
        ge=1,
        le=10_000,
        description="JPEG file-size cap in KB of 1,000 bytes, so the file is accepted whether a"
        " portal counts 1,000 or 1,024 bytes per KB",
    )
    transparent: bool = Field(False, description="PNG with the background left transparent")
    quality: int = Field(95, ge=1, le=100, description="JPEG quality (without max_kb)")
    response: ResponseKind = Field(
        ResponseKind.IMAGE, description="image: the photo; json: base64 photo + report"
    )
    face: int | None = Field(None, ge=1, le=MAX_FACES, description=_FACE)
    # Nudges: the person's corrections to the automatic framing. Their ranges depend on the size
    # (GET /v1/id-photo/specs lists them as "nudges"), so they are checked once :meth:`photo`
    # knows it (IdPhotoOptions → Nudge.check): 400 out_of_range with the parameter, min and max.
    head_mm: float | None = Field(
        None, gt=0, description="head height, chin to crown, in mm (nudge)"
    )
    eye_line_mm: float | None = Field(
        None, gt=0, description="eye line up from the bottom edge, in mm (nudge)"
    )
    shift_mm: float = Field(0.0, description="move the face right in mm; negative: left (nudge)")
    roll_deg: float = Field(
        0.0, description="turn the head clockwise in degrees; negative: anticlockwise (nudge)"
    )

    def photo(self) -> IdPhotoOptions:
        """Validated photo options; InvalidParameter (400) for any bad value or combination,
        OutOfRange (400) for a nudge outside the size's ranges."""
        chosen: IdPhotoSpec
        given = self.model_fields_set
        if self.width is not None or self.height is not None:
            # A preset beside a custom size would be ignored: the client meant one of the two.
            if "spec" in given:
                raise InvalidParameter(
                    "give a size preset (spec) or a custom width and height, not both",
                    {"parameter": "spec"},
                )
            if self.width is None or self.height is None:
                missing = "width" if self.width is None else "height"
                raise InvalidParameter(
                    f"a custom size needs both width and height: {missing} is missing",
                    {"parameter": missing},
                )
            chosen = custom_spec(self.width, self.height, self.unit, self.dpi or 300)
        else:
            chosen = get_spec(self.spec)
            # A preset's pixels and DPI are its own; a dpi or unit here would be silently dropped
            # (a 600 dpi print of a 300 dpi photo comes out half the size).
            for name in ("dpi", "unit"):
                if name in given:
                    raise InvalidParameter(
                        f"{name} applies to a custom size (width and height); {chosen.key} is"
                        f" {chosen.width_px}×{chosen.height_px} px at {chosen.dpi} dpi",
                        {"parameter": name},
                    )
        if "quality" in given:
            # max_kb chooses the quality itself, and PNG has none: either would drop this one.
            if self.format is not OutputFormat.JPEG:
                raise InvalidParameter(
                    "quality applies to JPEG output only", {"parameter": "quality"}
                )
            if self.max_kb is not None:
                raise InvalidParameter(
                    "give quality or max_kb, not both: max_kb chooses the highest quality that"
                    " fits",
                    {"parameter": "quality"},
                )
        style = BackgroundStyle.SOLID if self.gradient == "none" else BackgroundStyle(self.gradient)
        colour = parse_background(self.background, style.value)
        nudge = Nudge(self.head_mm, self.eye_line_mm, self.shift_mm, self.roll_deg)
        return IdPhotoOptions(
            chosen, colour, self.format, self.max_kb, self.transparent, self.quality, nudge
        )

    def work(self) -> PhotoWork:
        return PhotoWork(self.photo(), self.response, self.face)


class PhotoRouteOptions(PhotoOptions):
    """The options of ``/v1/id-photo``: a photo's, a print sheet instead, or an earlier upload."""

    sheet: str | None = Field(None, description="return a print sheet on this paper instead")
    source: str | None = Field(
        None,
        pattern="^[0-9a-f]{64}([.][0-9a-f]{32})?$",
        description="an earlier upload's X-Source, sent instead of the photo (no body); with API "
        "keys on, only the key that uploaded it may",
    )

    def sheet_work(self, photo: PhotoWork) -> SheetWork | None:
        """The print sheet of ``photo`` asked for with ``sheet``, validated, or None. The
        photo's own file options would be dropped on a sheet: 400 naming the one given."""
        if self.sheet is None:
            return None
        dropped = [
            name
            for name, given in (
                ("response", self.response is ResponseKind.JSON),
                ("max_kb", self.max_kb is not None),
                ("quality", "quality" in self.model_fields_set),
            )
            if given
        ]
        if dropped:
            raise InvalidParameter(
                f"{dropped[0]} applies to the photo, not to a print sheet",
                {"parameter": dropped[0]},
            )
        return sheet_work([(photo.options, None)], self.sheet, self.format, photo.face)


def parse_layout(value: str) -> list[tuple[str, int]]:
    """'cn-1inch:4,cn-2inch:2' → [('cn-1inch', 4), ('cn-2inch', 2)]; at most
    ``MAX_LAYOUT_ITEMS`` items, counted before any is parsed."""
    parts = value.split(",", MAX_LAYOUT_ITEMS)
    if len(parts) > MAX_LAYOUT_ITEMS:
        raise InvalidParameter(
            f"a layout holds at most {MAX_LAYOUT_ITEMS} items",
            {"parameter": "layout", "limit": MAX_LAYOUT_ITEMS},
        )
    items = []
    for part in parts:
        key, _, count = part.strip().partition(":")
        # ASCII digits only, as every other number in a query: int() also took '+1_0' and
        # full-width or Arabic-Indic digits.
        if not (count.isascii() and count.isdigit()):
            raise InvalidParameter(
                f"layout item {quoted(part)} must be preset:count, e.g. cn-1inch:4",
                {"parameter": "layout"},
            )
        items.append((key, int(count)))
    return items


class SheetOptions(BaseModel):
    """The options of a print sheet (``/v1/id-photo/sheet``, a job)."""

    model_config = OPTIONS_CONFIG

    spec: str = Field("cn-1inch", description=_SPEC)
    sheet: str = Field("6inch", description="6inch (4×6 in), 5inch (3.5×5 in) or a4")
    layout: str | None = Field(
        None, description="mixed sheet: preset:count list, e.g. cn-1inch:4,cn-2inch:2"
    )
    background: str = Field("white", description=_BACKGROUND)
    gradient: Gradient = Field("none", description=_GRADIENT)
    face: int | None = Field(None, ge=1, le=MAX_FACES, description=_FACE)

    def work(self) -> SheetWork:
        """Validated; InvalidParameter (400) for any bad value."""
        if self.layout and "spec" in self.model_fields_set:
            raise InvalidParameter(
                "give a size preset (spec) or a layout of presets, not both",
                {"parameter": "spec"},
            )
        counts: list[tuple[str, int | None]] = (
            list(parse_layout(self.layout)) if self.layout else [(self.spec, None)]
        )
        items = [
            (PhotoOptions(spec=key, background=self.background, gradient=self.gradient).photo(), n)
            for key, n in counts
        ]
        try:
            return sheet_work(items, self.sheet, face=self.face)
        except InvalidParameter as exc:
            # The plan names its own arguments (count, items) or none (what fits): here they are
            # the layout's counts, or the paper a preset's copies are put on.
            if exc.details.get("parameter") not in (None, "count", "items"):
                raise
            at_fault = "layout" if self.layout else "sheet"
            raise InvalidParameter(exc.message, {**exc.details, "parameter": at_fault}) from None


@dataclass(frozen=True, slots=True)
class IdPhotoJobRequest:
    data: bytes = field(repr=False)
    work: PhotoWork
    raw: PhotoOptions


@dataclass(frozen=True, slots=True)
class SheetJobRequest:
    data: bytes = field(repr=False)
    work: SheetWork
    raw: SheetOptions


def with_stage_timings(before: Mapping[str, JsonScalar], output: TaskOutput) -> TaskOutput:
    """``output`` with the ``ms_`` timings of the stage ``before`` it (a cut-out's decode,
    detect and matte beside a render's), so Server-Timing shows both."""
    timings = {k: v for k, v in before.items() if k.startswith("ms_")}
    return TaskOutput(output.media_type, output.body, {**timings, **output.meta})


def _after_matte(
    context: WorkerContext, request: MatteRequest, finish: Callable[[bytes], TaskOutput]
) -> TaskOutput:
    """The upload's matte, then ``finish(matte)``: a sync endpoint's two stages in one task, with
    the matte stage's timings kept in the output."""
    matte = matte_task(context, request)
    return with_stage_timings(matte.meta, finish(matte.body))


def id_photo_task(context: WorkerContext, request: IdPhotoJobRequest) -> TaskOutput:
    """Matte, then render."""
    work = request.work
    return _after_matte(
        context,
        work.matte_request(request.data),
        lambda matte: render_task(context, work.request(matte)),
    )


def sheet_job_task(context: WorkerContext, request: SheetJobRequest) -> TaskOutput:
    """Matte, then the sheet."""
    work = request.work
    return _after_matte(
        context,
        work.matte_request(request.data),
        lambda matte: sheet_task(context, work.request(matte)),
    )


async def _staged(
    compute: CachedCompute,
    data: bytes,
    digest: str,
    work: PhotoWork | SheetWork,
    finish: Callable[[CacheEntry], Awaitable[TaskOutput]],
) -> TaskOutput:
    """The upload's cut-out from the cache (or made once and cached, under the sync route's
    key), then ``finish(cut-out)``: an in-process job's two stages, so jobs of one photo in
    several sizes or backgrounds, and the sync route, share its one u2netp run (each job ran it
    again: 20 jobs of one photo on different backgrounds, 20 cut-outs). ``digest``: the
    content hash of ``data``, taken once for the job's key."""
    key = cache_key_from_hash(digest, CUTOUT_OPERATION, work.matte_params())
    matte, status = await compute.run(key, matte_task, work.matte_request(data))
    output = await finish(matte)
    if status not in (CacheStatus.MISS, CacheStatus.JOINED):
        return output  # a cut-out from the cache: only what this job spent
    return with_stage_timings(matte.meta, output)


async def staged_id_photo(
    compute: CachedCompute, request: IdPhotoJobRequest, digest: str
) -> TaskOutput:
    """:func:`id_photo_task` in stages through the cache (:func:`_staged`)."""
    work = request.work

    async def render(matte: CacheEntry) -> TaskOutput:
        return await compute.run_uncached(render_task, work.request(matte.body))

    return await _staged(compute, request.data, digest, work, render)


async def staged_sheet(compute: CachedCompute, request: SheetJobRequest, digest: str) -> TaskOutput:
    """:func:`sheet_job_task` in stages through the cache (:func:`_staged`)."""
    work = request.work

    async def sheet(matte: CacheEntry) -> TaskOutput:
        return await compute.run_uncached(sheet_task, work.request(matte.body))

    return await _staged(compute, request.data, digest, work, sheet)


def photo_job(raw: PhotoOptions, data: bytes) -> IdPhotoJobRequest:
    return IdPhotoJobRequest(data, raw.work(), raw)


def sheet_job(raw: SheetOptions, data: bytes) -> SheetJobRequest:
    return SheetJobRequest(data, raw.work(), raw)
