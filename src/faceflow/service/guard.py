"""The dependency every /v1 route runs first: API key, then the client's rate limit."""

from __future__ import annotations

import logging

from fastapi import Request

from faceflow.errors import RateLimited
from faceflow.service.security import client_identity
from faceflow.service.state import Services, services_of

log = logging.getLogger(__name__)


async def guard(request: Request) -> None:
    """Authenticate (401/403) and rate-limit (429) the request. (A request the hot path in front
    of the routes checked never reaches a route: it answers it whole.)"""
    await check_request(services_of(request), request)


async def check_request(services: Services, request: Request) -> None:
    """The API-key and rate-limit checks; remembers the key's digest in ``request.state.api_key``
    so job handles can be scoped to it."""
    digest = services.api_keys.identify(request)
    request.state.api_key = digest
    if services.rate_limit is None:
        return
    try:
        await services.rate_limit.check(client_identity(request, digest))
    except RateLimited:
        services.metrics.rate_limited.inc()
        raise
    except Exception:  # the limiter's storage (e.g. Redis) failed: serve rather than refuse
        log.warning("rate-limit storage unavailable; request let through", exc_info=True)
