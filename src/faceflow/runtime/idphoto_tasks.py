"""ID-photo work for the inference processes, in two cacheable stages.

1. :func:`matte_task`: decode, detect, require one face, cut the portrait out (u2netp). Its output
   is the serialised matte, which the service caches by the upload's content hash.
2. :func:`render_task` / :func:`sheet_task`: from a matte alone, lay out, recolour, encode — no
   model runs, so another size, background or format for the same upload costs tens of ms.

As in :mod:`faceflow.runtime.tasks`, the API process imports this module for the requests and
the tasks' names only, so the pipeline is imported inside the tasks, in the inference processes.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING

from faceflow.errors import JsonScalar
from faceflow.imaging.formats import OutputFormat
from faceflow.pipeline.idphoto.options import IdPhotoOptions
from faceflow.pipeline.idphoto.sheet_plan import get_paper, on_sheet
from faceflow.pipeline.idphoto.specs import IdPhotoSpec, matte_head_px
from faceflow.runtime.child import checkpoint
from faceflow.runtime.context import WorkerContext
from faceflow.runtime.tasks import JSON_MEDIA_TYPE, StageTimer, TaskOutput, decode_for

if TYPE_CHECKING:
    from faceflow.pipeline.idphoto.render import IdPhotoResult

MATTE_MEDIA_TYPE = "application/vnd.faceflow.matte"
# Enough pixels for a 600 dpi photo's head, without decoding a 40 MP upload in full.
MATTE_DECODE_PX = 2400
# The matte's meta: the tallest head (output px) it serves as sharply as a new cut-out would.
SHARP_TO_HEAD_PX = "sharp_to_head_px"


class ResponseKind(StrEnum):
    IMAGE = "image"
    JSON = "json"


@dataclass(frozen=True, slots=True)
class MatteRequest:
    """``face``: which face of several to cut out, counted from 1 left to right; ``None``
    requires exactly one."""

    data: bytes
    face: int | None = None
    head_px: int | None = None
    """The head height (output px) the cut-out must serve when a preset's is not enough
    (:func:`matte_head_px`); ``None``: every preset's."""


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


def matte_task(context: WorkerContext, request: MatteRequest) -> TaskOutput:
    """The upload's portrait matte, serialised; NoFace / MultipleFaces unless exactly one face
    (or ``face`` chooses one of several).

    OperationDisabled, before any decoding, when this process has no segmenter (ID photos are
    off)."""
    from faceflow.imaging.colour import in_srgb
    from faceflow.pipeline.detect import detect_faces
    from faceflow.pipeline.idphoto.level import levelled_face
    from faceflow.pipeline.idphoto.matte import compute_matte, matte_to_bytes, sharp_to_head_px
    from faceflow.pipeline.idphoto.render import chosen_face
    from faceflow.pipeline.idphoto.upright import upright

    segmenter = context.models.segmenter
    timer = StageTimer()
    image = decode_for(context, request.data, MATTE_DECODE_PX, timer)
    with timer.stage("detect"):
        defaults = context.detect_defaults
        faces = detect_faces(image.rgb, context.models.detector, defaults, source_scale=image.scale)
        # Numbered in the photo as uploaded (as /v1/detect lists them), before any turn.
        chosen = chosen_face(faces, request.face, max_faces=defaults.max_faces)
        # A photo saved on its side is made as from the upright file (see the module).
        turned = upright(
            image.rgb, chosen, [other for other in faces if other is not chosen], image.scale
        )
        if turned.turns:
            found = detect_faces(
                turned.rgb,
                context.models.detector,
                context.detect_defaults,
                source_scale=image.scale,
            )
            turned = turned.redetected(found)
        face = levelled_face(turned.rgb, turned.face, context.models.aligner, image.scale)
    with timer.stage("matte"):
        matte = compute_matte(
            turned.rgb,
            face,
            segmenter,
            source_scale=image.scale,
            head_px=request.head_px,
            others=turned.others,
        )
        # The ID photo is the source's own pixels: in the source's colour profile, if it has one
        # (converting the cut-out, not the whole photo: a 7.7 MP decode took 250 ms).
        matte = replace(matte, foreground=in_srgb(matte.foreground, image.icc_profile))
        body = matte_to_bytes(matte)
    # Which taller custom heads this matte also serves as sharply as a new one (the service
    # reuses it for them instead of cutting the upload out again).
    sharp = sharp_to_head_px(matte, image.scale)
    meta = {"face_count": 1, SHARP_TO_HEAD_PX: sharp, **timer.as_meta()}
    return TaskOutput(MATTE_MEDIA_TYPE, body, meta)


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
    from faceflow.pipeline.idphoto.matte import matte_from_bytes
    from faceflow.pipeline.idphoto.render import render_id_photo

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
    """A 300 dpi print sheet with copies of the photo at one or several sizes, and cut marks;
    its ``compliance`` is the worst of its photos' reports (a sheet of a photo a counter would
    refuse must not come back as if it were fine)."""
    from faceflow.pipeline.idphoto.compliance import assess
    from faceflow.pipeline.idphoto.matte import matte_from_bytes
    from faceflow.pipeline.idphoto.render import render_pixels
    from faceflow.pipeline.idphoto.sheet import SheetItem, compose_sheet

    timer = StageTimer()
    with timer.stage("render"):
        matte = matte_from_bytes(request.matte)
        items = []
        verdicts = []
        for asked, count in request.items:
            checkpoint()  # each item is a full render: a layout may hold many
            options = on_sheet(asked)  # at the sheet's DPI: resampled once, from the cut-out
            spec: IdPhotoSpec = options.spec
            rendered = render_pixels(matte, matte.face, options)
            report = assess(rendered.layout, matte, matte.face, options.background)
            verdicts.append(report.status)
            items.append(SheetItem(rendered.pixels, spec.width_mm, spec.height_mm, count))
        sheet = compose_sheet(items, get_paper(request.paper))
    with timer.stage("encode"):
        body = sheet.encode(request.output_format)
    meta: dict[str, JsonScalar] = {
        "compliance": max(verdicts, key=lambda verdict: verdict.rank).value,
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
    face: int | None = None
    """As :attr:`MatteRequest.face` (``-O face=N``)."""


@dataclass(frozen=True, slots=True)
class IdPhotoFile:
    photo: IdPhotoResult
    sheet: bytes | None


def id_photo_file(context: WorkerContext, request: IdPhotoFileRequest) -> IdPhotoFile:
    """The CLI's task: matte, photo and sheet in one go (the CLI has no cache to share)."""
    from faceflow.pipeline.idphoto.matte import matte_from_bytes
    from faceflow.pipeline.idphoto.render import render_id_photo, render_pixels
    from faceflow.pipeline.idphoto.sheet import SheetItem, compose_sheet

    printed = None if request.paper is None else on_sheet(request.options)
    head_px = matte_head_px([options.spec for options in (request.options, printed) if options])
    matte_output = matte_task(context, MatteRequest(request.data, request.face, head_px))
    checkpoint()
    matte = matte_from_bytes(matte_output.body)
    photo = render_id_photo(matte, matte.face, request.options)
    sheet = None
    if request.paper is not None and printed is not None:
        # Rendered at the sheet's DPI, as the service's sheets are (:func:`on_sheet`).
        pixels = render_pixels(matte, matte.face, printed).pixels
        spec = printed.spec
        item = SheetItem(pixels, spec.width_mm, spec.height_mm, None)
        sheet = compose_sheet([item], get_paper(request.paper)).encode()
    return IdPhotoFile(photo, sheet)
