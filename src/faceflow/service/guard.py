"""The dependency every /v1 route runs first: API key, then the client's rate limit."""

from __future__ import annotations

from fastapi import Request

from faceflow.errors import AuthError, RateLimited
from faceflow.runtime.pool import PLACE_OWNER
from faceflow.service.metrics import Metrics
from faceflow.service.security import KeyFailures, client_identity
from faceflow.service.state import Services, services_of


async def guard(request: Request) -> None:
    """Authenticate (401/403) and rate-limit (429) the request. (A request the hot path in front
    of the routes checked never reaches a route: it answers it whole.)"""
    await check_request(services_of(request), request)


async def check_request(services: Services, request: Request) -> None:
    """The API-key and rate-limit checks; remembers the key's digest in ``request.state.api_key``
    so job handles can be scoped to it, and the client as the owner of the inference places the
    request takes (``runtime.keep_last_place``)."""
    try:
        lock_out(services.key_failures, services.metrics, request)
        digest = services.api_keys.identify(request)
    except AuthError:
        await count_refused_key(services.key_failures, services.metrics, request)
        raise
    request.state.api_key = digest
    identity = client_identity(request, digest)
    PLACE_OWNER.set(identity)  # this request's own context: no other request sees it
    if services.rate_limit is None:
        return
    try:
        # A storage failure lets the request through (RateLimit.check): it never raises for one.
        await services.rate_limit.check(identity)
    except RateLimited:
        services.metrics.rate_limited.inc()
        raise


async def charge(services: Services, request: Request, extra: int) -> None:
    """Count ``extra`` more requests against the client's rate limit (a batch's further images,
    after the guard counted the request itself); 429 when that exceeds it."""
    if services.rate_limit is None:
        return
    try:
        identity = client_identity(request, request.state.api_key)
        await services.rate_limit.check(identity, extra, counted=1)
    except RateLimited:
        services.metrics.rate_limited.inc()
        raise


def lock_out(key_failures: KeyFailures | None, metrics: Metrics, request: Request) -> None:
    """429 when the request's address is past ``server.key_failure_limit``, whatever its key."""
    if key_failures is None:
        return
    try:
        key_failures.check_locked(request)
    except RateLimited:
        metrics.rate_limited.inc()
        raise


async def count_refused_key(
    key_failures: KeyFailures | None, metrics: Metrics, request: Request
) -> None:
    """Count a request refused for its API key against its address's
    ``server.key_failure_limit``; 429 in place of the 401/403 when the address is past it (keys
    were guessed at line rate: each wrong one cost a sha256 and a 403)."""
    if key_failures is None:
        return
    try:
        await key_failures.count(request)
    except RateLimited:
        metrics.rate_limited.inc()
        raise
