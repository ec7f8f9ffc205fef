"""ID photos: size presets, the photo itself, and print sheets.

Every photo of an upload is rendered from one cached matte (keyed by the upload's content hash):
the first request runs detection and u2netp; another size, background or format for the same
photo only lays out, recolours and encodes. The answer names the upload (``X-Source``: its content
hash), and a later render may send ``source=<that name>`` instead of the photo while the matte is
cached (404 ``source_expired`` once it is not).

A name renders a person's photo without the photo, so whoever holds one holds that: it travels in
URLs, which proxies log. With API keys on it is bound to the key that uploaded the photo (the hash,
a dot, and a MAC of it under the key's digest); under any other key it is answered as expired, so
a name read in a log is of no use to another client.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.encoders import jsonable_encoder
from starlette.responses import JSONResponse, Response

from faceflow.cache.compute import raise_failure
from faceflow.cache.entry import CacheEntry
from faceflow.cache.keys import CUTOUT_OPERATION, cache_key_from_hash
from faceflow.cache.tiered import CacheStatus
from faceflow.domain import Operation
from faceflow.errors import InvalidParameter, SourceExpired
from faceflow.imaging.formats import sniff_format
from faceflow.operations.idphoto import (
    PhotoRouteOptions,
    PhotoWork,
    SheetOptions,
    SheetWork,
    with_stage_timings,
)
from faceflow.operations.parse import option_bounds
from faceflow.operations.registry import check_enabled
from faceflow.pipeline.idphoto.nudge import nudge_ranges
from faceflow.pipeline.idphoto.sheet_plan import PAPERS
from faceflow.pipeline.idphoto.specs import list_specs
from faceflow.runtime.idphoto_tasks import SHARP_TO_HEAD_PX, matte_task, render_task, sheet_task
from faceflow.runtime.pool import Admission
from faceflow.runtime.tasks import TaskOutput
from faceflow.service.answers import Answer, check_room
from faceflow.service.etags import Tagged, not_modified, tagged
from faceflow.service.guard import guard
from faceflow.service.lanes import Gone, in_a_lane
from faceflow.service.routes.faces import cache_headers
from faceflow.service.schemas import (
    IdPhotoSpecsOut,
    error_responses,
    image_request_body,
    image_response,
    operation_disabled_response,
)
from faceflow.service.state import Services, services_of
from faceflow.service.upload import read_image

router = APIRouter(prefix="/v1/id-photo", tags=["id-photo"], dependencies=[Depends(guard)])

SOURCE_HEADER = "X-Source"
_SOURCE_MAC_HEX = 32


def source_name(digest: str, api_key: str | None) -> str:
    """What ``X-Source`` calls the upload whose content hash is ``digest`` for the caller with
    API-key digest ``api_key`` (module doc): the hash itself when keys are off."""
    if api_key is None:
        return digest
    mac = hmac.new(bytes.fromhex(api_key), digest.encode("ascii"), hashlib.sha256).hexdigest()
    return f"{digest}.{mac[:_SOURCE_MAC_HEX]}"


def _source_digest(name: str, api_key: str | None) -> str:
    """The content hash a ``source=`` name stands for, if this caller may use it."""
    digest = name.partition(".")[0]
    if api_key is not None and not hmac.compare_digest(name, source_name(digest, api_key)):
        # As an expired one: an answer of its own would tell that the photo was uploaded.
        raise SourceExpired("this photo is no longer on the server: upload it again")
    return digest


async def _cached_matte(
    services: Services, digest: str, data: bytes | None, work: PhotoWork | SheetWork
) -> CacheEntry | None:
    """The cached matte of ``work``'s face in the upload whose content hash is ``digest``, if
    the cache holds one that serves; None when it is to be made (from ``data``). Without
    ``data`` (a ``source=`` render) only the cache can answer: :class:`SourceExpired` when it
    no longer holds it. A cached failure of the cut-out (no face) is raised again
    (:func:`raise_failure`). Asked before the request takes a place in the pool or a lane, so a
    photo known to have no face is answered 422 at once even when none is free (it answered
    503 ``overloaded`` under load, for a new size or sheet of it)."""
    key = cache_key_from_hash(digest, CUTOUT_OPERATION, work.matte_params())
    own, level = await services.cache.lookup(key)
    if own is not None:
        raise_failure(own, CacheStatus.hit_at(level))
        if work.head_px is None and data is not None:
            services.cache.found(level)  # as the flight would have counted it
        return own
    if work.head_px is not None:
        # A custom size whose head is taller than any preset's has a cut-out of its own, but the
        # presets' one serves it when it is as sharp (not shrunk below this need: a small
        # source), and, less sharply, a source= render that has nothing else.
        preset_key = cache_key_from_hash(digest, CUTOUT_OPERATION, work.preset_matte_params())
        preset, level = await services.cache.lookup(preset_key)
        if preset is not None:
            raise_failure(preset, CacheStatus.hit_at(level))
            sharp = preset.meta.get(SHARP_TO_HEAD_PX)
            if data is None or (isinstance(sharp, int) and sharp >= work.head_px):
                return preset
    if data is None:
        raise SourceExpired("this photo is no longer on the server: upload it again")
    return None


async def _made_matte(
    services: Services, digest: str, data: bytes, work: PhotoWork | SheetWork, admission: Admission
) -> tuple[CacheEntry, bool]:
    """The matte :func:`_cached_matte` did not find, made by detection + u2netp once for
    concurrent requests (or found made meanwhile); and whether this request waited for it to be
    made."""
    key = cache_key_from_hash(digest, CUTOUT_OPERATION, work.matte_params())
    request = work.matte_request(data)

    async def produce() -> TaskOutput:
        return await services.pool.run(matte_task, request, admission=admission)

    entry, status = await services.cached_output(key, produce, missed=True)
    return entry, status in (CacheStatus.MISS, CacheStatus.JOINED)


async def _from_matte(
    request: Request,
    services: Services,
    source: tuple[str, bytes | None],
    operation: Operation,
    work: PhotoWork | SheetWork,
) -> tuple[CacheEntry, CacheStatus]:
    digest, data = source
    check_enabled(operation, services.settings.runtime)
    if data is not None:
        sniff_format(data)  # not an image: 415 before the cache and the pool (faces.answer)
    key = cache_key_from_hash(digest, operation.value, work.cache_params())

    async def produce() -> TaskOutput:
        check_room(services.answer_budget)  # an image: it would be refused when made
        cached = await _cached_matte(services, digest, data, work)
        # One admission for both trips: a request given a place is never refused half-way, after
        # its matte was made (or while it waited for another request's).
        async with _lane_if_large(services, key, work, request.is_disconnected):
            with services.pool.admit() as admission:
                if cached is not None:
                    matte, waited = cached, False
                else:
                    assert data is not None  # _cached_matte raised SourceExpired otherwise
                    matte, waited = await _made_matte(services, digest, data, work, admission)
                if isinstance(work, PhotoWork):
                    render = work.request(matte.body)
                    output = await services.pool.run(render_task, render, admission=admission)
                else:
                    sheet = work.request(matte.body)
                    output = await services.pool.run(sheet_task, sheet, admission=admission)
        if not waited:
            return output
        # Server-Timing then shows the cut-out's stages (decode, detect, matte) with the render's,
        # as a job's answer does; from a cached cut-out, only what this request spent.
        return with_stage_timings(matte.meta, output)

    return await services.cached_output(key, produce)


LARGE_RENDER_PX = 2_000_000
"""A photo rendered at more pixels than this (a custom size: every preset is under 0.5 MP), and
every print sheet (a page of 1.6–8.7 MP, its photos rendered at their own dpi first), takes a
lane of queued-up work (:mod:`faceflow.runtime.lanes`) as a batch does, so such renders leave
the single requests a process: a 4000 × 4000 px PNG with a gradient, asked for in 250 bytes by
``source=``, cost 6 s of CPU, and three connections asking for them took the whole pool (80 of
another client's 88 detects answered 503); an A4 sheet of one 1200 dpi photo, 3 s."""


@contextlib.asynccontextmanager
async def _lane_if_large(
    services: Services, key: str, work: PhotoWork | SheetWork, gone: Gone
) -> AsyncIterator[None]:
    if isinstance(work, PhotoWork) and work.output_px <= LARGE_RENDER_PX:
        yield
        return
    async with in_a_lane(services, key, gone, f"renders over {LARGE_RENDER_PX:,} px"):
        yield


def _photo_response(
    services: Services, entry: CacheEntry, status: CacheStatus, source: str
) -> Response:
    headers = cache_headers(dict(entry.meta), status)
    headers[SOURCE_HEADER] = source
    compliance = entry.meta.get("compliance")
    if isinstance(compliance, str):
        headers["X-Compliance"] = compliance
    return Answer(
        entry.body, budget=services.answer_budget, media_type=entry.media_type, headers=headers
    )


# The options model's own bounds, published so that the web page checks what the API checks.
_PHOTO_BOUNDS = option_bounds(PhotoRouteOptions)


@router.get(
    "/specs",
    summary="Every size preset with its rules, sheet papers and the options' bounds",
    response_model=IdPhotoSpecsOut,
    responses={
        304: {"description": "unchanged: `If-None-Match` named its `ETag`"},
        **error_responses(401, 403, 429, 503),
    },
)
async def specs(request: Request) -> Response:
    # The web page asks for it at each load: 12.5 KB, or a 304 for a tag it holds.
    answer = _specs_json()
    headers = {"ETag": answer.etag}
    return not_modified(request, headers) or Response(
        answer.body, media_type="application/json", headers=headers
    )


@functools.cache
def _specs_json() -> Tagged:
    """The answer of ``/v1/id-photo/specs``, made once: the presets, papers and bounds are the
    code's own. Built and validated by FastAPI at each request, its 12.5 KB cost the API process
    0.5-1.2 ms, where a ``/healthz`` costs 0.2-0.4 (now 0.3); the web page asks for it at each
    load."""
    body = IdPhotoSpecsOut(
        specs=[
            {**spec.to_dict(), "nudges": {k: list(v) for k, v in nudge_ranges(spec).items()}}
            for spec in list_specs()
        ],
        sheets=[paper.to_dict() for paper in PAPERS],
        backgrounds=["white", "blue", "red", "grey"],
        bounds=_PHOTO_BOUNDS,
    )
    return tagged(bytes(JSONResponse(jsonable_encoder(body)).body))


@router.post(
    "",
    summary="An ID photo: cut-out, background, size preset, head placed by rule",
    response_class=Response,
    responses={
        **image_response("the photo (default), or JSON with image_base64 and report"),
        **error_responses(),
        **operation_disabled_response("source_expired: upload the photo again"),
    },
    openapi_extra=image_request_body(),
)
async def id_photo(request: Request, options: Annotated[PhotoRouteOptions, Query()]) -> Response:
    """Exactly one face is required unless `face` chooses one: none → 422 `no_face`, several →
    422 `multiple_faces` with `face_count`; a person the cut-out leaves out (a bystander behind
    the photo's main subject) → 422 `no_subject`. The `X-Compliance` header (pass / warn / fail)
    summarises the report; `X-Source` names the upload for later `source=` renders (no body then;
    404 `source_expired` once the server no longer holds its cut-out; send `face` again with it).
    Nudges outside the size's ranges → 400 `out_of_range` with the parameter, `min` and `max`."""
    services = services_of(request)
    api_key: str | None = request.state.api_key
    photo = options.work()
    # A sheet is validated (its paper, whether the photo fits) before the upload is read.
    sheet = options.sheet_work(photo)
    if options.source is None:
        upload = await read_image(request, services.settings.limits.max_upload_bytes)
        origin: tuple[str, bytes | None] = (await upload.hashed(), upload.data)
    else:
        if await _sends_body(request):
            # Which would it be? A client re-uploading a new photo beside an old source= got the
            # old person's photo re-rendered.
            raise InvalidParameter(
                "send a photo or source= (an earlier upload's X-Source), not both",
                {"parameter": "source"},
            )
        origin = (_source_digest(options.source, api_key), None)
    if sheet is not None:
        return await _sheet(request, services, origin, sheet)
    entry, status = await _from_matte(request, services, origin, Operation.ID_PHOTO, photo)
    return _photo_response(services, entry, status, source_name(origin[0], api_key))


async def _sends_body(request: Request) -> bool:
    """Whether the request sends a body: a non-zero Content-Length, or a chunked body with a
    byte in it. A chunked one is read up to its first byte: one that ends empty (a client
    streaming whatever it was given, nothing here) sends no photo, as Content-Length: 0 does; it
    was refused as "not both". Bounded as any upload's read is (the body timeout)."""
    if "transfer-encoding" not in request.headers:
        content_length = request.headers.get("content-length")
        return content_length is not None and content_length.strip() not in ("", "0")
    async for chunk in request.stream():
        if chunk:
            return True  # the rest is left unread: the refusal closes the connection
    return False


async def _sheet(
    request: Request, services: Services, origin: tuple[str, bytes | None], work: SheetWork
) -> Response:
    entry, status = await _from_matte(request, services, origin, Operation.ID_PHOTO_SHEET, work)
    return _photo_response(services, entry, status, source_name(origin[0], request.state.api_key))


@router.post(
    "/sheet",
    summary="A 300 dpi print sheet (6-inch, 5-inch or A4) with cut marks",
    response_class=Response,
    responses={
        **image_response("the print sheet"),
        **error_responses(),
        **operation_disabled_response(),
    },
    openapi_extra=image_request_body(),
)
async def id_photo_sheet(request: Request, options: Annotated[SheetOptions, Query()]) -> Response:
    """As many copies as fit (or the counts in `layout`), centred, with gaps and cut marks.
    The photo's face as for `/v1/id-photo`: 422 `no_face`, `multiple_faces` (choose one with
    `face`) or `no_subject`. `X-Compliance` is the worst of the sheet's photos' reports."""
    services = services_of(request)
    work = options.work()
    upload = await read_image(request, services.settings.limits.max_upload_bytes)
    return await _sheet(request, services, (await upload.hashed(), upload.data), work)
