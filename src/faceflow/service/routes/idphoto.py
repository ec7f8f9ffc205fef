"""ID photos: size presets, the photo itself, and print sheets.

Every photo of an upload is rendered from one cached matte (keyed by the upload's content hash):
the first request runs detection and u2netp; another size, background or format for the same
photo only lays out, recolours and encodes.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from faceflow.cache.entry import CacheEntry
from faceflow.cache.keys import cache_key
from faceflow.cache.tiered import CacheStatus
from faceflow.errors import JsonScalar
from faceflow.imaging.encode import OutputFormat
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
from faceflow.service.schemas import error_responses, image_request_body, image_response
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


async def cached_matte(services: Services, data: bytes, admission: Admission) -> CacheEntry:
    """The upload's matte: from the cache, or detection + u2netp once for concurrent requests."""

    async def produce() -> TaskOutput:
        return await services.pool.run(matte_task, MatteRequest(data), admission=admission)

    entry, _ = await services.cached_output(cache_key(data, "matte", {}), produce)
    return entry


async def _from_matte(
    services: Services,
    data: bytes,
    operation: str,
    params: dict[str, JsonScalar],
    build: RenderRequest | SheetRequest,
) -> tuple[CacheEntry, CacheStatus]:
    async def produce() -> TaskOutput:
        # One admission for both trips: a request given a place is never refused half-way, after
        # its matte was made (or while it waited for another request's).
        with services.pool.admit() as admission:
            matte = await cached_matte(services, data, admission)
            if isinstance(build, RenderRequest):
                request = RenderRequest(matte.body, build.options, build.response)
                return await services.pool.run(render_task, request, admission=admission)
            sheet = SheetRequest(matte.body, build.items, build.paper, build.output_format)
            return await services.pool.run(sheet_task, sheet, admission=admission)

    return await services.cached_output(cache_key(data, operation, params), produce)


def _photo_response(entry: CacheEntry, status: CacheStatus) -> Response:
    headers = cache_headers(dict(entry.meta), status)
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
        "specs": [spec.to_dict() for spec in list_specs()],
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
) -> Response:
    """Exactly one face is required: none → 422 `no_face`, several → 422 `multiple_faces` with
    `face_count`. The `X-Compliance` header (pass / warn / fail) summarises the report."""
    services = services_of(request)
    options = PhotoParams(
        spec, width, height, unit, dpi, background, gradient, format, max_kb, transparent, quality
    ).to_options()
    # A sheet is validated (its paper, whether the photo fits) before the upload is read.
    sheet_build = None if sheet is None else sheet_request([(options, None)], sheet, format)
    upload = await read_image(request, services.settings.limits.max_upload_bytes)
    if sheet_build is not None:
        return await _sheet(services, upload.data, sheet_build)
    params = {**photo_cache_params(options), "response": response.value}
    build = RenderRequest(b"", options, response)
    entry, status = await _from_matte(services, upload.data, "id-photo", params, build)
    return _photo_response(entry, status)


async def _sheet(services: Services, data: bytes, build: SheetRequest) -> Response:
    params = sheet_cache_params(build)
    entry, status = await _from_matte(services, data, "id-photo-sheet", params, build)
    return _photo_response(entry, status)


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
    upload = await read_image(request, services.settings.limits.max_upload_bytes)
    return await _sheet(services, upload.data, build)
