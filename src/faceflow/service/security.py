"""API keys and per-client rate limits."""

from __future__ import annotations

import hashlib
import hmac
import math
import time

from limits import RateLimitItem, parse_many
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from starlette.requests import Request

from faceflow.config import ServerSettings
from faceflow.errors import AuthError, Forbidden, RateLimited


def hash_api_key(key: str) -> str:
    """The sha256 hex digest under which an API key is stored in settings."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def presented_key(request: Request) -> str | None:
    """The key from ``Authorization: Bearer <key>`` or ``X-API-Key``, if either is present."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return request.headers.get("x-api-key") or None


class ApiKeys:
    """Checks presented keys against the configured sha256 digests, in constant time."""

    def __init__(self, digests: list[str]) -> None:
        self._digests = [bytes.fromhex(d) for d in digests]

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def identify(self, request: Request) -> str | None:
        """The digest of the request's valid key; None when auth is off.

        Raises 401 when a key is required and none was presented, 403 when it is not valid.
        """
        if not self._digests:
            return None
        key = presented_key(request)
        if key is None:
            raise AuthError("an API key is required: send 'Authorization: Bearer <key>'")
        digest = hashlib.sha256(key.encode("utf-8")).digest()
        # Compare against every digest so the time taken does not depend on which one matched.
        matched = False
        for known in self._digests:
            matched |= hmac.compare_digest(digest, known)
        if not matched:
            raise Forbidden("the API key is not valid")
        return digest.hex()


def client_identity(request: Request, key_digest: str | None) -> str:
    """Who a rate limit applies to: the API key when there is one, else the client's address
    (the TCP peer, or what a trusted proxy forwarded: see faceflow.service.edge)."""
    if key_digest is not None:
        return f"key:{key_digest[:32]}"
    host = request.client.host if request.client else "unknown"
    return f"ip:{host}"


class RateLimit:
    """Per-client limits in `limits` notation (e.g. '10/second;100/minute'), moving window."""

    def __init__(self, rules: list[RateLimitItem], storage: Storage) -> None:
        self._rules = rules
        self._limiter = MovingWindowRateLimiter(storage)

    @classmethod
    def from_settings(cls, settings: ServerSettings) -> RateLimit | None:
        if not settings.rate_limit:
            return None
        uri = settings.rate_limit_storage
        if uri.startswith("memory://"):
            storage = storage_from_string("async+" + uri)
        else:
            # redis-py is already a dependency; limits would otherwise want coredis.
            storage = storage_from_string("async+" + uri, implementation="redispy")
        if not isinstance(storage, Storage):
            raise TypeError(f"rate limit storage {uri!r} has no asyncio implementation")
        return cls(parse_many(settings.rate_limit), storage)

    async def check(self, identity: str) -> None:
        """Count one request for ``identity``; 429 with Retry-After when a limit is exceeded."""
        for rule in self._rules:
            if not await self._limiter.hit(rule, identity):
                stats = await self._limiter.get_window_stats(rule, identity)
                retry = max(1, math.ceil(stats.reset_time - time.time()))
                raise RateLimited(
                    f"rate limit {rule} exceeded; retry in {retry} s",
                    retry_after_s=retry,
                    details={"limit": str(rule)},
                )
