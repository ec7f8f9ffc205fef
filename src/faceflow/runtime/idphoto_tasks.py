"""ID-photo work for the inference processes, in two cacheable stages.

1. :func:`matte_task`: decode, detect, require one face, cut the portrait out (u2netp). Its output
   is the serialised matte, which the service caches by the upload's content hash.
2. :func:`render_task` / :func:`sheet_task`: from a matte alone, lay out, recolour, encode — no
   model runs, so another size, background or format for the same upload costs tens of ms.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Literal

from pydantic import ConfigDict

from faceflow.errors import InvalidParameter, JsonScalar
from faceflow.imaging.encode import OutputFormat
from faceflow.pipeline.detect import detect_faces
from faceflow.pipeline.idphoto.background import BackgroundStyle, parse_background
from faceflow.pipeline.idphoto.layout import NO_NUDGE
from faceflow.pipeline.idphoto.matte import compute_matte, matte_from_bytes, matte_to_bytes
from faceflow.pipeline.idphoto.render import (
    IdPhotoOptions,
    IdPhotoResult,
    chosen_face,
    render_id_photo,
    render_pixels,
)
from faceflow.pipeline.idphoto.sheet import (
    MAX_LAYOUT_ITEMS,
    SheetItem,
    compose_sheet,
    get_paper,
    plan_sheet,
)
from faceflow.pipeline.idphoto.specs import IdPhotoSpec, custom_spec, get_spec
from faceflow.runtime.child import checkpoint
from faceflow.runtime.context import WorkerContext
from faceflow.runtime.tasks import JSON_MEDIA_TYPE, StageTimer, TaskOutput, decode_for

MATTE_MEDIA_TYPE = "application/vnd.faceflow.matte"
# Enough pixels for a 600 dpi photo's head, without decoding a 40 MP upload in full.
MATTE_DECODE_PX = 2400


class ResponseKind(StrEnum):
    IMAGE = "image"
    JSON = "json"


@dataclass(frozen=True, slots=True)
class PhotoParams:
    """A client's ID-photo options as given (query string, job payload), before validation."""

    spec: str = "cn-1inch"
    width: float | None = None
    height: float | None = None
    unit: Literal["mm", "px"] = "mm"
    dpi: int | None = None
    background: str = "white"
    gradient: Literal["none", "vertical", "radial"] = "none"
    output_format: OutputFormat = OutputFormat.JPEG
    max_kb: int | None = None
    transparent: bool = False
    quality: int = 95

    def to_options(self) -> IdPhotoOptions:
        """Validated options; InvalidParameter (400) for any bad value or combination."""
        chosen: IdPhotoSpec
        if self.width is not None or self.height is not None:
            if self.width is None or self.height is None:
                raise InvalidParameter("a custom size needs both width and height")
            chosen = custom_spec(self.width, self.height, self.unit, self.dpi or 300)
        else:
            chosen = get_spec(self.spec)
        style = BackgroundStyle.SOLID if self.gradient == "none" else BackgroundStyle(self.gradient)
        colour = parse_background(self.background, style.value)
        return IdPhotoOptions(
            chosen, colour, self.output_format, self.max_kb, self.transparent, self.quality
        )


def photo_cache_params(options: IdPhotoOptions) -> dict[str, JsonScalar]:
    """Every option that changes the photo, canonically, for the cache key (sync and jobs)."""
    return {
        "spec": json.dumps(options.spec.to_dict(), sort_keys=True, separators=(",", ":")),
        "background": options.background.hex,
        "style": options.background.style.value,
        "format": options.output_format.value,
        "max_kb": options.max_kb,
        "transparent": options.transparent,
        "quality": options.quality,
        # Only a nudged photo's key names its nudge, so every key made before nudges still holds.
        **({} if options.nudge == NO_NUDGE else {"nudge": json.dumps(asdict(options.nudge))}),
    }


@dataclass(frozen=True, slots=True)
class MatteRequest:
    """``face``: which face of several to cut out, counted from 1 left to right; ``None``
    requires exactly one."""

    data: bytes
    face: int | None = None


@dataclass(frozen=True, slots=True)
class RenderRequest:
    matte: bytes
    options: IdPhotoOptions
    response: ResponseKind = ResponseKind.IMAGE


@dataclass(frozen=True, slots=True)
class SheetRequest:
    matte: bytes
    items: tuple[tuple[IdPhotoOptions, int | None], ...]
    """(photo options, copies) per preset; copies None = as many as fit (single preset only)."""
    paper: str
    output_format: OutputFormat = OutputFormat.JPEG


def sheet_request(
    items: Sequence[tuple[IdPhotoOptions, int | None]],
    paper: str,
    output_format: OutputFormat = OutputFormat.JPEG,
) -> SheetRequest:
    """A validated sheet request without its matte; InvalidParameter for a transparent photo,
    an unknown paper, or photos that cannot all fit on it (worked out from their sizes alone, so
    a hopeless layout is refused before any rendering)."""
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
    return SheetRequest(b"", tuple(items), chosen.key, output_format)


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
        try:
            items.append((key, int(count)))
        except ValueError:
            raise InvalidParameter(
                f"layout item {part!r} must be preset:count, e.g. cn-1inch:4"
            ) from None
    return items


@dataclass(frozen=True, slots=True)
class SheetParams:
    """The options of a print sheet as given (``/v1/id-photo/sheet``'s query, a job payload).

    Jobs validate a query string or a stored payload into it with pydantic; an option it does
    not have is refused there (``extra="forbid"``)."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    spec: str = "cn-1inch"
    sheet: str = "6inch"
    layout: str | None = None
    background: str = "white"
    gradient: Literal["none", "vertical", "radial"] = "none"

    def to_request(self) -> SheetRequest:
        """Validated, without the matte; InvalidParameter (400) for any bad value."""
        counts: list[tuple[str, int | None]] = (
            list(parse_layout(self.layout)) if self.layout else [(self.spec, None)]
        )
        items = [
            (PhotoParams(key, background=self.background, gradient=self.gradient).to_options(), n)
            for key, n in counts
        ]
        return sheet_request(items, self.sheet)


def sheet_cache_params(request: SheetRequest) -> dict[str, JsonScalar]:
    """Every option that changes the sheet, canonically, for the cache key (sync and jobs)."""
    items = [[photo_cache_params(options), count] for options, count in request.items]
    return {"paper": request.paper, "items": json.dumps(items, sort_keys=True)}


def matte_task(context: WorkerContext, request: MatteRequest) -> TaskOutput:
    """The upload's portrait matte, serialised; NoFace / MultipleFaces unless exactly one face."""
    timer = StageTimer()
    image = decode_for(context, request.data, MATTE_DECODE_PX, timer)
    with timer.stage("detect"):
        faces = detect_faces(
            image.rgb, context.models.detector, context.detect_defaults, source_scale=image.scale
        )
    face = chosen_face(faces, request.face)
    with timer.stage("matte"):
        matte = compute_matte(image.rgb, face, context.models.segmenter, source_scale=image.scale)
        body = matte_to_bytes(matte)
    return TaskOutput(MATTE_MEDIA_TYPE, body, {"face_count": 1, **timer.as_meta()})


def result_meta(result: IdPhotoResult) -> dict[str, JsonScalar]:
    return {
        "compliance": result.report.status.value,
        "width": result.width_px,
        "height": result.height_px,
        "dpi": result.dpi,
        "quality": result.quality,
    }


def render_task(context: WorkerContext, request: RenderRequest) -> TaskOutput:
    """The ID photo (image, or JSON with the image in base64 and the compliance report)."""
    timer = StageTimer()
    with timer.stage("render"):
        matte = matte_from_bytes(request.matte)
        result = render_id_photo(matte, matte.face, request.options)
    meta = {**result_meta(result), **timer.as_meta()}
    if request.response is ResponseKind.IMAGE:
        return TaskOutput(result.media_type, result.data, meta)
    body = {**result.to_dict(), "image_base64": base64.b64encode(result.data).decode("ascii")}
    return TaskOutput(JSON_MEDIA_TYPE, json.dumps(body, separators=(",", ":")).encode(), meta)


def sheet_task(context: WorkerContext, request: SheetRequest) -> TaskOutput:
    """A 300 dpi print sheet with copies of the photo at one or several sizes, and cut marks."""
    timer = StageTimer()
    with timer.stage("render"):
        matte = matte_from_bytes(request.matte)
        items = []
        for options, count in request.items:
            checkpoint()  # each item is a full render: a layout may hold many
            spec: IdPhotoSpec = options.spec
            pixels = render_pixels(matte, matte.face, options).pixels
            items.append(SheetItem(pixels, spec.width_mm, spec.height_mm, count))
        sheet = compose_sheet(items, get_paper(request.paper))
    with timer.stage("encode"):
        body = sheet.encode(request.output_format)
    meta: dict[str, JsonScalar] = {
        "copies": sheet.copies,
        "width": int(sheet.pixels.shape[1]),
        "height": int(sheet.pixels.shape[0]),
        "dpi": sheet.dpi,
        **timer.as_meta(),
    }
    return TaskOutput(request.output_format.mime_type, body, meta)


@dataclass(frozen=True, slots=True)
class IdPhotoFileRequest:
    """The CLI's request: one file's bytes, the photo to make, and optionally a print sheet."""

    data: bytes
    options: IdPhotoOptions
    paper: str | None = None


@dataclass(frozen=True, slots=True)
class IdPhotoFile:
    photo: IdPhotoResult
    sheet: bytes | None


def id_photo_file(context: WorkerContext, request: IdPhotoFileRequest) -> IdPhotoFile:
    """The CLI's task: matte, photo and sheet in one go (the CLI has no cache to share)."""
    matte_output = matte_task(context, MatteRequest(request.data))
    checkpoint()
    matte = matte_from_bytes(matte_output.body)
    photo = render_id_photo(matte, matte.face, request.options)
    sheet = None
    if request.paper is not None:
        pixels = render_pixels(matte, matte.face, request.options).pixels
        spec = request.options.spec
        item = SheetItem(pixels, spec.width_mm, spec.height_mm, None)
        sheet = compose_sheet([item], get_paper(request.paper)).encode()
    return IdPhotoFile(photo, sheet)
