"""The entry of detect / analyze / annotate: a cache hit answered without FastAPI.

A cache hit needs the upload's bytes, the request's options and one lookup; FastAPI's routing,
dependency and validation layers cost four times that on this path (measured: ~1,200 hits/s per
process through FastAPI, ~4,900 for a bare ASGI handler). So this ASGI layer, in front of the
FastAPI app, parses the options with the route's own model (:mod:`faceflow.operations`, memoised
per query string), reads the upload with the same code the routes use, applies the same API-key
and rate-limit checks, builds the same cache key and answers a hit itself. A miss goes on to the
routes' own :func:`~faceflow.service.routes.faces.answer` with the upload, key and work it
already has, so an upload is read, hashed and parsed once. Only a request the routes would
refuse — an unknown option, a value out of range — goes to FastAPI untouched, which answers the
documented error. It is the entry of ``/v1/echo-size`` too, the HTTP ceiling benchmarks compare
with: the route's own :func:`~faceflow.service.routes.system.echo_size_body`, sent as a hit is.

It can never answer other than the routes would: a test checks both parse generated query
strings into the same work.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl

from pydantic import ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from faceflow.cache.compute import cached_failure
from faceflow.cache.entry import FAILURE_MEDIA_TYPE, CacheEntry
from faceflow.cache.keys import KeyPrefix, key_for_digest, key_prefix
from faceflow.cache.observer import CacheLevel
from faceflow.cache.tiered import CacheStatus
from faceflow.config import DetectionSettings
from faceflow.domain import Operation
from faceflow.errors import FaceflowError, InvalidParameter
from faceflow.imaging.formats import sniff_format
from faceflow.operations.faces import FACE_OPTIONS, FaceWork
from faceflow.operations.registry import offers
from faceflow.runtime.pool import PLACE_OWNER
from faceflow.service.answers import (
    ABORT_CONNECTION,
    SLICE_BYTES,
    refusal,
    send_taken,
    try_take,
)
from faceflow.service.edge import route_path
from faceflow.service.errors import error_answer, faceflow_error_response
from faceflow.service.guard import check_request
from faceflow.service.middleware import (
    CLIENT_CLOSED,
    NOSNIFF,
    RequestContext,
    stopped_line,
    with_request_id,
)
from faceflow.service.query import query_refusal
from faceflow.service.routes.faces import answer, cache_headers
from faceflow.service.routes.system import echo_size_body
from faceflow.service.security import address_identity
from faceflow.service.state import Current, Services
from faceflow.service.upload import BodyLimits, BodyReader, receive_chunks, receive_upload

FACE_PATHS = {
    "/v1/detect": Operation.DETECT,
    "/v1/analyze": Operation.ANALYZE,
    "/v1/annotate": Operation.ANNOTATE,
}
ECHO_PATH = "/v1/echo-size"
_JSON = (b"content-type", b"application/json")
_REQUEST_ID = b"x-request-id"
_CLOSE = (b"connection", b"close")


def face_work(defaults: DetectionSettings, operation: Operation, query: bytes) -> FaceWork | None:
    """The route's work for the query string ``query``, parsed as FastAPI parses the route's
    query (the operation's options model; a query with an option given twice never gets here,
    :func:`~faceflow.service.query.query_refusal`); None for anything the route would refuse,
    which the route then answers with its documented error."""
    fields = dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True))
    try:
        return FACE_OPTIONS[operation].model_validate(fields).work(operation, defaults)
    except (ValidationError, InvalidParameter):
        return None


@dataclass(frozen=True, slots=True)
class _Parsed:
    """What one (path, query string) means: the route's work and its cache-key prefix."""

    work: FaceWork
    prefix: KeyPrefix


_MEMO_SIZE = 1024
# Real option strings are a few dozen bytes; a query string may be up to server.max_header_bytes
# (64 KiB), and a memo of 1,024 of those would hold 64 MB for one client's trouble.
_MEMO_QUERY_BYTES = 1024


class HotPath:
    """The ASGI entry of the face operations (and /v1/echo-size) before FastAPI; see the module
    doc."""

    def __init__(self, app: ASGIApp, current: Current) -> None:
        self.app = app
        self.current = current
        # Clients send the same few option strings over and over: parse each once. Bounded
        # dicts, cleared when full (a client cycling through options only costs re-parsing).
        self._parsed: dict[tuple[Operation, bytes], _Parsed | None] = {}
        self._headers: dict[tuple[str, CacheLevel], list[tuple[bytes, bytes]]] = {}

    def parse(self, services: Services, operation: Operation, query: bytes) -> _Parsed | None:
        memo = (operation, query)
        if memo in self._parsed:
            return self._parsed[memo]
        if query_refusal(query) is not None:
            return None  # the layers refuse it (QueryLimit), before anything parses it
        work = face_work(services.settings.detection, operation, query)
        # An operation this server does not offer goes to the route, which answers 404
        # operation_disabled: a shared cache may hold its answers, made by other nodes.
        parsed = (
            None
            if work is None or not offers(operation, services.settings.runtime)
            else _Parsed(work, key_prefix(operation.value, work.cache_params()))
        )
        if len(query) <= _MEMO_QUERY_BYTES:
            if len(self._parsed) >= _MEMO_SIZE:
                self._parsed.clear()
            self._parsed[memo] = parsed
        return parsed

    def hit_headers(
        self, key: str, entry: CacheEntry, level: CacheLevel
    ) -> list[tuple[bytes, bytes]]:
        """The response headers of a hit, built once per entry and level."""
        memo = (key, level)
        headers = self._headers.get(memo)
        if headers is None:
            status = CacheStatus.hit_at(level)
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
        # The app's path: under a root path (a proxy's prefix) the server writes it in front.
        path = route_path(scope)
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        operation = FACE_PATHS.get(path)
        services = self.current.services
        if services is None or (operation is None and path != ECHO_PATH):
            await self.app(scope, receive, send)
            return
        parsed = self.parse(services, operation, scope["query_string"]) if operation else None
        if operation is not None and parsed is None:
            await self.app(scope, receive, send)
            return
        scope["faceflow.route"] = path
        if services.api_keys.enabled or services.rate_limit is not None:
            try:
                await check_request(services, Request(scope, receive))
            except FaceflowError as exc:
                await faceflow_error_response(exc)(scope, receive, send)
                return
        response = await self.answer(scope, receive, send, services, parsed, [])
        if response is not None:
            await response(scope, receive, send)

    async def answer(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        services: Services,
        parsed: _Parsed | None,
        extra: list[tuple[bytes, bytes]],
    ) -> Response | None:
        """The hot path's steps once the request is known to be its own, for this layer and for
        :class:`Entry`: None once a hit (or the echo, ``parsed`` None) is sent with ``extra``
        headers besides its own, else the response to send (an error, or a miss's answer)."""
        headers = scope["headers"]
        try:
            if parsed is None:  # /v1/echo-size: the route's own answer, sent as a hit is
                echo = await echo_size_body(services, headers, receive_chunks(receive))
                length = (b"content-length", b"%d" % len(echo))
                await send_taken(send, None, 200, [_JSON, length, *extra], echo)
                return None
            upload = await receive_upload(
                headers, receive, services.settings.limits.max_upload_bytes
            )
        except FaceflowError as exc:
            return faceflow_error_response(exc)
        key = key_for_digest(parsed.prefix, upload.content_hash())
        entry, level = await services.cache.lookup(key)
        if entry is None:
            return await self._miss(services, scope, receive, key, parsed.work, upload.data)
        services.metrics.hit(level)
        # Tested here first so that a result's hit pays one comparison for it, no call.
        if entry.media_type == FAILURE_MEDIA_TYPE:
            failure = cached_failure(entry, CacheStatus.hit_at(level))
            if failure is not None:  # always (decode_entry keeps no other), for mypy
                return faceflow_error_response(failure)
        hit_headers = self.hit_headers(key, entry, level)
        budget = services.answer_budget
        if len(entry.body) > SLICE_BYTES:  # counted against the budget for its client
            own_places(services, scope)
        if not try_take(budget, len(entry.body)):
            return faceflow_error_response(refusal(budget))
        # Sent as the echo is, so the benchmarks' ceiling costs no more per response than a hit;
        # a large body in slices, against the budget it was just taken from (a hit's body is
        # its own copy of the cached one).
        answer_headers = [*hit_headers, *extra] if extra else hit_headers
        await send_taken(send, budget, 200, answer_headers, entry.body, scope.get(ABORT_CONNECTION))
        return None

    @staticmethod
    async def _miss(
        services: Services, scope: Scope, receive: Receive, key: str, work: FaceWork, data: bytes
    ) -> Response:
        """Compute the answer with the routes' own code (:func:`answer`), from the upload, key
        and work this layer already has: nothing is read, parsed or hashed a second time."""
        own_places(services, scope)
        try:
            sniff_format(data)  # not an image: 415, before any place in the pool (see answer)
            if services.cache.computing(key) is False:
                # Nobody computes it yet, so it needs an inference slot: when there is none,
                # shed now, before the upload is sent to a worker.
                services.pool.check_admission()
            gone = Request(scope, receive).is_disconnected
            return await answer(services, key, work, data, gone=gone, missed=True)
        except ClientDisconnect:
            raise  # nobody to answer: the request's context counts and logs it 499
        except Exception as exc:  # answered as the app's handlers answer it (a 500 is logged)
            return await error_answer(Request(scope, receive), exc)


def own_places(services: Services, scope: Scope) -> None:
    """Make the request's address the owner of the inference places and answer bytes it takes
    (``runtime.keep_last_place``) when no :func:`check_request` ran, which owns them by its key
    or address."""
    if not services.api_keys.enabled and services.rate_limit is None:
        client = scope.get("client")
        PLACE_OWNER.set(address_identity(client[0] if client else "unknown"))


class Entry:
    """The app's first layer (after trusted forwarding): a face operation's upload that the hot
    path would serve and the layers between would only pass on is served here, from the first
    layer, with those layers' work done in line; every other request goes through the layers
    (``layered``: request context → body limits → … → :class:`HotPath`).

    In line means the same code and answers: the request id, access log line and request
    metrics of :class:`~faceflow.service.middleware.RequestContext`, the upload budget and body
    deadline of :class:`~faceflow.service.upload.BodyLimits` (its :class:`BodyReader`), then
    :class:`HotPath`'s own steps. Taken only when nothing else could act on the request: a
    parseable face-operation query, no API keys or rate limits configured (their checks run in
    the hot path), no CORS layer, and a body whose Content-Length fits the upload budget now;
    otherwise (a chunked body, a budget refusal) the layers answer as always. A hit then costs
    one coroutine and two ``send`` calls instead of three layers' wrappers around each message.
    """

    def __init__(
        self, layered: ASGIApp, hot: HotPath, context: RequestContext, limits: BodyLimits
    ) -> None:
        self.layered = layered
        """The layers every other request goes through."""
        self._hot = hot
        self._context = context
        self._limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The inference places a request takes are owned for its life only (PLACE_OWNER is set
        # by check_request or a miss): an app run in its caller's task, as an in-process client
        # runs it, must not leave the caller owning them.
        token = PLACE_OWNER.set(None)
        try:
            await self._route(scope, receive, send)
        finally:
            PLACE_OWNER.reset(token)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path = route_path(scope)
            operation = FACE_PATHS.get(path)
            services = self._hot.current.services
            if (
                (operation is not None or path == ECHO_PATH)
                and services is not None
                and not services.api_keys.enabled
                and services.rate_limit is None
            ):
                parsed = (
                    self._hot.parse(services, operation, scope["query_string"])
                    if operation is not None
                    else None
                )
                if operation is None or parsed is not None:
                    declared = self._limits.declared_fits(scope["headers"])
                    if declared is not None:
                        await self._serve(scope, receive, send, services, parsed, declared)
                        return
        await self.layered(scope, receive, send)

    async def _serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        services: Services,
        parsed: _Parsed | None,
        declared: int,
    ) -> None:
        context = self._context
        request_id = context.begin(scope)
        start = time.perf_counter()
        scope["faceflow.route"] = route_path(scope)
        status = 500
        error_code = ""
        cut_short = ""
        body = BodyReader(receive, self._limits, declared, scope.get("client"))
        try:
            request_id_header = (_REQUEST_ID, request_id.encode("latin-1"))
            response = await self._hot.answer(
                scope, body.receive, send, services, parsed, [request_id_header, NOSNIFF]
            )
            if response is None:
                status = 200
                return

            async def send_with_id(message: Message) -> None:
                nonlocal status, error_code
                if message["type"] == "http.response.start":
                    if body.failed:
                        message["headers"] = [*message.get("headers", []), _CLOSE]
                    status, error_code = with_request_id(message, request_id)
                await send(message)

            await response(scope, body.receive, send_with_id)
        except ClientDisconnect:
            status = CLIENT_CLOSED  # as RequestContext counts and logs it
        except asyncio.CancelledError as exc:
            status, error_code, cut_short = stopped_line(scope, exc, status, error_code)
            raise
        finally:
            body.close()
            elapsed = time.perf_counter() - start
            context.done(scope, request_id, status, error_code, elapsed, cut_short)
