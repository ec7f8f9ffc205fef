"""Reading uploads: a hard byte cap while streaming, and multipart parsing that never touches disk.

Starlette's form parser spools file parts over 1 MiB to temporary files and caps no file part, so
uploads are read here instead: the body is streamed into memory up to the cap (``413`` as soon as
it is exceeded, before the rest is read) and multipart bodies are split with python-multipart's
streaming parser as they arrive, so a batch is held once (its images), not twice (body + images).

In front of every route, :class:`BodyLimits` (ASGI) bounds what bodies cost the process as a
whole: their bytes against the process's upload budget (``503 overloaded`` before a body is read
when it would not fit) and their arrival time (``408 request_timeout`` for a body that trickles
in or stops short of its Content-Length, or that falls behind the pace it needs to arrive in time
while the room it holds is wanted).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from python_multipart.multipart import MultipartParser
from python_multipart.multipart import parse_options_header as _parse_options_header
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from faceflow.cache.keys import content_hash
from faceflow.config import MULTIPART_OVERHEAD_BYTES
from faceflow.errors import (
    EmptyInput,
    FaceflowError,
    InvalidParameter,
    MissingField,
    Overloaded,
    RequestTimeout,
    TooLarge,
    UnsupportedFormat,
    quoted,
)
from faceflow.operations.faces import BatchOptions
from faceflow.operations.idphoto import PhotoRouteOptions, SheetOptions
from faceflow.operations.parse import option_names
from faceflow.runtime.budget import ByteBudget
from faceflow.service.errors import faceflow_error_response
from faceflow.service.security import address_identity

log = logging.getLogger(__name__)


class _AtDebug(logging.Filter):
    """Every line of the logger it filters, as debug: shown only when that logger's level is."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return _multipart_log.isEnabledFor(logging.DEBUG)


_multipart_log = logging.getLogger(f"{__name__}.multipart")
"""The log of python-multipart's parser, which warns of each malformed form it refuses (a bad
byte in a part's headers, a boundary not ended by CRLF) as it raises: a client's form, refused
with a 400, logged at warning under the library's name as if the server were at fault. Its
lines come here instead, at debug."""
_multipart_log.addFilter(_AtDebug())

# Room for multipart boundaries and part headers on top of the image cap.
_MULTIPART_OVERHEAD = MULTIPART_OVERHEAD_BYTES

QUERY_OPTIONS = frozenset(
    set().union(*(option_names(model) for model in (BatchOptions, PhotoRouteOptions, SheetOptions)))
)
"""Every option an upload route reads from its query string (``operation`` among them): a form
field of one of these names is refused (:func:`_uploads`)."""

_BUDGET_RETRY_AFTER_S = 1
PACE_GRACE_S = 1.0
"""How long a body may send nothing after it is first read before it counts as behind its
pace (:class:`BodyLimits`): a round trip and TCP's slow start on a slow line."""
_GRACELESS_CLIENTS = 4096
_MAX_PARTS = 300
MAX_DELIMITERS = 2 * _MAX_PARTS
"""Occurrences of a form's delimiter (CRLF, ``--``, the boundary) python-multipart is given.
Past its parts' own, a delimiter lies inside a part, which RFC 2046 forbids and no client
writes: python-multipart steps through each one byte by byte in Python, on the event loop, so
a 10 MB part filled with ``\r\n--zz-X`` (a client's own two-letter boundary) held the loop
1.5-2.8 s. A form with more is refused (400) before python-multipart reads them."""
MAX_PART_HEADER_BYTES = 64 * 1024
"""Part headers python-multipart reads in one form (with the spaces and line ends between its
callbacks), as much as a request's own headers may hold by default: it skips the spaces before
a header's value one at a time in Python, and 299 parts of 7 headers, each after 4,000 spaces
(8.4 MB), held the event loop 1.6 s. 16 images' headers take about 3 KB, 256 with file names
of 100 characters 50 KB."""
MAX_PADDING = 64
"""Spaces and tabs python-multipart is given between a delimiter and its CRLF (RFC 2046's
transport padding, which no HTTP client writes): it steps through them one at a time too, and
10 MB of tabs after a form's second delimiter held the event loop 2.2 s."""
# RFC 2046 allows 70 characters; python-multipart refuses more than 256 when its parser is built.
MAX_BOUNDARY_LENGTH = 256
_MEMO_HEAD_BYTES = 1024
"""The longest header value, or part header block, memoised: real ones are a few dozen bytes."""
MAX_HEADER_OPTIONS = 16
"""Semicolons in a form's Content-Type or a part's Content-Disposition (``boundary``, ``name``,
``filename``: real ones hold one to three). python-multipart walks each ``;``-separated piece in
Python: a form's Content-Type of 60,000 semicolons held the event loop 38 ms a request, and
another client's health checks waited 108 ms at the median."""


def parse_options_header(value: str | bytes) -> tuple[bytes, dict[bytes, bytes]]:
    """python-multipart's header-options parser, memoised for values up to
    :data:`_MEMO_HEAD_BYTES`: it walks the header in Python (a tenth of a small form upload's
    CPU), while clients send the same few Content-Disposition values, and a client re-sending a
    form often its boundary too. A Content-Type may be as long as the headers (64 KiB), and
    memoised whole, 400 requests with one of 60 KB each grew the API process by 28 MB, held until
    others pushed them out. Callers must not change the dict it returns.

    InvalidParameter for a value of more than :data:`MAX_HEADER_OPTIONS` semicolons, before it is
    walked."""
    if len(value) > _MEMO_HEAD_BYTES:
        return _walked_options(value)
    return _memoised_options(value)


@functools.lru_cache(maxsize=256)
def _memoised_options(value: str | bytes) -> tuple[bytes, dict[bytes, bytes]]:
    return _walked_options(value)


def _walked_options(value: str | bytes) -> tuple[bytes, dict[bytes, bytes]]:
    """python-multipart's parse of ``value``, refused past :data:`MAX_HEADER_OPTIONS`
    semicolons (counted here, once per value not memoised: a refused one never is)."""
    pieces = value.count(";") if isinstance(value, str) else value.count(b";")
    if pieces > MAX_HEADER_OPTIONS:
        raise InvalidParameter(
            f"a multipart header (the form's Content-Type or a part's Content-Disposition) with"
            f" {pieces} semicolons; at most {MAX_HEADER_OPTIONS} are read",
            {"limit": MAX_HEADER_OPTIONS},
        )
    return _parse_options_header(value)


@dataclass(slots=True)
class Part:
    name: str
    filename: str | None
    content_type: str | None
    data: bytes | memoryview = b""
    """Its bytes, once it ended: a view into the body for a form split whole (no copy)."""
    chunks: list[bytes] = field(default_factory=list)
    """Its bytes while it is read: joined once at its end (one copy, none for a part that came
    in one piece), where a growing bytearray copied them twice more."""
    digest: str | None = None
    """:func:`~faceflow.cache.keys.content_hash` of its bytes, where the split needed it."""


@dataclass(frozen=True, slots=True)
class Upload:
    """One uploaded image: its bytes and, if it came from a form, its file name."""

    buffer: bytes | memoryview
    """Its bytes as read: for a one-image form, a view into the form's body. A cache hit hashes
    it where it is; copying a 95 KB image out of the body cost 3–5 µs per hit."""
    filename: str | None = None
    digest: str | None = None
    """:func:`~faceflow.cache.keys.content_hash` of its bytes when reading it took it (a form
    read for the hot path, :func:`receive_upload`): the hot path hashes it only without."""

    def content_hash(self) -> str:
        """:func:`~faceflow.cache.keys.content_hash` of its bytes: :attr:`digest` when reading
        took it, else hashed at this call (not remembered: call it once per request)."""
        return self.digest if self.digest is not None else content_hash(self.buffer)

    async def hashed(self) -> str:
        """:meth:`content_hash` for a route on the event loop: taken beside it for more than
        :data:`SPLIT_ON_THE_LOOP_BYTES` (BLAKE3 lets go of the GIL), on it for fewer."""
        if self.digest is not None or self.size <= SPLIT_ON_THE_LOOP_BYTES:
            return self.content_hash()
        return await asyncio.to_thread(content_hash, self.buffer)

    @property
    def data(self) -> bytes:
        """Its bytes (copied out of the form's body on each call: hold on to them)."""
        buffer = self.buffer
        return buffer if isinstance(buffer, bytes) else bytes(buffer)

    @property
    def size(self) -> int:
        return len(self.buffer)


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, refusing (413) a declared or streamed size over ``max_bytes``."""
    _, declared = body_headers(request.scope["headers"])
    return await _read_stream(request.stream(), declared, max_bytes, None)


def body_headers(headers: Iterable[tuple[bytes, bytes]]) -> tuple[str, str | None]:
    """The Content-Type ("" without one) and Content-Length (None without one) of ASGI
    ``headers``, the first of each as starlette's ``Request.headers.get`` gives it, in one pass
    (the hot path reads them without building a Request).

    UnsupportedFormat for a body sent with a coding (:func:`_check_codings`), before any of it
    is read; not for a body known to be empty, whose reader then answers 400 ``empty``: the
    more basic fault (a client sending nothing under ``Content-Encoding: gzip`` was told to
    stop compressing, and then that it had sent nothing)."""
    content_type: str | None = None
    declared: str | None = None
    codings: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        if name == b"content-type":
            if content_type is None:
                content_type = value.decode("latin-1")
        elif name == b"content-length" and declared is None:
            declared = value.decode("latin-1")
        elif name == b"content-encoding" or name == b"transfer-encoding":  # cheaper than a hash
            codings.append((name, value))
    # No Content-Length and no Transfer-Encoding: no body at all (RFC 9112 6.3).
    if codings and not (
        (declared is None and all(name != b"transfer-encoding" for name, _ in codings))
        or (declared is not None and declared.strip() == "0")
    ):
        for name, value in codings:
            _check_codings(name, value)
    return content_type or "", declared


_CODING_HEADERS = {b"content-encoding": b"identity", b"transfer-encoding": b"chunked"}
"""The headers naming a body's codings → the one coding each may name (chunked is the
protocol's framing, undone before the route reads the body)."""


def _check_codings(name: bytes, value: bytes) -> None:
    """Refuse a body whose ``name`` header (Content-Encoding, Transfer-Encoding) names a coding
    faceflow does not undo (415, RFC 9110 15.5.16), before it is read.

    Such a body was read as the image's bytes: a gzipped photo was refused "unsupported image
    format (unknown format)", which said nothing of the coding, and a photo sent as it is under
    ``Content-Encoding: gzip`` (or ``Transfer-Encoding: gzip, chunked``) was analysed though its
    client said it was compressed. Nothing is ever inflated: a coding would let a small upload
    grow past every byte limit, and JPEG, PNG, WebP and GIF are compressed already."""
    allowed = _CODING_HEADERS[name]
    codings = [c.strip().lower() for c in value.split(b",")]
    unknown = [c for c in codings if c and c != allowed]
    if not unknown:
        return
    header = "Content-Encoding" if name == b"content-encoding" else "Transfer-Encoding"
    sent = value.decode("latin-1")[:64]
    raise UnsupportedFormat(
        f"the body was sent with {header}: {sent}, a coding faceflow does not undo: send the"
        " image's own bytes as they are (JPEG, PNG, WebP and GIF are compressed already)",
        {"parameter": header.lower(), "coding": unknown[0].decode("latin-1")[:64]},
    )


async def receive_chunks(receive: Receive) -> AsyncIterator[bytes]:
    """The body's chunks from ``receive``, as starlette's ``Request.stream()`` gives them
    (:class:`ClientDisconnect` when the client goes away), without a Request."""
    while True:
        message = await receive()
        if message["type"] == "http.request":
            body: bytes = message.get("body", b"")
            if body:
                yield body
            if not message.get("more_body", False):
                return
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect()


async def _read_stream(
    chunks: AsyncIterator[bytes],
    declared: str | None,
    max_bytes: int,
    parser: _MultipartReader | None,
) -> bytes:
    """Stream the body, capped at ``max_bytes``: into ``parser`` if given (and return b""), else
    into memory (and return it)."""
    _check_declared(declared, max_bytes)
    held: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > max_bytes:
            raise TooLarge(f"upload exceeds the {max_bytes}-byte limit", {"limit_bytes": max_bytes})
        if parser is not None:
            parser.write(chunk)
        elif chunk:
            held.append(chunk)
    # One chunk is returned as it is; several are copied once, then let go.
    return b"".join(held)


def _check_declared(declared: str | None, max_bytes: int) -> None:
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


class _MultipartReader:
    """A multipart/form-data body fed chunk by chunk; :meth:`finish` gives its parts.

    Streamed, each chunk goes through python-multipart as it arrives, so a batch never holds its
    body and its images at once. With ``whole=True`` (one image per request) the chunks are kept
    and split at :meth:`finish` by :func:`_split_form` — a few ``find`` calls instead of
    python-multipart's state machine, which cost a single-image form more CPU than the rest of a
    cache hit — as python-multipart splits them; a body it cannot vouch for goes through
    python-multipart after all, chunk by chunk as it came, so it is refused alike.
    """

    def __init__(
        self, content_type: str, *, whole: bool = False, hashed: str | None = None
    ) -> None:
        _, options = parse_options_header(content_type)
        boundary = options.get(b"boundary")
        if not boundary:
            raise InvalidParameter("multipart body without a boundary")
        if len(boundary) > MAX_BOUNDARY_LENGTH:
            raise InvalidParameter(
                f"multipart boundary of {len(boundary)} characters; at most {MAX_BOUNDARY_LENGTH}",
                {"parameter": "boundary", "limit": MAX_BOUNDARY_LENGTH},
            )
        self.size = 0
        self._boundary = boundary
        self._parts: list[Part] = []
        self._chunks: list[bytes] | None = [] if whole else None
        self._hashed = hashed  # the field whose content hash is wanted (the hot path's image)
        # Made with python-multipart's parser: a form split whole (a hit) needs neither.
        self._framing: _Framing | None = None
        self._parser = None if whole else self._python_multipart()

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self._chunks is not None:
            if chunk:
                self._chunks.append(chunk)
            return
        self._feed(chunk)

    def _python_multipart(self) -> MultipartParser:
        self._framing = _Framing(self._boundary)
        return _parser(self._boundary, self._parts, self._framing)

    def _feed(self, chunk: bytes) -> None:
        if self._parser is None:
            self._parser = self._python_multipart()
        assert self._framing is not None  # made with the parser
        self._framing.check(chunk)
        self._framing.reading = chunk
        try:
            self._parser.write(chunk)
        except InvalidParameter:
            raise
        except Exception as exc:  # python-multipart raises several unrelated types on bad input
            raise InvalidParameter(f"malformed multipart body: {exc}") from None
        finally:
            self._framing.reading = b""
        self._framing.fed[0] += len(chunk)

    def finish(self) -> list[Part]:
        if self._chunks is not None:
            chunks, self._chunks = self._chunks, None
            body = b"".join(chunks) if len(chunks) != 1 else chunks[0]
            sizes = [len(chunk) for chunk in chunks]
            chunks.clear()  # the joined body holds the bytes now: not twice
            if _split_form(body, self._boundary, self._parts, hashed=self._hashed):
                return self._parts
            self._parts.clear()
            start = 0
            for size in sizes:
                self._feed(body[start : start + size])
                start += size
        if self._parser is None:  # an empty body: python-multipart sees no bytes either
            self._parser = self._python_multipart()
        try:
            self._parser.finalize()
        except InvalidParameter:
            raise
        except Exception as exc:
            raise InvalidParameter(f"malformed multipart body: {exc}") from None
        for part in self._parts:
            _end_part(part)
        return self._parts


class _Framing:
    """What a form fed to python-multipart may hold of what it reads byte by byte
    (:data:`MAX_DELIMITERS`, :data:`MAX_PADDING`), checked chunk by chunk before it reads them;
    ``fed``, the bytes it was given before the chunk it reads now, and that chunk,
    ``reading``."""

    def __init__(self, boundary: bytes) -> None:
        self._delimiter = b"\r\n--" + boundary
        self._delimiters = 0
        self._tail = b""  # the last bytes fed, for a delimiter split between two chunks
        self._padding: int | None = None  # padding bytes the last chunk ended in, after one
        self.fed = [0]
        self.reading = b""

    def check(self, chunk: bytes) -> None:
        """Refuse the form, before python-multipart reads ``chunk``, once more than
        :data:`MAX_DELIMITERS` delimiters came, or one followed by more than
        :data:`MAX_PADDING` bytes of padding (spaces and tabs before its CRLF)."""
        delimiter = self._delimiter
        keep = len(delimiter) - 1
        if self._padding is not None:  # a run of padding the last chunk ended in
            window = chunk[: MAX_PADDING + 1 - self._padding]
            run = len(window) - len(window.lstrip(b" \t"))
            self._padding = self._padded(self._padding + run, run == len(chunk))
        # Delimiters cannot overlap (their only CR is their first byte): at most one lies
        # across the seam with the last chunk, and it starts in the bytes kept of that one.
        seam = self._tail + chunk[: keep + MAX_PADDING + 1]
        at = seam.find(delimiter)
        if 0 <= at < len(self._tail):
            self._delimiter_at(seam, at + len(delimiter), len(seam) - len(self._tail) == len(chunk))
        at = chunk.find(delimiter)
        while at >= 0:
            self._delimiter_at(chunk, at + len(delimiter), True)
            at = chunk.find(delimiter, at + len(delimiter))
        self._tail = (self._tail + chunk[-keep:])[-keep:]

    def _delimiter_at(self, data: bytes, end: int, ends_the_chunk: bool) -> None:
        self._delimiters += 1
        if self._delimiters > MAX_DELIMITERS:
            raise InvalidParameter(
                f"the form's boundary occurs more than {MAX_DELIMITERS} times: a boundary may"
                " not occur inside a part (RFC 2046)",
                {"parameter": "boundary", "limit": MAX_DELIMITERS},
            )
        window = data[end : end + MAX_PADDING + 1]
        run = len(window) - len(window.lstrip(b" \t"))
        self._padding = self._padded(run, ends_the_chunk and end + run == len(data))

    @staticmethod
    def _padded(run: int, goes_on: bool) -> int | None:
        """The padding run so far if it may go on into the next chunk, else None."""
        if run > MAX_PADDING:
            raise InvalidParameter(
                f"more than {MAX_PADDING} bytes of padding after a boundary",
                {"parameter": "boundary", "limit": MAX_PADDING},
            )
        return run if goes_on else None


# What python-multipart accepts in a part header's name (RFC 7230 token characters), and its
# limits on part headers; a form beyond them is left to python-multipart, which refuses it.
_HEADER_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_MAX_PART_HEADERS = 8
_MAX_PART_HEADER_LINE = 4096
_MAX_HEAD_BLOCK = _MAX_PART_HEADERS * (_MAX_PART_HEADER_LINE + 2)
"""The longest header block :func:`_head` may accept. A longer one is left to python-multipart,
which refuses it within its first few KB: split here first, 10 MB of ``a:b`` lines took 115 ms
on the event loop (copied, then cut into 2 million lines), and a search for the block's end
through 10 MB of CR 30 ms."""


def _split_form(
    body: bytes, boundary: bytes, parts: list[Part], *, hashed: str | None = None
) -> bool:
    """Split a whole form ``body`` into ``parts`` as python-multipart (and the callbacks of
    :func:`_parser`) would, if it is written the plain way every client writes forms: the first
    delimiter at the very start, each part with 1 to 8 headers of ``Name: value`` lines, each
    delimiter followed by CRLF or, the last, by ``--``. False for anything else (``parts`` may
    then hold some parts): a preamble, a part without headers, a delimiter followed by other
    bytes, bare CR or LF in a header, a body cut short. The property tests check that it never
    disagrees with python-multipart.

    ``hashed``: a form of one part gets its part's content hash (:attr:`Part.digest`), and the
    scan of the part for delimiters is skipped for bytes already seen to hold none, when that
    part is the field named so (:func:`_seen_split`)."""
    delimiter = b"\r\n--" + boundary
    if not body.startswith(delimiter[2:] + b"\r\n"):
        return False
    if hashed is None:
        return _scanned_split(body, delimiter, parts)
    seen = _seen_split(body, delimiter, parts, hashed)
    if seen is True:
        return True
    if not _scanned_split(body, delimiter, parts):
        return False
    if len(parts) == 1:
        part = parts[0]
        if isinstance(seen, tuple) and seen[1] - seen[0] == len(part.data):
            # The bytes _seen_split hashed (the same start: the same header block found the
            # same way; so the same end): hashed once, and remembered if they hold no delimiter.
            start, end, part.digest = seen
            if body.find(_DELIMITER_START, start, end) < 0:
                _remember_clean(part.digest)
        else:
            part.digest = content_hash(part.data)
    return True


_NEAR_BYTES = 1024
"""How far before a form's last delimiter :func:`_seen_split` looks for another."""
_DELIMITER_START = b"\r\n--"
"""How every delimiter begins, whatever the boundary."""
_CLEAN_MEMO = 1024
_clean: set[str] = set()
"""Content hashes of form parts whose bytes hold no :data:`_DELIMITER_START` (so no delimiter of
any boundary): a part with one of these hashes needs no scan for its form's delimiter. At most
:data:`_CLEAN_MEMO` (≈ 120 KB), cleared when full: a part seen again after is scanned again."""


def _remember_clean(digest: str) -> None:
    if len(_clean) >= _CLEAN_MEMO:
        _clean.clear()
    _clean.add(digest)


def _seen_split(
    body: bytes, delimiter: bytes, parts: list[Part], name: str
) -> bool | tuple[int, int, str] | None:
    """A form of one part, the field ``name``, its bytes already seen (:data:`_clean`), split
    without scanning them for the delimiter: True, with its part in ``parts``.

    The scan (:func:`_delimiters`: ``rfind`` over the whole image, 58,600 instructions of a
    multipart hit's 822,000) finds the first delimiter after the part's headers; this takes the
    last one in the body (found from the end, within a few bytes) and hashes the bytes between,
    which a hit hashes anyway for its key. If bytes with that hash were seen before to hold no
    ``\r\n--``, no delimiter begins between: one that began there would end before the last
    one begins (a delimiter's only CR is its first byte, so two cannot overlap), inside those
    bytes, which hold no ``\r\n--``. The split is then the one :func:`_scanned_split` makes.
    BLAKE3 is what the cache already trusts to tell bytes apart.

    Otherwise nothing is added to ``parts``: None when the form is not of that shape, else where
    the bytes hashed start and end in the body and their hash, which :func:`_split_form` reuses
    when the scanned split's part is those bytes."""
    last = body.rfind(delimiter)
    after = last + len(delimiter)
    if last < 0 or body[after : after + 2] != b"--":
        return None
    at = len(delimiter)  # after the first delimiter and its CRLF
    head_end = body.find(b"\r\n\r\n", at, at + _MEMO_HEAD_BYTES + 4)
    data_start = head_end + 4
    if head_end < 0 or body.startswith(b"\r\n", at) or last < data_start:
        return None
    head = _head(body[at:head_end])
    # Another part first (a form field before the image, as requests and httpx write them), or
    # one after it: not one part, and hashing the bytes would be a second hash of the image. (A
    # look for a delimiter near the end, not through the image; one cut short of it is then
    # hashed for nothing, and split as it must be.)
    if head is None or head[0] != name or body.rfind(delimiter, last - _NEAR_BYTES, last) >= 0:
        return None
    data = memoryview(body)[data_start:last]
    digest = content_hash(data)
    if digest not in _clean:
        return data_start, last, digest
    parts.append(Part(*head, data=data, digest=digest))
    return True


def _scanned_split(body: bytes, delimiter: bytes, parts: list[Part]) -> bool:
    """:func:`_split_form`'s split, every delimiter found by a scan of the whole body."""
    ends = _delimiters(body, delimiter)
    if ends is None:
        return False
    at = len(delimiter)  # after the first delimiter and its CRLF
    header_bytes = 0
    while True:
        head_end = body.find(b"\r\n\r\n", at, at + _MAX_HEAD_BLOCK + 4)
        # Cut short or headers too long (python-multipart decides), or a part without headers.
        if head_end < 0 or body.startswith(b"\r\n", at):
            return False
        block = body[at:head_end]
        head = (_head if len(block) <= _MEMO_HEAD_BYTES else _head.__wrapped__)(block)
        if head is None:
            return False
        # As python-multipart's reader counts them (a block too long for it was left to it).
        header_bytes += head_end + 4 - at
        if header_bytes > MAX_PART_HEADER_BYTES:
            raise _header_bytes_passed()
        data_start = head_end + 4
        while ends and ends[-1] < data_start:  # in this part's headers: not its end
            ends.pop()
        if not ends:
            return False
        data_end = ends.pop()  # body.find(delimiter, data_start)
        after = data_end + len(delimiter)
        ending = body[after : after + 2]
        if ending not in (b"\r\n", b"--"):
            return False
        if len(parts) >= _MAX_PARTS:
            raise InvalidParameter(f"more than {_MAX_PARTS} form parts")
        parts.append(Part(*head, data=memoryview(body)[data_start:data_end]))
        if ending == b"--":
            return True  # python-multipart ignores what follows (the epilogue)
        at = after + 2


@functools.lru_cache(maxsize=256)
def _head(block: bytes) -> tuple[str, str | None, str | None] | None:
    """The name, file name and content type of a part whose header lines are ``block``, as
    python-multipart's callbacks give them (:func:`_fields`); None for lines it might read
    otherwise. Memoised (blocks up to :data:`_MEMO_HEAD_BYTES`): clients send the same few header
    blocks, and reading one line by line cost 3–5 µs per hit."""
    headers: dict[bytes, bytes] = {}
    lines = block.split(b"\r\n")
    if len(lines) > _MAX_PART_HEADERS:
        return None
    for line in lines:
        name, colon, value = line.partition(b":")
        if (
            not colon
            or len(line) > _MAX_PART_HEADER_LINE
            or _HEADER_NAME.fullmatch(name) is None
            or b"\r" in value
            or b"\n" in value
        ):
            return None
        headers[name.lower()] = value.lstrip(b" ")
    return _fields(headers)


def _delimiters(body: bytes, delimiter: bytes) -> list[int] | None:
    """Where ``delimiter`` occurs in ``body``, last first; None past the most a form split whole
    may have (python-multipart then decides).

    Found from the end with ``rfind``: for a needle this long in a body this large ``find`` takes
    CPython's two-way search, three times slower per byte here than ``rfind``'s skipping loop
    (20–30 µs against 6–11 µs over a 95 KB image: a third of a multipart hit's own CPU). Both
    are linear. The occurrences cannot overlap (the delimiter's only CR is its first byte), so
    stepping back from each one finds them all, and the first at or after an offset is what
    ``find`` from it gives."""
    ends: list[int] = []
    end = len(body)
    while (end := body.rfind(delimiter, 0, end)) >= 0:
        if len(ends) > 2 * _MAX_PARTS:
            return None
        ends.append(end)
    return ends


def _fields(headers: dict[bytes, bytes]) -> tuple[str, str | None, str | None]:
    """The name, file name and content type of a part with the headers python-multipart gave
    (names lower-cased)."""
    _, disposition = parse_options_header(headers.get(b"content-disposition", b""))
    name = disposition.get(b"name", b"").decode("utf-8", "replace")
    filename = disposition.get(b"filename")
    content_type = headers.get(b"content-type")
    return (
        name,
        filename.decode("utf-8", "replace") if filename is not None else None,
        content_type.decode("latin-1") if content_type else None,
    )


def _header_bytes_passed() -> InvalidParameter:
    return InvalidParameter(
        f"the form's part headers pass {MAX_PART_HEADER_BYTES} bytes",
        {"limit": MAX_PART_HEADER_BYTES},
    )


def _parser(boundary: bytes, parts: list[Part], framing: _Framing) -> MultipartParser:
    """python-multipart's parser filling ``parts``; ``framing.fed[0]`` is how many bytes it was
    given before the chunk it reads now (its callbacks' offsets are the chunk's, but for data
    it carried over from the chunk before: see ``on_part_data``)."""
    fed = framing.fed
    headers: dict[bytes, bytes] = {}
    header_field = bytearray()
    header_value = bytearray()
    header_bytes = 0
    counted_to: int | None = None  # where the part headers counted so far end, in the body

    def count_headers(start: int, end: int) -> None:
        # From where the last header counted ended, so that the spaces and line ends between,
        # which python-multipart skips without a callback, count too.
        nonlocal header_bytes, counted_to
        begin = fed[0] + start if counted_to is None else counted_to
        header_bytes += max(0, fed[0] + end - begin)
        counted_to = fed[0] + end
        if header_bytes > MAX_PART_HEADER_BYTES:
            raise _header_bytes_passed()

    def on_part_begin() -> None:
        headers.clear()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_field.extend(data[start:end])
        count_headers(start, end)

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])
        count_headers(start, end)

    def on_header_end() -> None:
        headers[bytes(header_field).lower()] = bytes(header_value)
        header_field.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        if len(parts) >= _MAX_PARTS:
            raise InvalidParameter(f"more than {_MAX_PARTS} form parts")
        parts.append(Part(*_fields(headers)))

    def on_part_data(data: bytes, start: int, end: int) -> None:
        nonlocal counted_to
        if counted_to is not None:  # a part's first data
            # To the end of its blank line: where the data start in the chunk read, or, for the
            # start of a delimiter python-multipart carried over from the chunk before (its own
            # bytes, not the chunk's), as many bytes before the chunk. Counted from the chunk's
            # start, a part whose data began like a delimiter cut there counted that much of
            # its data as headers (up to a delimiter's length), refusing a form under the limit.
            at = start if data is framing.reading else start - end
            count_headers(at, at)
            counted_to = None  # its data are no headers; a part without any counts on
        parts[-1].chunks.append(data[start:end])

    def on_part_end() -> None:
        # Now, not at the end of the body: the chunks go at once, so a batch never holds two
        # copies of more than one image.
        if parts:
            _end_part(parts[-1])

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    parser.logger = _multipart_log
    return parser


def _end_part(part: Part) -> None:
    if part.chunks:
        part.data = b"".join(part.chunks)
        part.chunks.clear()


def check_image(upload: Upload, max_image_bytes: int) -> None:
    """Refuse one uploaded image that is over ``max_image_bytes`` (413) or empty (400)."""
    if upload.size > max_image_bytes:
        raise TooLarge(
            f"an image of {upload.size} bytes exceeds the {max_image_bytes}-byte limit",
            {"limit_bytes": max_image_bytes},
        )
    if not upload.size:
        raise EmptyInput(f"the image field {quoted(upload.filename or '')} is empty")


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
    return await read_uploads(
        request.scope["headers"],
        request.stream(),
        max_image_bytes,
        field_names=field_names,
        max_items=max_items,
        check_each=check_each,
    )


async def read_uploads(
    headers: Iterable[tuple[bytes, bytes]],
    chunks: AsyncIterator[bytes],
    max_image_bytes: int,
    *,
    field_names: tuple[str, ...],
    max_items: int,
    check_each: bool = True,
) -> list[Upload]:
    """:func:`read_images` from a request's ASGI ``headers`` and body ``chunks``
    (:func:`receive_chunks`)."""
    content_type, declared = body_headers(headers)
    reader, cap = _reader_for(content_type, max_image_bytes, max_items, field=field_names[0])
    body = await _read_stream(chunks, declared, cap, reader)
    uploads = functools.partial(
        _uploads,
        reader,
        body,
        max_image_bytes,
        field_names=field_names,
        max_items=max_items,
        check_each=check_each,
    )
    # A form of one image is split whole at its end (a batch's parts as they came): beside the
    # loop when large, as the hot path's reader does (SPLIT_ON_THE_LOOP_BYTES).
    if max_items == 1 and reader is not None and reader.size > SPLIT_ON_THE_LOOP_BYTES:
        return await asyncio.to_thread(uploads)
    return uploads()


def _reader_for(
    content_type: str,
    max_image_bytes: int,
    max_items: int,
    *,
    field: str = "image",
    hashed: str | None = None,
) -> tuple[_MultipartReader | None, int]:
    """The form reader of a body of ``content_type`` (None for a raw body) and its byte cap;
    ``field``: the form field the images are read from; ``hashed``: a one-image form's upload,
    the field named so, comes with its content hash (:attr:`Upload.digest`).

    InvalidParameter for a multipart body other than a form (``multipart/mixed``,
    ``multipart/related``): read as a raw image, it was refused 415 "unknown format", which
    said nothing of what is read."""
    lowered = content_type.lower()
    if not lowered.startswith("multipart/form-data"):
        if lowered.startswith("multipart/"):
            sent = lowered.partition(";")[0].strip()[:60]
            raise InvalidParameter(
                f"a multipart upload must be multipart/form-data, the image in the field "
                f"{field!r} (this one is {sent})",
                {"parameter": "content-type"},
            )
        # Any other content type is taken as the raw image: its bytes, not its label, decide.
        return None, max_image_bytes
    # One image: split the whole form at its end (the cheaper way); a batch as it streams in.
    reader = _MultipartReader(content_type, whole=max_items == 1, hashed=hashed)
    return reader, max_image_bytes * max_items + _MULTIPART_OVERHEAD


def _uploads(
    reader: _MultipartReader | None,
    body: bytes,
    max_image_bytes: int,
    *,
    field_names: tuple[str, ...],
    max_items: int,
    check_each: bool,
) -> list[Upload]:
    """The images of a body read whole (``body``) or into ``reader`` (a form)."""
    if reader is None:
        if not body:
            raise EmptyInput("the request has no body; send an image as the raw body or form field")
        return [Upload(body)]
    if not reader.size:
        raise EmptyInput("the request has no body; send an image as the raw body or form field")
    parts = reader.finish()
    # `curl -F threshold=0.9`, or requests' data= beside files=: the option went unread, and
    # the answer was the default's (another spec, operation or threshold) with a 200.
    for part in parts:
        if part.name in QUERY_OPTIONS and part.name not in field_names:
            raise InvalidParameter(
                f"{quoted(part.name)} was sent as a form field; options are read from the query "
                f"string only (?{part.name}=…)",
                {"parameter": part.name},
            )
    uploads = [
        Upload(part.data, part.filename, part.digest) for part in parts if part.name in field_names
    ]
    if not uploads:
        # The client's own names, a few and short: they are echoed back.
        sent = sorted({part.name[:40] for part in parts} - {""})[:5]
        raise MissingField(
            f"multipart body has no field named {' or '.join(repr(n) for n in field_names)}"
            + (f" (it has {', '.join(repr(n) for n in sent)})" if sent else ""),
            {"parameter": field_names[0]},  # the one to send (a batch takes "image" too)
        )
    if len(uploads) > max_items:
        raise InvalidParameter(
            "one image per request; send several to /v1/batch as 'images' parts"
            if max_items == 1
            else f"at most {max_items} images per request",
            {"limit": max_items},
        )
    if check_each:
        for upload in uploads:
            check_image(upload, max_image_bytes)
    return uploads


async def read_image(request: Request, max_image_bytes: int) -> Upload:
    """The single image of a request (form field ``image`` or the raw body)."""
    return (await read_images(request, max_image_bytes, field_names=("image",), max_items=1))[0]


async def read_upload(
    headers: Iterable[tuple[bytes, bytes]], chunks: AsyncIterator[bytes], max_image_bytes: int
) -> Upload:
    """:func:`read_image` from ASGI ``headers`` and body ``chunks``."""
    uploads = await read_uploads(
        headers, chunks, max_image_bytes, field_names=("image",), max_items=1
    )
    return uploads[0]


async def receive_upload(
    headers: Iterable[tuple[bytes, bytes]], receive: Receive, max_image_bytes: int
) -> Upload:
    """:func:`read_upload` straight from ASGI ``receive``: the same checks and answers, without
    an iterator over the chunks between them (the cache-hit path's reader; a hit's body comes
    in one chunk). A form's upload comes with its content hash (:attr:`Upload.digest`), which
    spares its split a scan of the image once the same image was seen (:func:`_seen_split`)."""
    content_type, declared = body_headers(headers)
    reader, cap = _reader_for(content_type, max_image_bytes, 1, hashed="image")
    _check_declared(declared, cap)
    held: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.request":
            chunk: bytes = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > cap:
                    raise TooLarge(f"upload exceeds the {cap}-byte limit", {"limit_bytes": cap})
                if reader is not None:
                    reader.write(chunk)
                else:
                    held.append(chunk)
            if not message.get("more_body", False):
                break
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect()
    if size > SPLIT_ON_THE_LOOP_BYTES:
        return await asyncio.to_thread(_hashed_upload, reader, held, max_image_bytes)
    body = b"".join(held)
    return _uploads(
        reader, body, max_image_bytes, field_names=("image",), max_items=1, check_each=True
    )[0]


SPLIT_ON_THE_LOOP_BYTES = 1024 * 1024
"""The largest body :func:`receive_upload` splits and hashes on the event loop; a larger one is
split and hashed beside it. At the 10 MiB limit a form seen for the first time took 9-11 ms of
the loop (36 ms cold: the hash, two scans for its delimiters, the join), a raw body's hash
2-6 ms: BLAKE3 lets go of the GIL, and the scans hold it a millisecond or two each, not the sum.
A megabyte costs the loop well under a millisecond, less than a thread's round trip."""


def _hashed_upload(
    reader: _MultipartReader | None, held: list[bytes], max_image_bytes: int
) -> Upload:
    """:func:`receive_upload`'s upload from the chunks ``held`` (a raw body) or written to
    ``reader`` (a form), with its content hash (:attr:`Upload.digest`); run in a thread."""
    body = b"".join(held)
    held.clear()  # the joined body holds the bytes now: not twice
    upload = _uploads(
        reader, body, max_image_bytes, field_names=("image",), max_items=1, check_each=True
    )[0]
    if upload.digest is not None:
        return upload
    return Upload(upload.buffer, upload.filename, content_hash(upload.buffer))


_CONTENT_LENGTH = b"content-length"
_TRANSFER_ENCODING = b"transfer-encoding"
_CLOSE = (b"connection", b"close")


def client_of(peer: tuple[str, int] | None) -> str:
    """An ASGI ``client`` as the rate limit counts clients (an IPv6 address by its /64)."""
    return address_identity(peer[0] if peer else "unknown")


class BodyLimits:
    """ASGI layer bounding what request bodies cost the process: bytes and time.

    * Bytes: a body's declared Content-Length is taken from ``budget`` before the body is read;
      when it does not fit, the answer is ``503 overloaded`` with ``Retry-After`` at once (and
      ``413 too_large`` when it could never fit). A body without Content-Length (chunked) takes
      its bytes as they arrive and fails with the same 503 when the budget runs out. The bytes
      are given back when the response has been sent, as the route holds the body (or the images
      parsed from it) until then.
    * Stalled bodies give way: a declared body holds its whole length from its headers on, so a
      client declaring large bodies and sending nothing held the budget for the body timeout
      (two connections declaring batches closed every upload for 30 s). When a body does not
      fit, the bytes not yet arrived of bodies behind the pace that would bring them in before
      the timeout are taken back, those furthest behind first, and their requests answered ``408
      request_timeout``. The pace starts when the body is first read (when a client waiting on
      ``Expect: 100-continue`` is told to send) plus :data:`PACE_GRACE_S` for the round trip and
      TCP's slow start, then spreads the body's length over the rest of ``body_timeout_s``. A
      body the route has not read yet is paced from its headers: an ID photo re-rendered from
      ``source=`` never reads one, and a request declaring the whole budget there held it,
      unsent, for the seconds of the render. A body on pace is never cut, and one behind it only
      while its room is wanted. A client (an address, an IPv6 /64) whose body was cut gets no
      grace against other clients for ``body_timeout_s`` after: a stream of new connections each
      holding its body for the grace alone would otherwise keep the budget. Holding the budget
      costs a client the bandwidth of really sending (``upload_budget_bytes`` over
      ``body_timeout_s``: 8.5 MB/s by default), or many addresses.
    * Time: the whole body must arrive within ``body_timeout_s`` of the first read, or reading it
      raises :class:`RequestTimeout` (408). A route that never reads its body is not timed.

    A response after a failed read carries ``Connection: close``: the rest of the body is not
    read, so the connection cannot carry another request.
    """

    def __init__(self, app: ASGIApp, budget: ByteBudget, body_timeout_s: float) -> None:
        self.app = app
        self.budget = budget
        self.body_timeout_s = body_timeout_s
        self.pace_grace_s = min(PACE_GRACE_S, body_timeout_s / 2)
        self.arriving: set[BodyReader] = set()
        """Declared bodies still arriving: what :meth:`take` may take back."""
        self.given_way = 0
        """Bodies cut to make room since start."""
        self._graceless: dict[str, float] = {}
        """Clients whose body was cut → until when their bodies get no grace (oldest first)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared: int | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == _CONTENT_LENGTH:
                try:
                    declared = int(value)
                except ValueError:
                    declared = None  # the route refuses it (400)
            elif name == _TRANSFER_ENCODING:
                chunked = True
        if not chunked and not declared:
            await self.app(scope, receive, send)  # no body to hold or wait for
            return
        held = 0
        if declared is not None and declared > 0:
            refusal = self._refusal(declared, scope.get("client"))
            if refusal is not None:
                await _answer(refusal, scope, receive, send)
                return
            held = declared
        body = BodyReader(receive, self, held, scope.get("client"))

        async def closing_send(message: Message) -> None:
            if body.failed and message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), _CLOSE]
            await send(message)

        try:
            await self.app(scope, body.receive, closing_send)
        finally:
            body.close()

    def declared_fits(self, headers: Iterable[tuple[bytes, bytes]]) -> int | None:
        """The Content-Length of a request whose body :class:`BodyReader` may read at once: one
        declared (a positive number, no Transfer-Encoding) and taken from the budget now. None
        for any other request (nothing taken), which goes through :meth:`__call__`, whose
        answers (413, 503) it is left to."""
        declared: int | None = None
        for name, value in headers:
            if name == _CONTENT_LENGTH:
                if declared is not None:
                    return None
                try:
                    declared = int(value)
                except ValueError:
                    return None
            elif name == _TRANSFER_ENCODING:
                return None
        budget = self.budget
        if not declared or declared < 0 or budget.used_bytes + declared > budget.limit_bytes:
            return None  # __call__ answers it, making room first if stalled bodies hold it
        budget.try_take(declared)
        return declared

    def _refusal(self, declared: int, peer: tuple[str, int] | None) -> FaceflowError | None:
        if declared > self.budget.limit_bytes:
            return TooLarge(
                f"a request body of {declared} bytes exceeds the "
                f"{self.budget.limit_bytes}-byte limit",
                {"limit_bytes": self.budget.limit_bytes},
            )
        if not self.take(declared, peer):
            return self._overloaded()
        return None

    def take(
        self, n: int, peer: tuple[str, int] | None, claimant: BodyReader | None = None
    ) -> bool:
        """Take ``n`` bytes from the budget for a body of ``peer`` (``claimant``, once it is
        being read), taking back the unarrived bytes of stalled bodies if that makes them fit;
        False when even that would not."""
        budget = self.budget
        if budget.used_bytes + n > budget.limit_bytes and self.arriving:
            shortfall = budget.used_bytes + n - budget.limit_bytes
            self._reclaim(shortfall, client_of(peer), claimant)
        return budget.try_take(n)

    def _reclaim(self, shortfall: int, client: str, claimant: BodyReader | None) -> None:
        """Evict bodies behind their pace, furthest behind first, until ``shortfall`` bytes are
        free; none when all of them together would not free that much (cutting them would then
        help no one)."""
        now = time.monotonic()
        behind = [
            (lag, reader)
            for reader in self.arriving
            if reader is not claimant
            and (lag := reader.lag(now, self._grace(reader, client, now))) > 0
        ]
        if sum(reader.held - reader.seen for _, reader in behind) < shortfall:
            return
        behind.sort(key=lambda pair: pair[0], reverse=True)
        for _, reader in behind:
            shortfall -= reader.evict()
            self.given_way += 1
            self._no_grace_for(reader.client(), now + self.body_timeout_s)
            if shortfall <= 0:
                return

    def _grace(self, reader: BodyReader, client: str, now: float) -> float:
        """A body's grace against another client's claim: none if one of its client's bodies
        was cut lately. Against its own client's it keeps it, so that a client's uploads never
        cut each other in their first round trip (a penalised address may be a whole office)."""
        if not self._graceless:  # nobody's body was cut lately (no address to work out)
            return self.pace_grace_s
        holder = reader.client()
        until = self._graceless.get(holder)
        if until is not None and until > now and holder != client:
            return 0.0
        return self.pace_grace_s

    def _no_grace_for(self, client: str, until: float) -> None:
        graceless = self._graceless
        graceless.pop(client, None)
        if len(graceless) >= _GRACELESS_CLIENTS:
            del graceless[next(iter(graceless))]
        graceless[client] = until

    def _overloaded(self) -> Overloaded:
        log.debug("upload budget of %d bytes exhausted: request refused", self.budget.limit_bytes)
        return Overloaded(
            "the server holds as many uploads as it may; retry shortly",
            retry_after_s=_BUDGET_RETRY_AFTER_S,
        )


class BodyReader:
    """One request's body read under :class:`BodyLimits`: :meth:`receive` is the app's
    ``receive``, :meth:`close` gives the body's bytes back once the answer is sent.

    The deadline is one timer per body, armed at the first read, rather than an
    ``asyncio.timeout`` around every receive (two timer handles and a context per chunk: a tenth
    of a cache hit's CPU). It cancels the reading task only while that task waits in receive.
    """

    __slots__ = (
        "_client",
        "_evicted",
        "_expired",
        "_limits",
        "_reader",
        "_receive",
        "_timer",
        "_waiting",
        "done",
        "failed",
        "held",
        "peer",
        "seen",
        "since",
    )

    def __init__(
        self, receive: Receive, limits: BodyLimits, held: int, peer: tuple[str, int] | None
    ) -> None:
        self._receive = receive
        self._client: str | None = None
        self.peer = peer
        """The ASGI scope's ``client``: whose body it is."""
        self._limits = limits
        self.held = held
        """Bytes taken from the budget for this body."""
        self.seen = 0
        self.since = time.monotonic()
        """The start of the pace it is held to: its headers, then its first read."""
        self.done = False
        self.failed = False
        """True once reading failed (deadline, budget or eviction): the rest of the body is not
        read, so the answer closes the connection."""
        self._timer: asyncio.TimerHandle | None = None
        self._reader: asyncio.Task[Any] | None = None
        self._expired = False
        self._evicted = False
        self._waiting = False
        if held:
            limits.arriving.add(self)

    def lag(self, now: float, grace_s: float) -> float:
        """How far behind its pace the body is: the share of its paced time gone by less the
        share of its declared length arrived (positive: behind)."""
        paced = (now - self.since - grace_s) / (self._limits.body_timeout_s - grace_s)
        return paced - self.seen / self.held

    def client(self) -> str:
        """Who sent it, as the rate limit counts clients (an IPv6 address by its /64); worked
        out once, as a crowded budget asks it of every body at each upload that does not fit."""
        if self._client is None:
            self._client = client_of(self.peer)
        return self._client

    def evict(self) -> int:
        """Give the bytes not yet arrived back to the budget and fail the read (now if it is
        waiting, else at its next call); the bytes given back."""
        freed = self.held - self.seen
        log.debug("a body %d of %d bytes in gave way to another upload", self.seen, self.held)
        self._limits.budget.give(freed)
        self.held = self.seen
        self._evicted = True
        self._settle()
        if self._waiting and self._reader is not None:
            self._reader.cancel()
        return freed

    def _settle(self) -> None:
        self._limits.arriving.discard(self)

    def _expire(self) -> None:
        self._expired = True
        if self._waiting and self._reader is not None:
            self._reader.cancel()

    def _timed_out(self) -> RequestTimeout:
        self.failed = True
        self._settle()
        timeout_s = self._limits.body_timeout_s
        if self._evicted:
            return RequestTimeout(
                f"the request body was arriving too slowly to complete within {timeout_s:g} s, "
                "and another upload needed the room held for it",
                {"timeout_s": timeout_s},
            )
        return RequestTimeout(
            f"the request body did not arrive within {timeout_s:g} s", {"timeout_s": timeout_s}
        )

    async def receive(self) -> Message:
        if self.done:
            return await self._receive()
        timer = self._timer
        if timer is None:
            self.since = time.monotonic()
            self._reader = asyncio.current_task()
            timer = self._timer = asyncio.get_running_loop().call_later(
                self._limits.body_timeout_s, self._expire
            )
        if self._expired or self._evicted:
            raise self._timed_out()
        self._waiting = True
        try:
            message = await self._receive()
        except asyncio.CancelledError:
            # Ours (the deadline, an eviction) unless someone else also cancelled the task.
            ours = self._expired or self._evicted
            if ours and self._reader is not None and self._reader.uncancel() == 0:
                raise self._timed_out() from None
            raise
        finally:
            self._waiting = False
        if message["type"] != "http.request":
            self.done = True
            self._settle()
            timer.cancel()
            return message
        self.seen += len(message.get("body", b""))
        if self.seen > self.held:
            # No Content-Length (or more than it said): take the bytes as they come.
            self._settle()
            if not self._limits.take(self.seen - self.held, self.peer, self):
                self.failed = True
                raise self._limits._overloaded()
            self.held = self.seen
        if not message.get("more_body", False):
            self.done = True
            self._settle()
            timer.cancel()
        return message

    def close(self) -> None:
        """Stop the deadline and give the body's bytes back to the budget."""
        if self._timer is not None:
            self._timer.cancel()
        self._settle()
        self._limits.budget.give(self.held)


async def _answer(error: FaceflowError, scope: Scope, receive: Receive, send: Send) -> None:
    response = faceflow_error_response(error)
    response.headers["Connection"] = "close"
    await response(scope, receive, send)
