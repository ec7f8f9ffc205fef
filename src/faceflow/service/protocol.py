"""The HTTP/1.1 protocol ``faceflow serve`` runs: uvicorn's httptools protocol, plus a header
timeout, a header size limit, a send timeout, a cap on open connections and JSON for what is not
HTTP.

None of these can be done in ASGI: an application is called only once a request's headers are
complete, and it never sees a connection. uvicorn itself has none of them (its
``timeout_keep_alive`` starts only after a first response, and ``limit_concurrency`` and its
parser errors answer in plain text), so:

* **Header timeout** (``server.header_timeout_s``): from the moment a connection opens, and from
  the first byte of each further request on it, the request's headers must be complete within
  the timeout, or the connection gets ``408 request_timeout`` (JSON) and is closed. The body's own
  timeout is :class:`~faceflow.service.upload.BodyLimits`'.
* **Header size** (``server.max_header_bytes``): httptools gathers a request line and headers
  in memory until they are complete, with no bound of its own (a 50 MB header was read and
  answered 200). A request whose headers are still incomplete past the limit gets
  ``431 headers_too_large`` (JSON) and the connection is closed; at most one read (256 KiB)
  more than the limit is ever held. Headers that end in the read that took them past it get the
  same answer once they end, before the request starts. More than ``server.max_header_fields``
  fields (100, as Apache's LimitRequestFields) gets the same answer as soon as the one too many
  is parsed: every layer that reads the headers pays per field, and 9,000 one-byte fields
  within the size limit made a cache hit cost 3–4 ms instead of 0.2. A chunked body's framing
  (chunk sizes, extensions, the trailer) is held to the same size from the body's last move:
  httptools gathers a trailer field with no bound either.
* **Chunk count** (:data:`FREE_CHUNKS` + one per :data:`CHUNK_BYTES`): each chunk of a chunked
  body costs the event loop a parser callback, whatever its size. A 10 MB body sent in 1-byte
  chunks (60 MB) cost the API process 3.3 s of CPU in its event loop, and another client's cache
  hits went from 5.7 ms to 284 ms at p99 meanwhile. A body split finer gets ``400 bad_request``
  (JSON, ``max_chunks``) as soon as the chunk too many begins, and the connection is closed.
* **An answer before the body** (an error, a route that reads none): the connection closes
  with it. uvicorn read on for the rest of the body with no time limit, so one trickled a byte
  every few seconds held its connection, and its share of the cap below, for good.
* **Send timeout** (``server.send_timeout_s``): a client that sends requests but never reads
  the answers (pipelined, a few dozen bytes each) held, until it went away, everything written
  for it: the kernel's send buffer grows to 4 MB a connection (``net.ipv4.tcp_wmem``), and 300
  such connections asking for a 791 KB example photo held 1.1 GB of the kernel's TCP memory,
  which every other connection of the machine draws on. uvicorn has no timeout for an answer
  being sent. Each connection's socket gets ``TCP_USER_TIMEOUT``: once the client has taken
  (acknowledged) nothing for the timeout — its receive window shut, or its network gone — the
  kernel drops the connection and frees its buffers, also after the socket was closed. Counted in
  ``faceflow_send_timeouts_total``.
* **Connection cap** (``server.max_connections``, per HTTP worker process): a connection opened
  beyond the cap takes the place of one that holds its own without a request under way — idle
  between requests, never sent a byte, its headers still incomplete, or its body stalled for
  :data:`STALLED_BODY_S` — the one that moved longest ago, which is closed (``408
  request_timeout`` for a request begun, nothing for an idle one, as a keep-alive timeout closes
  it). One client opening 1,000 connections and sending nothing, again every 8 s (before the
  header timeout), held every place and had every other client's request answered 503. Only when
  no connection gives way is every request on the new one answered ``503 overloaded`` (JSON,
  ``Retry-After``) and the connection closed, once its headers are in (so the answer cannot be
  lost to a reset).
* **Pipelined requests** (:data:`MAX_PIPELINED`): httptools parses every request of a read
  (up to 256 KiB) at once, and uvicorn queues each behind the one being answered, with its
  scope, and reads on as each answer completes. 20 connections sending 256 KiB of
  ``GET /v1/id-photo/specs`` each (7,000 requests a connection) and reading slowly took the API
  process from 143 to 396 MB. A connection's bytes are parsed a request at a time while one is
  being answered, and held back unparsed, its reading paused, once that many are queued; they
  are parsed as answers complete, so every request is still answered, in order.
* **Not HTTP** (a request the parser refuses): ``400 bad_request`` in the service's JSON, the
  connection closed, counted (uvicorn answered in plain text and warned in the log for each).
  A body the parser refuses part-way (a chunk size that is not hex or overflows, a chunk not
  ended by CRLF) is answered so at once, its app reading a disconnect: the app waited on for the
  rest of a body that could no longer come, and the client got ``408`` after the body timeout
  (30 s, its connection and its place held). So is a request whose ``Transfer-Encoding`` does
  not end in ``chunked`` (RFC 9112 §6.3: its length cannot be known), which llhttp read as a
  body lasting until the connection closed: 408 after 30 s as well.
  An Upgrade the server does not do is answered as plain HTTP, without uvicorn's warnings.
* **Escapes in the path** (:data:`MAX_PATH_ESCAPES`): uvicorn decodes a path's percent-escapes
  in Python for every request, before any app code: a path of 21,000 (63 KB) cost the event loop
  4.3 ms a request, and a job handle's path of as many held another client's health checks
  27 ms at the median. More gets ``400 bad_request`` (JSON, ``max_escapes``), undecoded, and the
  connection is closed.

It also stops reading a connection later than uvicorn does (:data:`READ_PAUSE_BYTES`), hands a
body that arrived in one read to the app without copying it (:class:`_Cycle`), and sends a
response's head and the first part of its body in one write (:class:`_OneWritePerResponse`).

The settings reach the protocol through the lifespan state (the app puts its ``server`` settings
there under :data:`SERVER_SETTINGS_STATE`, by :func:`protocol_state`); without them it behaves
as uvicorn's own. What it refuses itself never reaches the app's request metrics; it is counted in
``faceflow_errors_total`` by code when the app's metrics are there too (:data:`METRICS_STATE`).
With ``server.cors_origins`` its answers carry the CORS headers the app's would
(:meth:`FaceflowHttpProtocol._refuse`).

A chunk declared larger than any upload (``7fffffffffffffff``) is not refused on sight: httptools
does not tell its size (llhttp's ``content_length`` is not exposed), and reading it from the
framing again in Python would cost every chunk what :data:`FREE_CHUNKS` bounds. Its bytes are
counted as they arrive, as any body's: 413 at the route's limit, 408 at the body timeout.
"""

from __future__ import annotations

import asyncio
import functools
import json
import socket
import weakref
from collections import OrderedDict
from typing import cast

import httptools
from starlette.types import Message, Receive, Scope, Send
from uvicorn._types import ASGI3Application
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.server import ServerState

from faceflow.config import ServerSettings
from faceflow.errors import (
    FaceflowError,
    HeadersTooLarge,
    InputError,
    Overloaded,
    RequestTimeout,
    Unavailable,
)
from faceflow.service.answers import ABORT_CONNECTION
from faceflow.service.descriptors import fit_connections
from faceflow.service.edge import cors_headers
from faceflow.service.errors import faceflow_error_response
from faceflow.service.metrics import Metrics
from faceflow.service.middleware import (
    NOSNIFF,
    STOPPED_ANSWER,
    STOPPED_CODE,
    STOPPED_STATUS,
    UNDELIVERED,
    is_logged,
)

SERVER_SETTINGS_STATE = "faceflow.server_settings"
METRICS_STATE = "faceflow.metrics"
STOPPING_STATE = "faceflow.stopping"


class Stopping:
    """Set once this HTTP worker's server has begun its graceful shutdown: uvicorn tells each open
    connection (:meth:`FaceflowHttpProtocol.shutdown`), not the app, which learns of it only
    when the connections are done. A request still under way then (an upload still arriving)
    is answered, and the routes read this to refuse what would not outlive the process: an
    embedded job accepted then was answered 202 and dropped the next moment, with the runner."""

    def __init__(self) -> None:
        self.is_set = False


def protocol_state(server: ServerSettings, metrics: Metrics) -> dict[str, object]:
    """What an app puts into its lifespan state for this protocol: ``server`` (with its
    ``max_connections`` fitted under the process's open-file limit, which may be raised for it:
    :mod:`faceflow.service.descriptors`) and ``metrics``. Called once per HTTP worker process,
    as its lifespan starts."""
    fitted = fit_connections(server.max_connections)
    if fitted != server.max_connections:
        server = server.model_copy(update={"max_connections": fitted})
    return {SERVER_SETTINGS_STATE: server, METRICS_STATE: metrics, STOPPING_STATE: Stopping()}


_Bytes = bytes | bytearray | memoryview

READ_PAUSE_BYTES = 256 * 1024
"""Body bytes a connection may hold unread by the app before the protocol stops reading it
(uvicorn: 64 KiB). A typical upload (a 100 KB photo) is larger than uvicorn's mark, so every one
paused its connection while it arrived, and the app read it as two or more chunks — one
``epoll_ctl`` to stop reading and one to start again, one more turn of the event loop and one
more copy of the body per request (about 10–15 µs of a raw-body hit's served CPU in interleaved
runs on a loaded machine; ``bench/hit_tail.py`` counts the pauses). At most this much more per
open connection, and only while the app has not yet read its body: uvloop already hands over up
to 256 KiB per read before uvicorn checks its mark."""
_RETRY_AFTER_S = 1
FREE_CHUNKS = 1024
CHUNK_BYTES = 1024
"""A chunked body may come in :data:`FREE_CHUNKS` chunks and one more per :data:`CHUNK_BYTES`
of it (the rule :mod:`faceflow.imaging.formats` has for a PNG's chunks): clients send their
buffer's worth per chunk (curl 64 KiB, a generator its pieces), and a 10 MiB body may still
come in 11,264 chunks of 930 bytes."""
MAX_PIPELINED = 16
"""Requests parsed and queued behind the one being answered on a connection (module doc); the
bytes of any more wait unparsed. Each queued request holds its scope (about 1.8 KB)."""
_HEADERS_END = b"\r\n\r\n"
_CONTENT_LENGTH = b"content-length"
STALLED_BODY_S = 1.0
"""A request whose body has not moved for this long gives its connection's place to a new
connection when the cap is reached (a body arriving at any pace moves more often; one declared
and never sent held a place for ``server.body_timeout_s``, 30 s, for 60 bytes)."""


def _closing_response(
    error: FaceflowError, reason: str, extra: list[tuple[bytes, bytes]] | None = None
) -> bytes:
    """``error`` as the service's JSON error, written by the protocol itself (no request reached
    the app), with ``connection: close`` and the ``extra`` headers (CORS)."""
    body = json.dumps({"error": error.to_dict()}, separators=(",", ":")).encode()
    head = (
        f"HTTP/1.1 {error.status} {reason}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        f"x-error-code: {error.code}\r\n"
    ).encode("latin-1")
    lines = b"".join(name + b": " + value + b"\r\n" for name, value in extra or ())
    return head + lines + b"connection: close\r\n\r\n" + body


_STOPPED = Unavailable(
    "the server stopped before it finished this request: send it again (once the server is"
    " back, or to another node)",
    retry_after_s=_RETRY_AFTER_S,
)
assert (_STOPPED.status, _STOPPED.code) == (STOPPED_STATUS, STOPPED_CODE)


def _headers_too_slow(timeout_s: float) -> RequestTimeout:
    return RequestTimeout(
        f"the request headers did not arrive within {timeout_s:g} s", {"timeout_s": timeout_s}
    )


def _headers_too_large(limit: int) -> HeadersTooLarge:
    return HeadersTooLarge(
        f"the request line and headers are over {limit} bytes", {"max_bytes": limit}
    )


def _given_way() -> RequestTimeout:
    return RequestTimeout(
        "the server needed this connection for another: its request had stalled while the"
        " server held as many connections as it may; send it again, whole"
    )


def _framing_too_large(limit: int) -> HeadersTooLarge:
    return HeadersTooLarge(
        f"the chunked body's framing or trailer is over {limit} bytes", {"max_bytes": limit}
    )


class _TooManyFields(Exception):
    """Raised from httptools' header callback, which stops the parser where it is."""


class _HeadersTooLarge(Exception):
    """Raised from httptools' headers-complete callback for headers that came whole but over
    the limit, before the request starts."""


class _UnknownLength(Exception):
    """Raised from httptools' headers-complete callback for a request whose body has no
    length (a Transfer-Encoding not ending in chunked): it stops the parser where it is."""


_TRANSFER_ENCODING = b"transfer-encoding"
_CHUNKED = b"chunked"
_ORIGIN = b"origin"


class _TooManyChunks(Exception):
    """Raised from httptools' chunk callback, which stops the parser where it is."""


MAX_PATH_ESCAPES = 256
"""Percent-escapes a request's path may have (faceflow's own paths need none)."""


class _TooManyEscapes(Exception):
    """Raised from httptools' headers-complete callback for a path of more than
    :data:`MAX_PATH_ESCAPES` percent-escapes, before uvicorn decodes them."""


def _too_many_escapes() -> InputError:
    return InputError(
        f"the path has more than {MAX_PATH_ESCAPES} percent-escapes (faceflow's paths need none)",
        {"max_escapes": MAX_PATH_ESCAPES},
    )


def _too_many_chunks(allowed: int) -> InputError:
    return InputError(
        f"the chunked body came in more than {FREE_CHUNKS:,} chunks and one per {CHUNK_BYTES:,}"
        " bytes of it: send it in larger chunks, or with a Content-Length",
        {"max_chunks": allowed},
    )


def _too_many_fields(limit: int) -> HeadersTooLarge:
    return HeadersTooLarge(f"more than {limit} header fields", {"max_fields": limit})


class _OverCapacity:
    """The app of a connection opened beyond the cap: 503 to every request on it, with the CORS
    headers the app's own answer would have (``cors_origins``): a page on an allowed origin saw
    a network error, not the 503 and its Retry-After."""

    def __init__(self, metrics: Metrics | None, cors_origins: list[str]) -> None:
        self._metrics = metrics
        self._cors_origins = cors_origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = Overloaded(
            "the server has as many open connections as it may; retry shortly",
            retry_after_s=_RETRY_AFTER_S,
        )
        _count(self._metrics, error)
        response = faceflow_error_response(error)
        response.headers["Connection"] = "close"
        if self._cors_origins:
            origin = next((v for k, v in scope["headers"] if k == _ORIGIN), None)
            for name, value in cors_headers(origin, self._cors_origins):
                response.headers.append(name.decode("latin-1"), value.decode("latin-1"))
        await response(scope, receive, send)


def _set_send_timeout(transport: asyncio.Transport, timeout_s: float) -> None:
    """Have the kernel drop the connection once its client has acknowledged nothing for
    ``timeout_s`` (module doc). TCP over IPv4 or IPv6 on Linux only: a Unix socket, or a system
    without the option, keeps the kernel's own behaviour."""
    option = getattr(socket, "TCP_USER_TIMEOUT", None)
    sock = transport.get_extra_info("socket")
    if option is None or sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, option, round(timeout_s * 1000))
    except OSError:  # pragma: no cover - a TCP socket on Linux takes it
        return


def _count(metrics: Metrics | None, error: FaceflowError) -> None:
    if metrics is not None:
        metrics.errors.labels(code=error.code).inc()


class _OneWritePerResponse:
    """What a response cycle writes through: its status line and headers wait for the body's
    first part, and both go to the socket in one ``writelines`` — one system call and one
    segment instead of two (uvicorn writes the head as soon as the app starts its answer).

    The head never waits beyond the current turn of the event loop (a ``call_soon`` flush), so a
    streamed answer whose body comes later sends its head as uvicorn would. The head's ``send``
    cost a cache hit as much CPU as the whole body's (py-spy: 20 % of the worker's samples on
    the first write, 7 % on the second).
    """

    __slots__ = ("_flush_pending", "_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: _Bytes | None = None
        self._flush_pending = False

    def write(self, data: _Bytes) -> None:
        held = self._held
        if held is None:
            self._held = data
            if not self._flush_pending:
                self._flush_pending = True
                self._loop.call_soon(self._flush)
            return
        self._held = None
        self._transport.writelines((held, data))

    def _flush(self) -> None:
        self._flush_pending = False
        self.flush()

    def flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    @property
    def holding(self) -> bool:
        """Whether a head waits for its flush."""
        return self._held is not None

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        """Close the connection at once, dropping what is buffered (an answer cut to make room
        for another client's: :data:`~faceflow.service.answers.ABORT_CONNECTION`)."""
        self._held = None
        self._transport.abort()


_PLAIN = 0
_LENGTH = 1
_CHUNKED_CODING = 2
_CLOSES = 3
_MEMO_HEADER_BYTES = 256
"""The longest response header (name and value) whose line :func:`_header_line` memoises."""


@functools.lru_cache(maxsize=512)
def _header_line(name: bytes, value: bytes) -> tuple[bytes, int]:
    """A response header's line as uvicorn writes it (name lower-cased), checked as uvicorn
    checks it (``RuntimeError`` for a name or value it refuses), and what uvicorn makes of it:
    the body's length (:data:`_LENGTH`), a chunked body (:data:`_CHUNKED_CODING`), the
    connection's close (:data:`_CLOSES`) or nothing (:data:`_PLAIN`).

    Memoised (headers up to :data:`_MEMO_HEADER_BYTES`): an answer's headers are mostly the same
    few pairs (a cache hit's are built once per entry), and uvicorn's two regular-expression
    searches, lower-casing and comparisons per header cost a hit's ten headers 5 µs."""
    if HEADER_RE.search(name):
        raise RuntimeError("Invalid HTTP header name.")
    if HEADER_VALUE_RE.search(value):
        raise RuntimeError("Invalid HTTP header value.")
    name = name.lower()
    kind = _PLAIN
    if name == b"content-length":
        kind = _LENGTH
    elif name == b"transfer-encoding" and value.lower() == b"chunked":
        kind = _CHUNKED_CODING
    elif name == b"connection" and b"close" in [t.lower().strip() for t in value.split(b",")]:
        kind = _CLOSES
    return b"".join((name, b": ", value, b"\r\n")), kind


_REQUEST_ID = b"x-request-id"


def _line_of(name: bytes, value: bytes) -> tuple[bytes, int]:
    if name == _REQUEST_ID and value.isalnum():
        # A request's own id (middleware.py: 32 hex digits unless the client sent one), new at
        # every answer: memoised, each missed and pushed a line that repeats out of the memo
        # (8,000 instructions of a hit's 725,000). Letters and digits pass uvicorn's check.
        return b"x-request-id: " + value + b"\r\n", _PLAIN
    if len(name) + len(value) > _MEMO_HEADER_BYTES:
        return _header_line.__wrapped__(name, value)
    try:
        return _header_line(name, value)
    except TypeError:  # unhashable (a bytearray, which uvicorn takes too)
        return _header_line.__wrapped__(name, value)


class _Cycle(RequestResponseCycle):
    """uvicorn's request cycle, handing the body to the app as the bytes the parser gave, and
    writing an answer's head from memoised header lines.

    uvicorn gathers a request's body into a bytearray and hands the app a ``bytes`` copy of it:
    a 95 KB upload was copied twice before the app saw it (about a tenth of a cache hit's served
    CPU, the floor's too). Here a body that came in one piece (a typical upload, read whole
    since :data:`READ_PAUSE_BYTES`) is handed over as it came; one that came in several goes
    through a bytearray as in uvicorn (:meth:`FaceflowHttpProtocol.on_body`), never a chain of
    ``bytes`` concatenations.

    The head is uvicorn's, byte for byte, with the same refusals (:func:`_header_line`);
    uvicorn's own ``send`` writes it when it would first wait or log (a transport not taking
    writes, its access log on) and for anything but an answer's start.
    """

    async def run_asgi(self, app: ASGI3Application) -> None:
        """uvicorn's, but for an exception the app has logged and answered itself
        (:func:`~faceflow.service.middleware.mark_logged`): uvicorn logged every exception
        leaving the app again, with its traceback and without the request's id, and answered
        one it found no answer to ``500`` in plain text (a request cancelled as the server
        stopped for good, which faceflow now answers itself)."""
        try:
            result = await app(self.scope, self.receive, self.send)  # type: ignore[func-returns-value,arg-type]
        except BaseException as exc:
            if is_logged(exc):
                if not self.response_complete:
                    self.transport.close()
                return
            self.logger.error("Exception in ASGI application\n", exc_info=exc)
            if not self.response_started:
                await self.send_500_response()
            else:
                self.transport.close()
        else:
            if result is not None:
                self.logger.error("ASGI callable should return None, but returned '%s'.", result)
                self.transport.close()
            elif not self.response_started and not self.disconnected:
                self.logger.error("ASGI callable returned without starting response.")
                await self.send_500_response()
            elif not self.response_complete and not self.disconnected:
                self.logger.error("ASGI callable returned without completing response.")
                self.transport.close()
        finally:
            self.on_response = lambda: None

    async def send(self, message: Message) -> None:  # type: ignore[override]
        starts = message["type"] == "http.response.start"
        if self.more_body and starts:
            # Answered before its request was all in (an error before the body, a route that
            # reads none): the connection closes with the answer rather than reading on for the
            # rest, which uvicorn did with no time limit — a body trickled a byte every few
            # seconds held the connection, and its share of max_connections, for good.
            self.keep_alive = False
        if self.disconnected and not (self.response_started and self.scope["method"] == "HEAD"):
            # uvicorn drops it without a word; the request is logged and counted as the 499 it
            # was (a HEAD's answer is whole with its head, the rest of it is never sent).
            self.scope[UNDELIVERED] = True  # type: ignore[literal-required]
        elif (
            starts
            and not self.response_started
            and not self.access_log
            and not self.flow.write_paused
        ):
            self._write_head(message)
            return
        await RequestResponseCycle.send(self, message)  # type: ignore[arg-type]

    def _write_head(self, message: Message) -> None:
        """uvicorn's ``send`` of an answer's start, from :func:`_line_of`'s lines."""
        self.response_started = True
        self.waiting_for_100_continue = False
        status = message["status"]
        content = [STATUS_LINE[status]]
        closes = False
        for name, value in (*self.default_headers, *message.get("headers", ())):
            line, kind = _line_of(name, value)
            if kind == _LENGTH:
                if self.chunked_encoding is None:
                    self.expected_content_length = int(value.decode())
                    self.chunked_encoding = False
            elif kind == _CHUNKED_CODING:
                self.expected_content_length = 0
                self.chunked_encoding = True
            elif kind == _CLOSES:
                self.keep_alive = False
                closes = True
            content.append(line)
        if not self.keep_alive and not closes:
            content.append(b"connection: close\r\n")
        if (
            self.chunked_encoding is None
            and self.scope["method"] != "HEAD"
            and status not in (204, 304)
        ):
            self.chunked_encoding = True
            content.append(b"transfer-encoding: chunked\r\n")
        content.append(b"\r\n")
        self.transport.write(b"".join(content))

    async def receive(self) -> Message:  # type: ignore[override]
        # uvicorn's receive, but for the body's type.
        if self.waiting_for_100_continue and not self.transport.is_closing():
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.waiting_for_100_continue = False
        if not self.disconnected and not self.response_complete:
            self.flow.resume_reading()
            await self.message_event.wait()
            self.message_event.clear()
        if self.disconnected or self.response_complete:
            return {"type": "http.disconnect"}
        body = self.body
        self.body = bytearray()
        return {
            "type": "http.request",
            "body": body if isinstance(body, bytes) else bytes(body),
            "more_body": self.more_body,
        }


class _HoldingFlow(FlowControl):
    """uvicorn's flow control, but reading stays paused while the protocol holds pipelined bytes
    back (:data:`MAX_PIPELINED`): uvicorn resumes reading as each answer completes and each time
    an app reads its body, and every read would add to what is held."""

    holding = False

    def resume_reading(self) -> None:
        if not self.holding:
            FlowControl.resume_reading(self)


_MOVES: weakref.WeakKeyDictionary[ServerState, OrderedDict[FaceflowHttpProtocol, None]] = (
    weakref.WeakKeyDictionary()
)
"""Each server's connections (those with faceflow's settings) by when each last moved, the one
that moved longest ago first (:meth:`FaceflowHttpProtocol._make_room`)."""


class FaceflowHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header limits, a send timeout and a connection cap
    (module doc).

    The header deadline is a time, not a timer per request: arming it when a request begins and
    clearing it when its headers are in is two attribute writes. One timer per connection checks
    it when it falls due and, if a later request moved the deadline meanwhile, waits on for that
    one. A timer armed and cancelled for every request cost a keep-alive connection's cache hits
    a tenth of what the app above them spends.

    What it overrides per request calls uvicorn's own by its class (``HttpToolsProtocol.on_header
    (self, ...)``), not through ``super()``, as :class:`_Cycle` and :class:`_HoldingFlow` do:
    a hit makes twelve such calls, and ``super()`` builds a proxy and a bound method for each
    (about 10,000 of a hit's 717,000 instructions).
    """

    _header_timeout_s: float | None = None
    _header_deadline: float | None = None
    """When the pending request's headers must be in; None while none is pending."""
    _header_timer: asyncio.TimerHandle | None = None
    _max_header_bytes: int | None = None
    _max_header_fields: int | None = None
    _header_bytes: int | None = None
    """Bytes read while the pending request's headers are incomplete; None once they are."""
    _framing_bytes = 0
    """Bytes read since the pending request's body last moved (its headers complete, its
    message not): a chunked body's framing, its extensions and trailer, which httptools gathers
    with no bound of its own."""
    _chunks = 0
    """Chunks begun of the pending request's chunked body."""
    _transfer_coding: bytes | None = None
    """The pending request's last Transfer-Encoding field, if it has one."""
    _body_bytes = 0
    """Bytes of the pending request's body read so far."""
    _parsing_stopped = False
    """Set once a request was refused for its headers or its bytes: nothing more is parsed."""
    _held_back = b""
    """A read whose bytes from :attr:`_held_from` on are not parsed yet: they follow
    :data:`MAX_PIPELINED` queued requests. Kept whole with an offset: slicing off the rest at
    each answer copied up to 256 KiB per pipelined request."""
    _held_from = 0
    _declared: bytes | None = None
    """The pending request's Content-Length field, if it has one."""
    _answering: RequestResponseCycle | None = None
    """The request whose app runs: with requests queued behind it, not uvicorn's ``cycle``."""
    _body_left: int | None = None
    """What the pending request's body still has to come by its Content-Length, once its headers
    are in; None for none declared, or before its headers are in."""
    _metrics: Metrics | None = None
    _cors_origins: list[str] = []  # noqa: RUF012 - read only; set per connection
    """``server.cors_origins``: what the protocol answers itself carries CORS headers for them
    (:meth:`_refuse`)."""
    _writes: _OneWritePerResponse | None = None
    _moved_at = 0.0
    """When the connection last moved (opened, read bytes, finished an answer), in loop time:
    of the connections that may give way to a new one, the one that moved longest ago does."""
    _moves: OrderedDict[FaceflowHttpProtocol, None] | None = None
    """Its server's connections in the order they last moved (:data:`_MOVES`), this one among
    them while it is open."""

    def connection_made(  # type: ignore[override]
        self, transport: asyncio.Transport
    ) -> None:
        super().connection_made(transport)
        self.flow = _HoldingFlow(transport)
        self._writes = _OneWritePerResponse(transport, self.loop)
        server = self.app_state.get(SERVER_SETTINGS_STATE)
        if not isinstance(server, ServerSettings):
            return
        metrics = self.app_state.get(METRICS_STATE)
        self._metrics = metrics if isinstance(metrics, Metrics) else None
        self._header_timeout_s = server.header_timeout_s
        self._max_header_bytes = server.max_header_bytes
        self._max_header_fields = server.max_header_fields
        self._cors_origins = server.cors_origins
        self._header_bytes = 0
        _set_send_timeout(transport, server.send_timeout_s)
        self._moved_at = self.loop.time()
        moves = _MOVES.get(self.server_state)
        if moves is None:
            moves = _MOVES[self.server_state] = OrderedDict()
        moves[self] = None
        self._moves = moves
        if len(self.connections) > server.max_connections and not self._make_room():
            self.app = _OverCapacity(self._metrics, self._cors_origins)
        self._arm_header_timer()

    def _make_room(self) -> bool:
        """Close the connection that may give way (:meth:`_may_give_way`) and moved longest
        ago, for this new one; whether there was one. Only at the cap, and from the one that
        moved longest ago on, so usually the first looked at: the lowest of every open
        connection's time cost each connection opened at the cap a pass over all of them (a
        client reopening each one closed spent 1.0 ms of the event loop a connection at 1,000,
        7 ms at 4,000)."""
        assert self._moves is not None
        now = self.loop.time()
        for other in self._moves:
            if other is not self and other._may_give_way(now):
                other._give_way()
                return True
        return False

    def _moved(self) -> None:
        """The connection moved now: last in its server's order."""
        self._moved_at = self.loop.time()
        if self._moves is not None:
            try:  # noqa: SIM105 - at every read: no context manager made for it
                self._moves.move_to_end(self)
            except KeyError:
                pass  # closed already

    def _may_give_way(self, now: float) -> bool:
        """Whether this connection holds its place without a request under way: between
        requests or before its first (its next request's headers not yet in), or in a request
        whose body has stalled (the app waits for it, nothing has arrived for
        :data:`STALLED_BODY_S` and the server is not the one holding it back), with nothing of
        an answer left to send."""
        transport = self.transport
        if transport.is_closing() or transport.get_write_buffer_size():
            return False
        if self._writes is not None and self._writes.holding:
            return False  # a HEAD's whole answer, sent at the loop's next turn
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            return True
        return (
            cycle.more_body
            and not cycle.response_started
            and not self.flow.read_paused
            and now - self._moved_at >= STALLED_BODY_S
        )

    def _give_way(self) -> None:
        """Close this connection for a new one: ``408`` to a request begun (its app, waiting for
        the body, reads a disconnect), nothing to one idle (as a keep-alive timeout closes it)."""
        self._parsing_stopped = True
        if self._metrics is not None:
            self._metrics.connections_given_way.inc()
        cycle = self.cycle
        under_way = cycle is not None and not cycle.response_complete
        if under_way:
            cycle.disconnected = True
            cycle.message_event.set()
        if under_way or self._header_bytes:
            self._refuse(_given_way(), "Request Timeout")
        else:
            self.transport.close()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        self._answering = cycle
        if self._writes is not None:
            # Before its task is made, which binds its run_asgi: uvicorn starts a request's task
            # from its own on_headers_complete, before faceflow's there has made it a _Cycle.
            cycle.transport = cast(asyncio.Transport, self._writes)
            cycle.__class__ = _Cycle
            cycle.scope[ABORT_CONNECTION] = self._writes.abort  # type: ignore[literal-required]
            cycle.scope[STOPPED_ANSWER] = self._answer_stopped  # type: ignore[literal-required]
        HttpToolsProtocol._start_asgi_task(self, cycle, app)

    def _answer_stopped(self) -> bool:
        """What :data:`~faceflow.service.middleware.STOPPED_ANSWER` does for the request being
        answered (the one whose task was cancelled: a connection runs one at a time): ``503
        unavailable`` with ``Retry-After`` and the request's id, the connection then closed,
        if nothing of its answer went out (True); else the connection closed at once, its
        buffers dropped (False). Written here, not sent through the app's layers: the task is
        being cancelled, and the protocol alone knows whether an answer began."""
        cycle = self._answering
        writes = self._writes
        if cycle is None or writes is None or cycle.response_complete:
            return False
        if cycle.response_started or cycle.disconnected or writes.is_closing():
            writes.abort()
            return False
        cycle.response_started = cycle.response_complete = True
        cycle.keep_alive = False
        extra = [(b"retry-after", str(_STOPPED.retry_after_s).encode()), NOSNIFF]
        request_id = cycle.scope.get("state", {}).get("request_id")
        if isinstance(request_id, str):
            extra.append((b"x-request-id", request_id.encode("latin-1")))
        if self._cors_origins:
            origin = next((v for k, v in cycle.scope["headers"] if k == _ORIGIN), None)
            extra.extend(cors_headers(origin, self._cors_origins))
        writes.write(_closing_response(_STOPPED, "Service Unavailable", extra))
        writes.close()
        return True  # counted with the request's access line, by its code

    def connection_lost(self, exc: Exception | None) -> None:
        answering = self._answering
        if answering is not None and not answering.response_complete:
            # uvicorn tells only its latest request, a queued one when requests are pipelined:
            # the one being answered, waiting for the client to take its answer, then wrote to
            # the closed socket and logged a traceback, one per connection a client dropped.
            answering.disconnected = True
            answering.message_event.set()
        if isinstance(exc, TimeoutError) and self._metrics is not None:
            self._metrics.send_timeouts.inc()  # the kernel's ETIMEDOUT: see _set_send_timeout
        self._header_deadline = None
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        if self._moves is not None:
            self._moves.pop(self, None)
        super().connection_lost(exc)

    def shutdown(self) -> None:
        # uvicorn closes the socket itself here when the last response is complete, maybe in the
        # loop turn that completed it: a head still held (a HEAD request's whole answer) goes
        # out first. (Anything else that writes to the socket runs from a later callback than
        # the held head's flush.)
        if self._writes is not None:
            self._writes.flush()
        stopping = self.app_state.get(STOPPING_STATE)
        if isinstance(stopping, Stopping):
            stopping.is_set = True
        super().shutdown()

    def data_received(self, data: bytes) -> None:
        if self._parsing_stopped:
            return  # nothing more is parsed; the connection closes after its current answer
        self._moved()
        self._take(data)

    def _take(self, data: bytes) -> None:
        """Parse ``data`` after any bytes held back (:meth:`_feed`), and refuse a request whose
        headers or framing it took past the limits."""
        start = 0
        if self._held_back:
            held, start = self._held_back, self._held_from
            self._held_back, self._held_from = b"", 0
            if data:  # read while held back (reading is paused then): after what was held
                data, start = held[start:] + data, 0
            else:
                data = held
        self._feed(data, start)
        limit = self._max_header_bytes
        if limit is None:
            return
        if self._header_bytes is not None:
            if self._header_bytes > limit:
                self._refuse_headers(_headers_too_large(limit))
        elif self._framing_bytes > limit:
            self._refuse_framing(_framing_too_large(limit))

    def _feed(self, data: bytes, start: int) -> None:
        """Parse ``data`` from ``start`` on, a request at a time: each piece ends where a
        request's headers end, or where its declared body ends, so no piece completes more than
        one request's headers. Once :data:`MAX_PIPELINED` requests are queued the rest is held
        back and reading paused, until an answer completes (:meth:`on_response_complete`).

        Each piece is counted before it is parsed, and judged after (:meth:`_take`): a piece
        that completes the headers (with a body after them, as a whole upload often arrives) is
        never refused for its size, and bytes held back count once they are parsed."""
        flow = cast(_HoldingFlow, self.flow)
        flow.holding = False
        view = memoryview(data)
        while start < len(data) and not self._parsing_stopped:
            if len(self.pipeline) >= MAX_PIPELINED:
                self._held_back, self._held_from = data, start
                flow.holding = True
                flow.pause_reading()
                return
            if self._body_left:
                end = min(len(data), start + self._body_left)
            else:
                found = data.find(_HEADERS_END, start)
                end = len(data) if found < 0 else found + len(_HEADERS_END)
            if self._header_bytes is not None:
                self._header_bytes += end - start
            else:
                self._framing_bytes += end - start
            self._parse(view[start:end] if start or end < len(data) else data)
            start = end

    def _parse(self, data: bytes | memoryview) -> None:
        """uvicorn's ``data_received``, but for what it does with a request it cannot parse or
        upgrade: it answered "Invalid HTTP request received." in plain text and warned in the
        log for each; an Upgrade it does not do (h2c from ``curl --http2``, a websocket, which
        ``faceflow serve`` turns off) is answered as the plain HTTP request it also is, where
        uvicorn warned twice, once to install a WebSocket library. Two warnings in the log for
        any client's one cheap request; the refusals are counted instead."""
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _UnknownLength):
                self._not_http("a request's Transfer-Encoding must end in chunked")
            elif isinstance(exc.__context__, _TooManyEscapes):
                self._bad_request(_too_many_escapes())
            elif isinstance(exc.__context__, httptools.HttpParserInvalidURLError):
                # uvicorn's parse_url raised in the callback: llhttp said "User callback error".
                self._not_http(
                    "the request target is not a valid URL (a path such as /v1/detect, or an"
                    " absolute URL with a host and a port from 0 to 65535)"
                )
            elif isinstance(exc.__context__, _TooManyChunks):
                allowed = FREE_CHUNKS + self._body_bytes // CHUNK_BYTES
                self._refuse_framing(_too_many_chunks(allowed), "Bad Request")
            elif isinstance(exc.__context__, _HeadersTooLarge) and self._max_header_bytes:
                self._refuse_headers(_headers_too_large(self._max_header_bytes))
            elif isinstance(exc.__context__, _TooManyFields) and self._max_header_fields:
                error = _too_many_fields(self._max_header_fields)
                if self._header_bytes is None:
                    self._refuse_framing(error)  # in a chunked body's trailer
                else:
                    self._refuse_headers(error)
            else:
                self._not_http(str(exc))
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            elif self._declares_body():
                # httptools hands the bytes after an Upgrade's headers to the new protocol, not
                # to the request: answered as plain HTTP, an upload sent with h2c's Upgrade (by
                # an HTTP/2 client on an http:// URL) was read as no body, 400 `empty`.
                self._refuse_framing(
                    InputError(
                        "a request asking to switch protocols (Upgrade) may not carry a body"
                        " here: faceflow speaks HTTP/1.1 only; send it without Upgrade",
                        {"parameter": "upgrade"},
                    ),
                    "Bad Request",
                )

    def _declares_body(self) -> bool:
        """Whether the request being parsed declares a body (a length over 0, or chunked)."""
        if self.cycle is None:
            return False
        for name, value in self.cycle.scope["headers"]:
            if name == b"transfer-encoding" or (
                name == b"content-length" and value.strip() not in (b"", b"0")
            ):
                return True
        return False

    def _not_http(self, reason: str) -> None:
        self._bad_request(InputError(f"the request is not valid HTTP/1.1: {reason}"))

    def _bad_request(self, error: InputError) -> None:
        """Answer ``error`` for a request the parser stopped at, once the answer under way, if
        any, is sent, and close the connection."""
        self._parsing_stopped = True  # the parser is left in its error: it reads nothing more
        cycle = self.cycle
        if cycle is not None and cycle.more_body and not cycle.response_started:
            # In the body its app waits for: no more of it can come. Answered now, not by the
            # body timeout's 408 half a minute later.
            self._refuse_framing(error, "Bad Request")
            return
        if cycle is not None and not cycle.response_complete:
            # Pipelined after a request still being answered: a 400 now would land inside that
            # answer, or before it. Close once it is sent.
            _count(self._metrics, error)
            self.cycle.keep_alive = False
            return
        self._refuse(error, "Bad Request")

    def _refuse_headers(self, error: HeadersTooLarge) -> None:
        self._parsing_stopped = True
        self._header_bytes = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined request's headers overflowed while the one before it is answered: a
            # 431 now would land in the middle of that answer. Close once it is sent.
            self.cycle.keep_alive = False
            return
        self._refuse(error, "Request Header Fields Too Large")

    def _refuse_framing(
        self, error: FaceflowError, reason: str = "Request Header Fields Too Large"
    ) -> None:
        """Stop a request whose chunked framing or trailer outgrew the header limits (a trailer
        field that never ended was gathered by httptools a read at a time, copied whole at
        each, and held the connection with it, on any path and before any key was checked),
        whose body came in too many chunks, or that the parser refused in its body."""
        self._parsing_stopped = True
        cycle = self.cycle
        if self.transport.is_closing() or cycle is None:
            return
        if cycle.response_started:
            cycle.keep_alive = False  # close once the answer under way is sent
            if cycle.response_complete:
                self.transport.close()
            return
        # The app still waits for the body: it reads a disconnect, and the answer is ours.
        cycle.disconnected = True
        cycle.message_event.set()
        self._refuse(error, reason)

    def _refuse(self, error: FaceflowError, reason: str, *, count: bool = True) -> None:
        """Answer ``error`` for a request the app never saw, count it, close the connection.

        With ``server.cors_origins`` the answer carries the CORS headers the app's would (a page
        on an allowed origin saw a network error, not the 431 or 408): for the request's Origin
        if its field was read whole before the refusal (a field cut short, or never reached, is
        not guessed at; with ``*`` none is needed)."""
        if count:
            _count(self._metrics, error)
        extra = None
        if self._cors_origins:
            origin = next((v for k, v in self.headers or () if k == _ORIGIN), None)
            extra = cors_headers(origin, self._cors_origins)
        self.transport.write(_closing_response(error, reason, extra))
        self.transport.close()

    def on_body(self, body: bytes) -> None:
        # uvicorn's own on_body, with READ_PAUSE_BYTES for its 64 KiB mark.
        cycle = self.cycle
        if (self.parser.should_upgrade() and self._should_upgrade()) or cycle.response_complete:
            return
        self._framing_bytes = 0
        self._body_bytes += len(body)
        if self._body_left is not None:
            self._body_left -= len(body)
        held: bytes | bytearray = cycle.body
        if not held:
            cycle.body = body  # type: ignore[assignment]  # as it came: see _Cycle
        elif isinstance(held, bytes):
            cycle.body = bytearray(held)
            cycle.body += body
        else:
            held += body
        if len(cycle.body) > READ_PAUSE_BYTES:
            self.flow.pause_reading()
        cycle.message_event.set()

    def on_chunk_header(self) -> None:
        self._chunks += 1
        if self._chunks > FREE_CHUNKS + self._body_bytes // CHUNK_BYTES:
            raise _TooManyChunks

    def on_header(self, name: bytes, value: bytes) -> None:
        HttpToolsProtocol.on_header(self, name, value)
        # Each field costs every layer that reads the headers: 9,000 one-byte fields (64 KiB)
        # made a cache hit cost 3-4 ms instead of 0.2.
        limit = self._max_header_fields
        if limit is not None and len(self.headers) > limit:
            raise _TooManyFields
        if self.headers[-1][0] == _TRANSFER_ENCODING:
            self._transfer_coding = self.headers[-1][1]
        elif self.headers[-1][0] == _CONTENT_LENGTH:
            self._declared = self.headers[-1][1]

    def on_response_complete(self) -> None:
        HttpToolsProtocol.on_response_complete(self)
        self._moved()  # idle from now: its wait for the next request starts
        if self._held_back and not self.transport.is_closing():
            # The queue moved up one: parse on from what was held back (uvicorn's own resume,
            # just above, waited for this).
            self._take(b"")
            if not self._held_back:
                self.flow.resume_reading()

    def on_message_begin(self) -> None:
        HttpToolsProtocol.on_message_begin(self)
        self._transfer_coding = None
        self._declared = None
        self._body_left = None
        self._arm_header_timer()

    def on_message_complete(self) -> None:
        HttpToolsProtocol.on_message_complete(self)
        self._body_left = None
        # The next request's headers start here. (Counting from its first byte instead lost the
        # read that held that byte: a request line of 200 KB in one read went uncounted.)
        if self._max_header_bytes is not None:
            self._header_bytes = 0

    def on_headers_complete(self) -> None:
        # Headers that end within the read that brought them past the limit: judged after each
        # read (_take), they were served, so the same headers got a 200 in one read and a 431
        # in two. _feed ends each piece at the headers' end: the count is theirs exactly.
        limit = self._max_header_bytes
        if limit is not None and self._header_bytes is not None and self._header_bytes > limit:
            raise _HeadersTooLarge
        coding = self._transfer_coding
        if coding is not None and coding.rpartition(b",")[2].strip().lower() != _CHUNKED:
            raise _UnknownLength
        url = self.url
        query_at = url.find(b"?")
        if url.count(b"%", 0, len(url) if query_at < 0 else query_at) > MAX_PATH_ESCAPES:
            raise _TooManyEscapes
        self._header_deadline = None
        self._header_bytes = None
        self._framing_bytes = 0
        self._chunks = 0
        self._body_bytes = 0
        declared = self._declared
        self._body_left = int(declared) if declared is not None and declared.isdigit() else None
        HttpToolsProtocol.on_headers_complete(self)
        if self.cycle is not None and self._writes is not None:
            self.cycle.transport = cast(asyncio.Transport, self._writes)
            # uvicorn builds its own cycle inline; its receive is looked up when the app starts.
            self.cycle.__class__ = _Cycle

    def _arm_header_timer(self) -> None:
        """Start the header deadline, unless one is running (a connection's first request keeps
        the one its opening started)."""
        if self._header_timeout_s is None or self._header_deadline is not None:
            return
        self._header_deadline = self.loop.time() + self._header_timeout_s
        if self._header_timer is None:
            self._header_timer = self.loop.call_at(self._header_deadline, self._header_check)

    def _header_check(self) -> None:
        self._header_timer = None
        deadline = self._header_deadline
        if deadline is None:
            return  # no request pending: the next one arms the timer again
        if self.loop.time() < deadline:
            self._header_timer = self.loop.call_at(deadline, self._header_check)
            return
        self._header_deadline = None
        self._headers_too_slow()

    def _headers_too_slow(self) -> None:
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined request's headers stalled while the one before it is answered: a 408
            # now would land in the middle of that answer. Close once it is sent.
            self.cycle.keep_alive = False
            return
        assert self._header_timeout_s is not None
        # A connection that never sent a byte (a browser's preconnect left unused) is closed the
        # same way, but it is housekeeping, not a client's error: not counted.
        started = bool(self._header_bytes)
        self._refuse(_headers_too_slow(self._header_timeout_s), "Request Timeout", count=started)
