"""The cache-hit fast path: detect / analyze / annotate answered from the cache without FastAPI.

A cache hit needs the upload's bytes, the request's options and one lookup; FastAPI's routing,
dependency and validation layers cost four times that on this path (measured: ~1,200 hits/s per
process through FastAPI, ~4,900 for a bare ASGI handler). So this ASGI layer, in front of the
FastAPI app, reads the upload with the same code the routes use, applies the same API-key and
rate-limit checks, builds the same cache key and answers a hit itself. Anything else — a miss,
an option it does not know, a value out of range, a malformed body — goes to FastAPI unchanged,
with the body it already read replayed, so every answer but a hit comes from the documented
routes. It also serves the trivial ``/v1/echo-size``, the HTTP ceiling benchmarks compare with.

It can never answer a hit the routes would not: it parses the query string with the route's own
options model (:mod:`faceflow.operations`, memoised per query string) into the same work and cache
key; a test checks both parse generated query strings alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl

from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from faceflow.cache.entry import CacheEntry
from faceflow.cache.keys import KeyPrefix, content_hash, key_for_digest, key_prefix
from faceflow.cache.observer import CacheLevel
from faceflow.cache.tiered import CacheStatus
from faceflow.config import DetectionSettings
from faceflow.domain import Operation
from faceflow.errors import FaceflowError, InvalidParameter
from faceflow.operations.faces import FACE_OPTIONS, FaceWork
from faceflow.service.errors import faceflow_error_response
from faceflow.service.guard import check_request
from faceflow.service.routes.faces import cache_headers
from faceflow.service.state import Services
from faceflow.service.upload import read_image

FACE_PATHS = {
    "/v1/detect": Operation.DETECT,
    "/v1/analyze": Operation.ANALYZE,
    "/v1/annotate": Operation.ANNOTATE,
}
ECHO_PATH = "/v1/echo-size"
_JSON = (b"content-type", b"application/json")


def face_work(defaults: DetectionSettings, operation: Operation, query: bytes) -> FaceWork | None:
    """The route's work for the query string ``query``, parsed as FastAPI parses the route's
    query (the operation's options model, the last of repeated values); None for anything the
    route would refuse, which the route then answers with its documented error."""
    fields = dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True))
    try:
        return FACE_OPTIONS[operation].model_validate(fields).work(operation, defaults)
    except (ValidationError, InvalidParameter):
        return None


class _Recorder:
    """A ``receive`` that keeps every body message it passes on, to replay them later."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.messages: list[Message] = []

    async def __call__(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self.messages.append(message)
        return message

    def replay(self) -> Receive:
        pending = list(self.messages)

        async def receive() -> Message:
            if pending:
                return pending.pop(0)
            return await self._receive()

        return receive


@dataclass(frozen=True, slots=True)
class _Parsed:
    """What one (path, query string) means: the route's work and its cache-key prefix."""

    work: FaceWork
    prefix: KeyPrefix


_MEMO_SIZE = 1024


class HotPath:
    """ASGI layer answering cache hits (and /v1/echo-size) before FastAPI; see the module doc."""

    def __init__(self, app: ASGIApp, services: Callable[[], Services | None]) -> None:
        self.app = app
        self._services = services
        # Clients send the same few option strings over and over: parse each once. Bounded
        # dicts, cleared when full (a client cycling through options only costs re-parsing).
        self._parsed: dict[tuple[Operation, bytes], _Parsed | None] = {}
        self._headers: dict[tuple[str, CacheLevel], list[tuple[bytes, bytes]]] = {}

    def _parse(self, services: Services, operation: Operation, query: bytes) -> _Parsed | None:
        memo = (operation, query)
        if memo in self._parsed:
            return self._parsed[memo]
        work = face_work(services.settings.detection, operation, query)
        parsed = (
            None
            if work is None
            else _Parsed(work, key_prefix(operation.value, work.cache_params()))
        )
        if len(self._parsed) >= _MEMO_SIZE:
            self._parsed.clear()
        self._parsed[memo] = parsed
        return parsed

    def _hit_headers(
        self, key: str, entry: CacheEntry, level: CacheLevel
    ) -> list[tuple[bytes, bytes]]:
        """The response headers of a hit, built once per entry and level."""
        memo = (key, level)
        headers = self._headers.get(memo)
        if headers is None:
            status = CacheStatus.HIT_MEMORY if level is CacheLevel.MEMORY else CacheStatus.HIT_REDIS
            named = {
                "content-type": entry.media_type,
                "content-length": str(len(entry.body)),
                **cache_headers(dict(entry.meta), status),
            }
            headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in named.items()]
            if len(self._headers) >= _MEMO_SIZE:
                self._headers.clear()
            self._headers[memo] = headers
        return headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path")
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        operation = FACE_PATHS.get(path or "")
        services = self._services()
        if services is None or (operation is None and path != ECHO_PATH):
            await self.app(scope, receive, send)
            return
        parsed = self._parse(services, operation, scope["query_string"]) if operation else None
        if operation is not None and parsed is None:
            await self.app(scope, receive, send)
            return
        scope["faceflow.route"] = path
        recorder = _Recorder(receive)
        request = Request(scope, recorder)
        try:
            await check_request(services, request)
            upload = await read_image(request, services.settings.limits.max_upload_bytes)
        except FaceflowError as exc:
            await faceflow_error_response(exc)(scope, receive, send)
            return
        if parsed is None:
            body = b'{"bytes":%d}' % len(upload.data)
            headers = [_JSON, (b"content-length", b"%d" % len(body))]
            await _send_raw(send, body, headers)
            return
        key = key_for_digest(parsed.prefix, content_hash(upload.data))
        entry, level = await services.cache.lookup(key)
        if entry is None:
            if services.cache.computing(key) is False:
                # Nobody computes it yet, so the route would need an inference slot: when there
                # is none, shed now rather than after FastAPI's routing and validation, which
                # under overload cost the CPU the inference processes need.
                try:
                    services.pool.check_admission()
                except FaceflowError as exc:
                    await faceflow_error_response(exc)(scope, receive, send)
                    return
            # A miss: the route computes it (and counts it). Tell the route's guard the checks
            # are done, so a rate limit is not charged twice.
            scope.setdefault("state", {})["guarded"] = True
            await self.app(scope, recorder.replay(), send)
            return
        services.metrics.hit(level)
        await _send_raw(send, entry.body, self._hit_headers(key, entry, level))


async def _send_raw(send: Send, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    """A 200 with ``body`` and ``headers`` (Content-Length included), as bare ASGI messages. The
    hit and the trivial endpoint answer the same way, so the benchmarks' ceiling costs no more
    per response than a hit does."""
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
