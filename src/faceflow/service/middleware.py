"""Request id, access log and request metrics, as plain ASGI (no per-request task or copy)."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Callable

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from faceflow.service.metrics import Metrics

log = logging.getLogger("faceflow.access")

CLIENT_CLOSED = 499
"""The status a request is counted and logged with when its client went away before the answer
was all sent (nginx's "client closed request"): mid-upload, before anything was sent, or with a
streamed answer cut short (its access line says how many bytes went out)."""

UNDELIVERED = "faceflow.undelivered"
"""Set in a request's scope by the HTTP protocol (service/protocol.py) when the app sent an
answer, or part of one, after its client had gone: uvicorn drops such a message silently, and a
request whose client left while it was computed was counted and logged as the 200 it made."""

_REQUEST_ID = b"x-request-id"
# Every answer is what its Content-Type says: a browser must not read an error's JSON (which
# quotes what the client sent) or an image as anything else.
NOSNIFF = (b"x-content-type-options", b"nosniff")
_ERROR_CODE = b"x-error-code"
_CLIENT_ID = re.compile(r"[A-Za-z0-9._\-]{1,64}")


STOPPED_ANSWER = "faceflow.stopped_answer"
"""The scope's key for what answers a request whose task the server cancelled as it stopped
for good (service/protocol.py puts it there): ``503 unavailable`` with ``Retry-After`` if
nothing of its answer was sent yet (True), else its connection closed at once (False), so that
a client never takes a cut answer for a whole one."""

STOPPED_STATUS = 503
STOPPED_CODE = "unavailable"
_LOGGED = "_faceflow_logged"


def mark_logged(exc: BaseException) -> None:
    """Say that the app has logged and answered ``exc`` (its error handler, or
    :func:`answer_stopped`): the HTTP protocol then neither logs it again, as uvicorn does for
    every exception leaving the app (a fault was logged twice, the second time without the
    request's id), nor answers it (service/protocol.py)."""
    setattr(exc, _LOGGED, True)


def is_logged(exc: BaseException) -> bool:
    return getattr(exc, _LOGGED, False) is True


def answer_stopped(scope: Scope, exc: asyncio.CancelledError) -> bool | None:
    """Answer a request cancelled from outside while the app ran it: by uvicorn when its
    graceful drain's time is over, or at a second Ctrl-C (its force quit), which cancels every
    request still running. uvicorn answered each ``500 Internal Server Error`` in plain text
    and logged a traceback; now it gets :data:`STOPPED_ANSWER`'s answer, and the cancel goes on
    unlogged. True: answered 503; False: the answer under way was cut; None: not served
    through faceflow's protocol (an in-process client), the cancel left as it came."""
    answer: Callable[[], bool] | None = scope.get(STOPPED_ANSWER)
    if answer is None:
        return None
    mark_logged(exc)
    return answer()


MAX_LOGGED_PATH = 512
"""Characters of a request's path in its access line: a path may be 64 KiB (the header limit),
and each 404 for one wrote a line that long."""


def loggable_path(path: str) -> str:
    if len(path) <= MAX_LOGGED_PATH:
        return path
    return f"{path[:MAX_LOGGED_PATH]}…(+{len(path) - MAX_LOGGED_PATH} characters)"


class RequestContext:
    """Gives every request an id (the client's ``X-Request-ID`` if it is sane), echoes it in the
    response, logs one access line and counts the request by route template and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = self.begin(scope)
        start = time.perf_counter()
        status = 500
        error_code = ""
        sent: int | None = None  # body bytes sent while the answer is unfinished, else None
        # A HEAD's answer is whole with its headers: its client may leave once it has them, and
        # the GET it is answered as (HeadAsGet) is then cut short, a file's stream among them.
        head = scope["method"] == "HEAD"

        async def send_with_id(message: Message) -> None:
            nonlocal status, error_code, sent
            if message["type"] == "http.response.start":
                status, error_code = with_request_id(message, request_id)
                sent = None if head else 0
            elif message["type"] == "http.response.body" and sent is not None:
                sent = sent + len(message.get("body", b"")) if message.get("more_body") else None
            await send(message)

        cut_short = ""
        try:
            await self.app(scope, receive, send_with_id)
            if sent is not None:
                # A streamed answer the app stopped sending because its client went away (a
                # batch's slices): it was counted as the 200 it began as, as if delivered.
                status, cut_short = CLIENT_CLOSED, f"cut short: {sent} bytes of a {status}"
        except ClientDisconnect:
            # The client hung up mid-upload: routine on the internet, not a server error. Nobody
            # is left to answer; the access line below records it.
            status = CLIENT_CLOSED
        except asyncio.CancelledError as exc:
            status, error_code, cut_short = stopped_line(scope, exc, status, error_code)
            raise
        finally:
            elapsed = time.perf_counter() - start
            self.done(scope, request_id, status, error_code, elapsed, cut_short)

    @staticmethod
    def begin(scope: Scope) -> str:
        """The request's id (the client's, if sane), kept in the scope's state."""
        incoming = None
        for name, value in scope["headers"]:
            if name == _REQUEST_ID:
                incoming = value.decode("latin-1")
                break
        request_id = (
            incoming if incoming and _CLIENT_ID.fullmatch(incoming) else os.urandom(16).hex()
        )
        scope.setdefault("state", {})["request_id"] = request_id
        return request_id

    def done(
        self,
        scope: Scope,
        request_id: str,
        status: int,
        error_code: str,
        elapsed: float,
        cut_short: str = "",
    ) -> None:
        """Count and log the request once it is answered (or its client is gone); ``cut_short``
        says what was sent of an answer its client did not wait for."""
        if scope.get(UNDELIVERED) and status != CLIENT_CLOSED:
            cut_short = cut_short or f"not delivered: its client left before the {status}"
            status = CLIENT_CLOSED
        route = scope.get("route")
        # FastAPI's route template, or the path the hot path answered, or the web page's label
        # (WEB_PAGE_ROUTE, for any path no route has), or "unmatched" (the web page turned off).
        template = getattr(route, "path", None) or scope.get("faceflow.route") or "unmatched"
        self.metrics.request_done(template, scope["method"], status, elapsed)
        if error_code:
            self.metrics.errors.labels(error_code).inc()
        if log.isEnabledFor(logging.INFO):
            client = scope.get("client")
            # An error's code follows its status: a 400 line says which of the 400s it was.
            log.info(
                "%s %s %s %d%s %.1fms%s",
                client[0] if client else "-",
                scope["method"],
                loggable_path(scope["path"]),
                status,
                f" {error_code}" if error_code else "",
                elapsed * 1000,
                f" ({cut_short})" if cut_short else "",
                extra={
                    "request_id": request_id,
                    "client": client[0] if client else None,
                    "status": status,
                    "route": template,
                    "ms": round(elapsed * 1000, 2),
                    "error_code": error_code or None,
                    "cut_short": cut_short or None,
                },
            )


def stopped_line(
    scope: Scope, exc: asyncio.CancelledError, status: int, error_code: str
) -> tuple[int, str, str]:
    """The status, error code and note of a request's access line once :func:`answer_stopped`
    has dealt with its cancel (``status`` and ``error_code`` as they were before it)."""
    answered = answer_stopped(scope, exc)
    if answered:
        return STOPPED_STATUS, STOPPED_CODE, "the server stopped"
    if answered is None:
        return status, error_code, "cancelled"
    return status, error_code, "cut short: the server stopped"


HEAD_REQUEST = "faceflow.head"
"""Set in the scope :class:`HeadAsGet` hands on for a ``HEAD``: an app that answers ``HEAD``
itself (the files, :mod:`faceflow.service.files`) may do so without making the body."""


class HeadAsGet:
    """``HEAD`` on any ``GET`` route: the status and headers the ``GET`` would have, no body
    (RFC 9110 §9.3.2). Uptime monitors and load balancers probe with ``HEAD``; FastAPI's routes
    answer only the methods they declare, so ``HEAD /healthz`` was a 405.

    The inner app sees a copy of the scope with ``GET`` (uvicorn keeps reading the method from
    its own scope to know that no body may go out); the route it matched is copied back for the
    request's metrics."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        as_get = {**scope, "method": "GET", HEAD_REQUEST: True}

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        try:
            await self.app(as_get, receive, headers_only)
        finally:
            for key in ("route", "faceflow.route"):
                if key in as_get:
                    scope[key] = as_get[key]


def with_request_id(message: Message, request_id: str) -> tuple[int, str]:
    """Put ``request_id`` into the ``http.response.start`` ``message``'s headers (in place of
    any the app set), with ``X-Content-Type-Options: nosniff``; its status and its error code
    ("" for none)."""
    status: int = message["status"]
    # A plain list append, not MutableHeaders (which decodes and rescans the list): a copy, as
    # a hit's header list is shared by every hit on that entry.
    headers = [
        (name, value) for name, value in message.get("headers", ()) if name.lower() != _REQUEST_ID
    ]
    headers.append((_REQUEST_ID, request_id.encode("latin-1")))
    headers.append(NOSNIFF)
    message["headers"] = headers
    error_code = ""
    if status >= 400:  # only error answers carry a code
        for name, value in headers:
            if name.lower() == _ERROR_CODE:
                error_code = value.decode("latin-1")
                break
    return status, error_code
