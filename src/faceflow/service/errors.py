"""The one place errors become HTTP responses: ``{"error": {"code", "message", ...}}``."""

from __future__ import annotations

import logging

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match

from faceflow.cache.tiered import CacheStatus
from faceflow.errors import FaceflowError, RetryableError, TooLarge
from faceflow.operations.parse import option_error, option_names
from faceflow.service.middleware import CLIENT_CLOSED, loggable_path, mark_logged

log = logging.getLogger(__name__)

_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "too_large",
    415: "unsupported_format",
}


def error_response(status: int, code: str, message: str, **details: object) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, **details}}, status_code=status
    )


def faceflow_error_response(exc: FaceflowError) -> JSONResponse:
    response = JSONResponse({"error": exc.to_dict()}, status_code=exc.status)
    if isinstance(exc, RetryableError):
        response.headers["Retry-After"] = str(exc.retry_after_s)
    if isinstance(exc, TooLarge):
        # The rest of an oversized body may still be on its way: closing the connection stops it,
        # where keep-alive would make the server read and discard all of it.
        response.headers["Connection"] = "close"
    response.headers["X-Error-Code"] = exc.code
    if exc.cache_status is not None:
        # A deterministic failure, answered through the cache as a result is: a miss only for
        # the request that ran the work (routes/faces.cache_headers).
        response.headers["X-Cache"] = CacheStatus(exc.cache_status).label
        response.headers["X-Cache-Detail"] = exc.cache_status
    return response


async def _faceflow_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FaceflowError)
    if exc.status >= 500 and not isinstance(exc, RetryableError):
        log.error("request failed: %s: %s", exc.code, exc.message)
    return faceflow_error_response(exc)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return faceflow_error_response(option_error(exc.errors(), _route_options(request)))


def _route_options(request: Request) -> set[str]:
    """The query options of the route the request was for (its options model's fields, or a
    plain parameter's name), for naming the option a misspelt one was meant to be."""
    dependant = getattr(request.scope.get("route"), "dependant", None)
    names: set[str] = set()
    for param in getattr(dependant, "query_params", ()):
        annotation = param.field_info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names |= option_names(annotation)
        else:
            names.add(param.alias)
    return names


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "bad_request" if exc.status_code < 500 else "internal")
    response = error_response(exc.status_code, code, str(exc.detail))
    response.headers["X-Error-Code"] = code
    if exc.headers:
        response.headers.update(exc.headers)
    # The routes' methods, over Starlette's Allow (the first route's alone); none for a path no
    # route has (the web page's files), whose 405 names its own.
    if exc.status_code == 405 and (allowed := _allowed_methods(request)):
        response.headers["Allow"] = ", ".join(allowed)
    return response


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route of this path answers. Starlette's own ``Allow`` names only the
    first route matching the path (GET of ``/v1/jobs/{handle}``, not its DELETE). Asked of the
    router itself, method by method, so included routers are searched as routing does. HEAD
    wherever GET is: every GET route answers it (``middleware.HeadAsGet``), and ``Allow: GET``
    said it would not."""
    scope = {
        "type": "http",
        "path": request.url.path,
        "root_path": request.scope.get("root_path", ""),
    }
    allowed = {
        method
        for method in _METHODS
        if any(
            route.matches({**scope, "method": method})[0] is Match.FULL
            for route in request.app.router.routes
        )
    }
    if "GET" in allowed:
        allowed.add("HEAD")
    return [method for method in _METHODS if method in allowed]


async def _client_gone(request: Request, exc: Exception) -> Response:
    # The client hung up while its body was being read: routine, not a server error (the
    # catch-all below would log a traceback and count a 500). Nobody reads this answer; its
    # status is what the request context (faceflow.service.middleware) counts and logs.
    return Response(status_code=CLIENT_CLOSED)


async def _unexpected(request: Request, exc: Exception) -> Response:
    # Never leak a traceback to the client; it goes to the log with the request id (in the
    # text too: only the JSON lines carry a record's extra fields). The path cut as the access
    # line cuts it: a client chooses it, up to 64 KiB. Logged here only: Starlette raises the
    # exception on after this answer, and the protocol then leaves it (mark_logged).
    request_id = request.scope.get("state", {}).get("request_id")
    log.exception(
        "unhandled error on %s %s (request %s)",
        request.method,
        loggable_path(request.url.path),
        request_id or "-",
        extra={"request_id": request_id},
    )
    mark_logged(exc)
    response = error_response(500, "internal", "internal error; see the server log")
    response.headers["X-Error-Code"] = "internal"
    return response


async def error_answer(request: Request, exc: Exception) -> Response:
    """What the app's handlers answer for ``exc``, for the hot path in front of the app, which
    finishes a cache miss itself (FastAPI's handlers never see its errors)."""
    if isinstance(exc, FaceflowError):
        return await _faceflow_error(request, exc)
    return await _unexpected(request, exc)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(FaceflowError, _faceflow_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(Exception, _unexpected)
