"""ID photos: size presets, the photo itself, and print sheets.

Every photo of an upload is rendered from one cached matte (keyed by the upload's content hash):
the first request runs detection and u2netp; another size, background or format for the same
photo only lays out, recolours and encodes. The answer names the upload (``X-Source``, its content
hash), and a later render may send ``source=<that hash>`` instead of the photo while the matte is
cached (404 ``source_expired`` once it is not).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from faceflow.cache.entry import CacheEntry
from faceflow.cache.keys import cache_key_from_hash, content_hash
from faceflow.cache.tiered import CacheStatus
from faceflow.errors import JsonScalar, SourceExpired
from faceflow.imaging.encode import OutputFormat
from faceflow.pipeline.idphoto.layout import Nudge, nudge_ranges
from faceflow.pipeline.idphoto.sheet import PAPERS
from faceflow.pipeline.idphoto.specs import list_specs
from faceflow.runtime.idphoto_tasks import (
    MatteRequest,
    PhotoParams,
    RenderRequest,
    ResponseKind,
    SheetParams,
    SheetRequest,
    matte_task,
    photo_cache_params,
    render_task,
    sheet_cache_params,
    sheet_request,
    sheet_task,
)
from faceflow.runtime.pool import Admission
from faceflow.runtime.tasks import TaskOutput
from faceflow.service.guard import guard
from faceflow.service.routes.faces import cache_headers
from faceflow.service.schemas import (
    ErrorBody,
    error_responses,
    image_request_body,
    image_response,
)
from faceflow.service.state import Services, services_of
from faceflow.service.upload import read_image

router = APIRouter(prefix="/v1/id-photo", tags=["id-photo"], dependencies=[Depends(guard)])

SpecKey = Annotated[
    str, Query(description="size preset key (see GET /v1/id-photo/specs); ignored with width")
]
Width = Annotated[float | None, Query(gt=0, description="custom width (with height and unit)")]
Height = Annotated[float | None, Query(gt=0, description="custom height")]
Unit = Annotated[Literal["mm", "px"], Query(description="unit of a custom width and height")]
Dpi = Annotated[int | None, Query(ge=72, le=1200, description="print resolution of a custom size")]
BackgroundColour = Annotated[
    str, Query(description="white, blue, red, grey or #rrggbb (URL-encode # as %23)")
]
Gradient = Annotated[
    Literal["none", "vertical", "radial"], Query(description="fade the background to white")
]
Format = Annotated[OutputFormat, Query(description="output image format")]
MaxKb = Annotated[
    int | None,
    Query(
        ge=1,
        le=10_000,
        description="JPEG file-size cap in KB of 1,000 bytes, so the file is accepted whether a"
        " portal counts 1,000 or 1,024 bytes per KB",
    ),
]
Transparent = Annotated[bool, Query(description="PNG with the background left transparent")]
Quality = Annotated[int, Query(ge=1, le=100, description="JPEG quality (without max_kb)")]
Source = Annotated[
    str | None,
    Query(
        pattern="^[0-9a-f]{64}$",
        description="an earlier upload's X-Source, sent instead of the photo (no body)",
    ),
]
FaceNumber = Annotated[
    int | None,
    Query(
        ge=1,
        description="which face to use when the photo has several, counted from 1 left to right"
        " (400 out_of_range past the last); without it the photo must hold exactly one",
    ),
]
# Nudges: the person's corrections to the automatic framing, each checked against the size's own
# ranges (GET /v1/id-photo/specs lists them as "nudges"); 400 out_of_range outside them.
HeadMm = Annotated[
    float | None, Query(gt=0, description="head height, chin to crown, in mm (nudge)")
]
EyeLineMm = Annotated[
    float | None, Query(gt=0, description="eye line up from the bottom edge, in mm (nudge)")
]
ShiftMm = Annotated[float, Query(description="move the face right in mm; negative: left (nudge)")]
RollDeg = Annotated[
    float, Query(description="turn the head clockwise in degrees; negative: anticlockwise (nudge)")
]
SOURCE_HEADER = "X-Source"
# An upload's content hash, its bytes (None for a source= render) and the chosen face.
Origin = tuple[str, bytes | None, int | None]


def _matte_params(face: int | None) -> dict[str, JsonScalar]:
    # A chosen face has its own matte; the plain one keeps the key it always had.
    return {} if face is None else {"face": face}


async def _matte_of(services: Services, origin: Origin, admission: Admission) -> CacheEntry:
    """The matte of the upload ``data`` whose content hash is ``digest``: from the cache, or
    detection + u2netp once for concurrent requests. Without ``data`` (a ``source=`` render) only
    the cache can answer: :class:`SourceExpired` when it no longer holds it."""
    digest, data, face = origin
    key = cache_key_from_hash(digest, "matte", _matte_params(face))
    if data is None:
        entry, _ = await services.cache.lookup(key)
        if entry is None:
            raise SourceExpired("this photo is no longer on the server: upload it again")
        return entry
    upload = data

    async def produce() -> TaskOutput:
        request = MatteRequest(upload, face)
        return await services.pool.run(matte_task, request, admission=admission)

    entry, _ = await services.cached_output(key, produce)
    return entry


async def _from_matte(
    services: Services,
    origin: Origin,
    operation: str,
    params: dict[str, JsonScalar],
    build: RenderRequest | SheetRequest,
) -> tuple[CacheEntry, CacheStatus]:

    async def produce() -> TaskOutput:
        # One admission for both trips: a request given a place is never refused half-way, after
        # its matte was made (or while it waited for another request's).
        with services.pool.admit() as admission:
            matte = await _matte_of(services, origin, admission)
            if isinstance(build, RenderRequest):
                request = RenderRequest(matte.body, build.options, build.response)
                return await services.pool.run(render_task, request, admission=admission)
            sheet = SheetRequest(matte.body, build.items, build.paper, build.output_format)
            return await services.pool.run(sheet_task, sheet, admission=admission)

    key = cache_key_from_hash(origin[0], operation, {**params, **_matte_params(origin[2])})
    return await services.cached_output(key, produce)


def _photo_response(entry: CacheEntry, status: CacheStatus, digest: str) -> Response:
    headers = cache_headers(dict(entry.meta), status)
    headers[SOURCE_HEADER] = digest
    compliance = entry.meta.get("compliance")
    if isinstance(compliance, str):
        headers["X-Compliance"] = compliance
    return Response(entry.body, media_type=entry.media_type, headers=headers)


@router.get(
    "/specs",
    summary="Every size preset with its rules and sheet papers",
    responses=error_responses(401, 403, 429, 503),
)
async def specs() -> dict[str, object]:
    return {
        "specs": [
            {**spec.to_dict(), "nudges": {k: list(v) for k, v in nudge_ranges(spec).items()}}
            for spec in list_specs()
        ],
        "sheets": [paper.to_dict() for paper in PAPERS],
        "backgrounds": ["white", "blue", "red", "grey"],
    }


@router.post(
    "",
    summary="An ID photo: cut-out, background, size preset, head placed by rule",
    response_class=Response,
    responses={
        **image_response("the photo (default), or JSON with image_base64 and report"),
        **error_responses(),
        404: {"model": ErrorBody, "description": "source_expired: upload the photo again"},
    },
    openapi_extra=image_request_body(),
)
async def id_photo(
    request: Request,
    spec: SpecKey = "cn-1inch",
    width: Width = None,
    height: Height = None,
    unit: Unit = "mm",
    dpi: Dpi = None,
    background: BackgroundColour = "white",
    gradient: Gradient = "none",
    format: Format = OutputFormat.JPEG,
    max_kb: MaxKb = None,
    transparent: Transparent = False,
    quality: Quality = 95,
    response: Annotated[
        ResponseKind, Query(description="image: the photo; json: base64 photo + report")
    ] = ResponseKind.IMAGE,
    sheet: Annotated[
        str | None, Query(description="return a print sheet on this paper instead")
    ] = None,
    source: Source = None,
    face: FaceNumber = None,
    head_mm: HeadMm = None,
    eye_line_mm: EyeLineMm = None,
    shift_mm: ShiftMm = 0.0,
    roll_deg: RollDeg = 0.0,
) -> Response:
    """Exactly one face is required unless `face` chooses one: none → 422 `no_face`, several →
    422 `multiple_faces` with `face_count`. The `X-Compliance` header (pass / warn / fail)
    summarises the report; `X-Source` names the upload for later `source=` renders (no body then;
    404 `source_expired` once the server no longer holds its cut-out; send `face` again with it).
    Nudges outside the size's ranges → 400 `out_of_range` with the parameter, `min` and `max`."""
    services = services_of(request)
    options = PhotoParams(
        spec, width, height, unit, dpi, background, gradient, format, max_kb, transparent, quality
    ).to_options()
    options = replace(options, nudge=Nudge(head_mm, eye_line_mm, shift_mm, roll_deg))
    # A sheet is validated (its paper, whether the photo fits) before the upload is read.
    sheet_build = None if sheet is None else sheet_request([(options, None)], sheet, format)
    if source is None:
        data = (await read_image(request, services.settings.limits.max_upload_bytes)).data
        origin: Origin = (content_hash(data), data, face)
    else:
        origin = (source, None, face)
    if sheet_build is not None:
        return await _sheet(services, origin, sheet_build)
    params = {**photo_cache_params(options), "response": response.value}
    build = RenderRequest(b"", options, response)
    entry, status = await _from_matte(services, origin, "id-photo", params, build)
    return _photo_response(entry, status, origin[0])


async def _sheet(services: Services, origin: Origin, build: SheetRequest) -> Response:
    params = sheet_cache_params(build)
    entry, status = await _from_matte(services, origin, "id-photo-sheet", params, build)
    return _photo_response(entry, status, origin[0])


@router.post(
    "/sheet",
    summary="A 300 dpi print sheet (6-inch, 5-inch or A4) with cut marks",
    response_class=Response,
    responses={**image_response("the print sheet"), **error_responses()},
    openapi_extra=image_request_body(),
)
async def id_photo_sheet(
    request: Request,
    spec: SpecKey = "cn-1inch",
    sheet: Annotated[str, Query(description="6inch (4×6 in), 5inch (3.5×5 in) or a4")] = "6inch",
    layout: Annotated[
        str | None,
        Query(description="mixed sheet: preset:count list, e.g. cn-1inch:4,cn-2inch:2"),
    ] = None,
    background: BackgroundColour = "white",
    gradient: Gradient = "none",
) -> Response:
    """As many copies as fit (or the counts in `layout`), centred, with gaps and cut marks."""
    services = services_of(request)
    build = SheetParams(spec, sheet, layout, background, gradient).to_request()
    data = (await read_image(request, services.settings.limits.max_upload_bytes)).data
    return await _sheet(services, (content_hash(data), data, None), build)
