"""Reading uploads: a hard byte cap while streaming, and multipart parsing that never touches disk.

Starlette's form parser spools file parts over 1 MiB to temporary files and caps no file part, so
uploads are read here instead: the body is streamed into memory up to the cap (``413`` as soon as
it is exceeded, before the rest is read) and multipart bodies are split with python-multipart's
streaming parser.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from faceflow.errors import EmptyInput, InvalidParameter, MissingField, TooLarge

# Room for multipart boundaries and part headers on top of the image cap.
_MULTIPART_OVERHEAD = 64 * 1024
_MAX_PARTS = 300
# RFC 2046 allows 70 characters; python-multipart refuses more than 256 when its parser is built.
MAX_BOUNDARY_LENGTH = 256


@dataclass(slots=True)
class Part:
    name: str
    filename: str | None
    content_type: str | None
    data: bytearray = field(default_factory=bytearray)


@dataclass(frozen=True, slots=True)
class Upload:
    """One uploaded image: its bytes and, if it came from a form, its file name."""

    data: bytes
    filename: str | None = None


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, refusing (413) a declared or streamed size over ``max_bytes``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise InvalidParameter("Content-Length is not a number") from None
        if size > max_bytes:
            raise TooLarge(
                f"upload of {size} bytes exceeds the {max_bytes}-byte limit",
                {"limit_bytes": max_bytes},
            )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise TooLarge(f"upload exceeds the {max_bytes}-byte limit", {"limit_bytes": max_bytes})
    return bytes(body)


def parse_multipart(body: bytes, content_type: str) -> list[Part]:
    """Every part of a multipart/form-data body, in order, held in memory."""
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise InvalidParameter("multipart body without a boundary")
    if len(boundary) > MAX_BOUNDARY_LENGTH:
        raise InvalidParameter(
            f"multipart boundary of {len(boundary)} characters; at most {MAX_BOUNDARY_LENGTH}",
            {"parameter": "boundary", "limit": MAX_BOUNDARY_LENGTH},
        )
    parts: list[Part] = []
    headers: dict[bytes, bytes] = {}
    header_field = bytearray()
    header_value = bytearray()

    def on_part_begin() -> None:
        headers.clear()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_field.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        headers[bytes(header_field).lower()] = bytes(header_value)
        header_field.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        if len(parts) >= _MAX_PARTS:
            raise InvalidParameter(f"more than {_MAX_PARTS} form parts")
        _, disposition = parse_options_header(headers.get(b"content-disposition", b""))
        name = disposition.get(b"name", b"").decode("utf-8", "replace")
        filename = disposition.get(b"filename")
        content_type = headers.get(b"content-type")
        parts.append(
            Part(
                name=name,
                filename=filename.decode("utf-8", "replace") if filename is not None else None,
                content_type=content_type.decode("latin-1") if content_type else None,
            )
        )

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1].data.extend(data[start:end])

    try:
        parser = MultipartParser(
            boundary,
            {
                "on_part_begin": on_part_begin,
                "on_header_field": on_header_field,
                "on_header_value": on_header_value,
                "on_header_end": on_header_end,
                "on_headers_finished": on_headers_finished,
                "on_part_data": on_part_data,
            },
        )
        parser.write(body)
        parser.finalize()
    except InvalidParameter:
        raise
    except Exception as exc:  # python-multipart raises several unrelated types on bad input
        raise InvalidParameter(f"malformed multipart body: {exc}") from None
    return parts


def _is_multipart(request: Request) -> bool:
    return request.headers.get("content-type", "").lower().startswith("multipart/form-data")


def check_image(upload: Upload, max_image_bytes: int) -> None:
    """Refuse one uploaded image that is over ``max_image_bytes`` (413) or empty (400)."""
    if len(upload.data) > max_image_bytes:
        raise TooLarge(
            f"an image of {len(upload.data)} bytes exceeds the {max_image_bytes}-byte limit",
            {"limit_bytes": max_image_bytes},
        )
    if not upload.data:
        raise EmptyInput(f"the image field {upload.filename or ''!r} is empty".strip())


async def read_images(
    request: Request,
    max_image_bytes: int,
    *,
    field_names: tuple[str, ...],
    max_items: int,
    check_each: bool = True,
) -> list[Upload]:
    """The images of a request: form parts named in ``field_names``, or the raw body.

    Every image is capped at ``max_image_bytes``; a multipart body may hold ``max_items`` images.
    With ``check_each=False`` an empty or oversized part is returned rather than refused, for a
    caller that fails such items on their own (:func:`check_image`).
    """
    content_type = request.headers.get("content-type", "")
    multipart = _is_multipart(request)
    cap = max_image_bytes * max_items + _MULTIPART_OVERHEAD if multipart else max_image_bytes
    body = await read_body(request, cap)
    if not body:
        raise EmptyInput("the request has no body; send an image as the raw body or form field")
    if not multipart:
        # Any other content type is taken as the raw image: its bytes, not its label, decide.
        return [Upload(body)]
    uploads = [
        Upload(bytes(part.data), part.filename)
        for part in parse_multipart(body, content_type)
        if part.name in field_names
    ]
    if not uploads:
        raise MissingField(
            f"multipart body has no field named {' or '.join(repr(n) for n in field_names)}"
        )
    if len(uploads) > max_items:
        raise InvalidParameter(f"at most {max_items} images per request", {"limit": max_items})
    if check_each:
        for upload in uploads:
            check_image(upload, max_image_bytes)
    return uploads


async def read_image(request: Request, max_image_bytes: int) -> Upload:
    """The single image of a request (form field ``image`` or the raw body)."""
    return (await read_images(request, max_image_bytes, field_names=("image",), max_items=1))[0]
