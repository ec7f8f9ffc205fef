"""What the app believes about a request before any route sees it.

* Forwarding headers (``X-Forwarded-For``, ``X-Forwarded-Proto``) only from the reverse proxies
  in ``server.trusted_proxies``: from anyone else they are ignored and the TCP peer is the client,
  so a client cannot pick the address its rate limit and log lines are charged to. Of
  ``X-Forwarded-For`` only the :data:`MAX_FORWARDED_HOPS` hops nearest the server are read.
* With API keys on, every path outside ``/v1/`` (where the routes' guard checks keys and rate
  limits) needs a key unless ``server.public_paths`` lists it: ``/metrics``, ``/docs`` and
  ``/openapi.json`` are closed by default, the probes and the web page open. A missing or wrong
  key counts against its address's ``server.key_failure_limit`` there as on ``/v1/``.
"""

from __future__ import annotations

from typing import Any, cast

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from faceflow.config import ServerSettings
from faceflow.errors import AuthError, FaceflowError, InputError, RateLimited
from faceflow.service.errors import faceflow_error_response
from faceflow.service.guard import count_refused_key, lock_out
from faceflow.service.security import ApiKeys
from faceflow.service.state import Current

GUARDED_PREFIX = "/v1/"


# What a page on another origin (server.cors_origins) may read of an answer: every header faceflow
# sets for its clients. (Without X-Compliance and X-Source such a page could not tell a refused ID
# photo from a good one, nor render it again; without Location, find its job.)
EXPOSED_HEADERS = (
    "X-Cache",
    "X-Cache-Detail",
    "X-Request-ID",
    "Retry-After",
    "X-Face-Count",
    "X-Compliance",
    "X-Source",
    "X-Job-Status",
    "X-Error-Code",
    "Location",
    "Server-Timing",
)


def cors_headers(origin: bytes | None, allowed: list[str]) -> list[tuple[bytes, bytes]]:
    """The CORS headers :class:`JsonCors` gives an answer to a request from ``origin`` (None
    when the request's Origin field was not read), for an answer written below it, by the HTTP
    protocol itself (:mod:`faceflow.service.protocol`): without them a page on an allowed origin
    saw a network error instead of the status. ``allowed``: ``server.cors_origins``; ``*``
    allows any origin, read or not (no credentials are allowed, so no origin is echoed)."""
    exposed = (b"access-control-expose-headers", ", ".join(EXPOSED_HEADERS).encode("latin-1"))
    if "*" in allowed:
        return [(b"access-control-allow-origin", b"*"), exposed]
    if origin is None or origin.decode("latin-1") not in allowed:
        return []
    return [(b"access-control-allow-origin", origin), (b"vary", b"Origin"), exposed]


class JsonCors(CORSMiddleware):
    """Starlette's CORS layer, with a refused preflight answered as every other refusal is: a
    400 ``bad_request`` in the service's JSON with ``X-Error-Code`` (it was text/plain with no
    code: "Disallowed CORS origin"), the CORS headers kept."""

    def preflight_response(self, request_headers: Headers) -> Response:
        answer = super().preflight_response(request_headers)
        if answer.status_code < 400:
            return answer
        refused = bytes(answer.body).decode().removeprefix("Disallowed CORS ")
        error = faceflow_error_response(
            InputError(
                f"this cross-origin request is not allowed ({refused}): see server.cors_origins",
                {"refused": refused},
            )
        )
        for name, value in answer.headers.items():
            if name.startswith("access-control-") or name == "vary":
                error.headers[name] = value
        return error


MAX_FORWARDED_HOPS = 16
"""Hops of ``X-Forwarded-For`` read, nearest the server first. Each proxy adds one, and a chain
of CDN, load balancer and reverse proxy holds a few; the rest of the header is whatever the client
wrote. uvicorn split the whole header and looked up each hop from the right until an untrusted
one: 6,300 hops a client wrote ahead of its own address (64 KB, as a proxy passes them on) made a
cache hit cost the event loop 0.69 ms instead of 0.15, and 5,800 trusted ones (a client inside a
trusted network) 2.7 ms."""

_FORWARDED_FOR = b"x-forwarded-for"


class NearestHops:
    """``X-Forwarded-For`` cut to its :data:`MAX_FORWARDED_HOPS` hops nearest the server (one
    field, its lines joined as uvicorn joins them), before uvicorn's proxy-header handling reads
    it; a request with fewer hops passes untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers: list[tuple[bytes, bytes]] = scope["headers"]
            hops = [value for name, value in headers if name == _FORWARDED_FOR]
            if hops and sum(v.count(b",") for v in hops) + len(hops) > MAX_FORWARDED_HOPS:
                nearest = b",".join(hops).rsplit(b",", MAX_FORWARDED_HOPS)[1:]
                kept = [(n, v) for n, v in headers if n != _FORWARDED_FOR]
                kept.append((_FORWARDED_FOR, b",".join(nearest)))
                scope = {**scope, "headers": kept}
        await self.app(scope, receive, send)


def trusted_forwarding(app: ASGIApp, settings: ServerSettings) -> ASGIApp:
    """``app`` behind uvicorn's proxy-header handling for exactly ``settings.trusted_proxies``
    (the same code ``uvicorn --forwarded-allow-ips`` runs), reading the nearest hops of
    ``X-Forwarded-For`` only (:class:`NearestHops`); ``app`` itself when none is trusted, so the
    headers are never read."""
    if not settings.trusted_proxies:
        return app
    # uvicorn types ASGI apps with its own protocols; the callables are the same.
    proxies = ProxyHeadersMiddleware(cast(Any, app), list(settings.trusted_proxies))
    return NearestHops(cast(ASGIApp, proxies))


def route_path(scope: Scope) -> str:
    """The request's path as the routes match it: without the root path (``uvicorn
    --root-path``, a proxy's prefix), which the server writes in front of ``path`` too. As
    Starlette's routing strips it; public paths and the web page's rules are paths of the app."""
    path: str = scope.get("path", "")
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        rest = path[len(root_path) :]
        if rest[:1] in ("", "/"):
            return rest
    return path


class PublicPaths:
    """Exact paths, plus ``PREFIX/*`` entries covering every path below ``PREFIX/``."""

    def __init__(self, entries: list[str]) -> None:
        self._exact = frozenset(e for e in entries if not e.endswith("/*"))
        self._prefixes = tuple(e[:-1] for e in entries if e.endswith("/*"))

    def __contains__(self, path: object) -> bool:
        if not isinstance(path, str):
            return False
        return path in self._exact or path.startswith(self._prefixes)


class KeyGate:
    """With API keys on: 401/403 for a path outside ``/v1/`` that is not public."""

    def __init__(self, app: ASGIApp, settings: ServerSettings, current: Current) -> None:
        self.app = app
        self._keys = ApiKeys(settings.api_key_hashes)
        self._public = PublicPaths(settings.public_paths)
        self._current = current

    @property
    def enabled(self) -> bool:
        return self._keys.enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = route_path(scope)
        if (
            scope["type"] == "http"
            and not path.startswith(GUARDED_PREFIX)
            and path not in self._public
        ):
            services = self._current.services
            try:
                if services is not None:
                    lock_out(services.key_failures, services.metrics, Request(scope))
                self._keys.identify(Request(scope))
            except AuthError as refused:
                await self._refuse(refused, scope, receive, send)
                return
            except RateLimited as locked_out:
                await faceflow_error_response(locked_out)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _refuse(self, refused: AuthError, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer ``refused``, or 429 when its address is past ``server.key_failure_limit``."""
        answer: FaceflowError = refused
        services = self._current.services
        if services is not None:
            try:
                await count_refused_key(services.key_failures, services.metrics, Request(scope))
            except RateLimited as limited:
                answer = limited
        await faceflow_error_response(answer)(scope, receive, send)
