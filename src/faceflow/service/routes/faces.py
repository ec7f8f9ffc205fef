"""detect / analyze / annotate / batch."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from faceflow.cache.keys import cache_key
from faceflow.cache.tiered import CacheStatus
from faceflow.domain import Operation
from faceflow.errors import FaceflowError
from faceflow.operations.faces import (
    AnalyzeOptions,
    AnnotateOptions,
    BatchOptions,
    FaceOptions,
    FaceWork,
)
from faceflow.operations.registry import check_enabled
from faceflow.runtime.tasks import TaskOutput, run_face_request
from faceflow.service.guard import guard
from faceflow.service.schemas import (
    BatchOut,
    FaceReportOut,
    error_responses,
    image_request_body,
    image_response,
)
from faceflow.service.state import Services, services_of
from faceflow.service.upload import Upload, check_image, read_image, read_images

router = APIRouter(prefix="/v1", tags=["faces"], dependencies=[Depends(guard)])


def cache_headers(entry_meta: dict[str, object], status: CacheStatus) -> dict[str, str]:
    hit = status in (CacheStatus.HIT_MEMORY, CacheStatus.HIT_REDIS)
    headers = {
        "X-Cache": "hit" if hit else "miss",
        "X-Cache-Detail": status.value,
    }
    timings = [
        f"{name[3:]};dur={value}"
        for name, value in entry_meta.items()
        if name.startswith("ms_") and isinstance(value, int | float)
    ]
    if timings:
        headers["Server-Timing"] = ", ".join(timings)
    count = entry_meta.get("face_count")
    if isinstance(count, int):
        headers["X-Face-Count"] = str(count)
    return headers


async def answer(
    services: Services, key: str, work: FaceWork, data: bytes, *, missed: bool = False
) -> Response:
    """The answer for the image ``data`` under its cache ``key``: cached, or computed once for
    concurrent identical requests. Where a request's work ends, whether the route or the hot path
    parsed and read it; the hot path holds the key already and passes ``missed=True``: it looked
    the key up and missed, so the cache does not look it up again."""
    check_enabled(work.operation, services.settings.runtime)

    async def produce() -> TaskOutput:
        return await services.pool.run(run_face_request, work.request(data))

    entry, status = await services.cached_output(key, produce, missed=missed)
    return Response(
        entry.body, media_type=entry.media_type, headers=cache_headers(dict(entry.meta), status)
    )


async def run_one(services: Services, upload: Upload, work: FaceWork) -> Response:
    key = cache_key(upload.data, work.operation.value, work.cache_params())
    return await answer(services, key, work, upload.data)


async def _single(http: Request, work: FaceWork) -> Response:
    services = services_of(http)
    upload = await read_image(http, services.settings.limits.max_upload_bytes)
    return await run_one(services, upload, work)


@router.post(
    "/detect",
    summary="Find every face: box, score, five landmarks",
    response_model=FaceReportOut,
    responses=error_responses(),
    openapi_extra=image_request_body(),
)
async def detect(request: Request, options: Annotated[FaceOptions, Query()]) -> Response:
    work = options.work(Operation.DETECT, services_of(request).settings.detection)
    return await _single(request, work)


@router.post(
    "/analyze",
    summary="Detect, plus age and gender per face",
    response_model=FaceReportOut,
    responses=error_responses(),
    openapi_extra=image_request_body(),
)
async def analyze(request: Request, options: Annotated[AnalyzeOptions, Query()]) -> Response:
    work = options.work(Operation.ANALYZE, services_of(request).settings.detection)
    return await _single(request, work)


@router.post(
    "/annotate",
    summary="The image with boxes, landmarks and 'F 33' labels drawn",
    response_class=Response,
    responses={**image_response("the annotated image"), **error_responses()},
    openapi_extra=image_request_body(),
)
async def annotate(request: Request, options: Annotated[AnnotateOptions, Query()]) -> Response:
    work = options.work(Operation.ANNOTATE, services_of(request).settings.detection)
    return await _single(request, work)


def _batch_item(index: int, upload: Upload, outcome: Response | FaceflowError) -> bytes:
    """One item of the batch body as JSON bytes; a JSON result is spliced in without re-parsing."""
    head: dict[str, object] = {"index": index, "filename": upload.filename}
    if isinstance(outcome, FaceflowError):
        head.update(status=outcome.status, error=outcome.to_dict())
        return json.dumps(head).encode()
    head.update(status=200, cache=outcome.headers.get("X-Cache"))
    media_type = outcome.media_type or ""
    if media_type == "application/json":
        return json.dumps(head).encode()[:-1] + b',"result":' + bytes(outcome.body) + b"}"
    head.update(media_type=media_type, image_base64=base64.b64encode(outcome.body).decode())
    return json.dumps(head).encode()


@router.post(
    "/batch",
    summary="Several images, one operation; each item succeeds or fails on its own",
    response_model=BatchOut,
    responses=error_responses(400, 401, 403, 413, 429, 503),
    openapi_extra=image_request_body("images", many=True),
)
async def batch(request: Request, options: Annotated[BatchOptions, Query()]) -> Response:
    services = services_of(request)
    limits = services.settings.limits
    uploads = await read_images(
        request,
        limits.max_upload_bytes,
        field_names=("images", "image"),
        max_items=limits.batch_max_items,
        check_each=False,
    )
    work = options.batch_work(services.settings.detection)
    # A batch feeds the pool no faster than it has workers, so it cannot shed its own items.
    lanes = asyncio.Semaphore(services.settings.runtime.processes)

    async def one(upload: Upload) -> Response | FaceflowError:
        try:
            check_image(upload, limits.max_upload_bytes)
        except FaceflowError as exc:
            return exc
        async with lanes:
            try:
                return await run_one(services, upload, work)
            except FaceflowError as exc:
                return exc

    outcomes = await asyncio.gather(*(one(upload) for upload in uploads))
    items = b",".join(
        _batch_item(index, upload, outcome)
        for index, (upload, outcome) in enumerate(zip(uploads, outcomes, strict=True))
    )
    body = b'{"operation":"' + work.operation.value.encode() + b'","items":[' + items + b"]}"
    return Response(body, media_type="application/json")
