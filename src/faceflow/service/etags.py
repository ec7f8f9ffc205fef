"""Entity tags for the documents that do not change for the life of the process, and the 304 a
matching ``If-None-Match`` gets (RFC 9110 13.1.2, 15.4.5).

The schema (``/openapi.json``), the ID-photo specs, the example listing, photos and thumbnails
are made once; clients and the web page fetch them again at each load. Without an ``ETag`` a
cache revalidating after ``max-age``, or a client asking each time, got the whole document
again (56 KB of schema, 12.5 KB of specs). The tag is a hash of the bytes, made when they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from blake3 import blake3
from starlette.requests import Request
from starlette.responses import Response

_TAG_HEX = 32
"""128 bits of the hash: no two versions of a document meet by chance."""


class Tagged(NamedTuple):
    """A fixed document's bytes and its strong entity-tag (quoted, as the header carries it)."""

    body: bytes
    etag: str


def tagged(body: bytes) -> Tagged:
    """``body`` with its strong entity-tag: a hash of its bytes."""
    return Tagged(body, f'"{blake3(body).hexdigest()[:_TAG_HEX]}"')


def names_tag(values: list[str], etag: str) -> bool:
    """Whether If-None-Match ``values`` name the entity-tag ``etag`` (quoted) or ``*``: the
    weak comparison RFC 9110 13.1.2 asks for, so ``W/"tag"`` matches too."""
    for value in values:
        for item in value.split(","):
            item = item.strip()
            if item == "*" or item.removeprefix("W/") == etag:
                return True
    return False


def not_modified(request: Request, headers: Mapping[str, str]) -> Response | None:
    """The 304 (no body, ``headers`` kept: the ``ETag`` and any ``Cache-Control``) when the
    request's ``If-None-Match`` names ``headers["ETag"]``, else None: answer the document."""
    if names_tag(request.headers.getlist("if-none-match"), headers["ETag"]):
        return Response(status_code=304, headers=dict(headers))
    return None
