"""API keys and per-client rate limits."""

from __future__ import annotations

import asyncio
import bisect
import functools
import hashlib
import hmac
import ipaddress
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable

from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from starlette.requests import Request

from faceflow.cache.breaker import CircuitBreaker
from faceflow.cache.redis_cache import OffLoopTLSPool
from faceflow.config import ServerSettings
from faceflow.errors import AuthError, Forbidden, RateLimited

log = logging.getLogger(__name__)


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
    (the TCP peer, or what a trusted proxy forwarded: see faceflow.service.edge), as
    :func:`address_identity` groups it."""
    if key_digest is not None:
        return f"key:{key_digest[:32]}"
    return address_identity(request.client.host if request.client else "unknown")


def refused_key_identity(request: Request) -> str:
    """Whose tally a missing or wrong API key counts against: its client address, apart from
    the address's own rate limit."""
    return "refused-" + address_identity(request.client.host if request.client else "unknown")


IPV6_CLIENT_PREFIX = 64
"""The IPv6 network a rate limit treats as one client. A subscriber line or a server is given a
whole /64 (RFC 6177) and may take a new address in it for every request, free: limited per
address, such a client was never limited at all."""


@functools.lru_cache(maxsize=4096)
def address_identity(host: str) -> str:
    """The rate-limit identity of a client address: an IPv4 address as it is (also when it
    arrives IPv4-mapped, ``::ffff:192.0.2.1``), an IPv6 address by its /64, anything else (a
    Unix socket's peer) as it is."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"ip:{host}"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"ip:{address.ipv4_mapped}"
        return f"ip:{ipaddress.IPv6Network((address, IPV6_CLIENT_PREFIX), strict=False)}"
    return f"ip:{address}"


STORAGE_TIMEOUT_S = 0.1
"""The longest a request waits on the rate-limit storage (a Redis) before it is let through."""
STORAGE_FAILURES = 3
"""Consecutive storage failures after which requests stop asking it for ``STORAGE_RETRY_S``."""
STORAGE_RETRY_S = 2.0


class RateLimit:
    """Per-client limits in `limits` notation (e.g. '10/second;100/minute'), moving window.

    When its storage (a Redis) fails or is slow, requests are let through rather than refused:
    a rate limit protects the service, it must not take it down. After ``STORAGE_FAILURES`` in a
    row a breaker stops asking for ``STORAGE_RETRY_S`` at a time (a dead Redis cost each request
    a connection attempt, and each logged a traceback); the outage is logged when it begins and
    when it ends, and each failure is counted in ``faceflow_redis_errors_total{op="rate_limit"}``.
    """

    def __init__(
        self,
        rules: list[RateLimitItem],
        storage: Storage,
        *,
        on_error: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
        pool: OffLoopTLSPool | None = None,
    ) -> None:
        self._rules = rules
        self._pool = pool
        """The storage's connections (a Redis), their SSL context to build before the first."""
        self._limiter = MovingWindowRateLimiter(storage)
        self._on_error = on_error
        self._breaker = CircuitBreaker(
            STORAGE_FAILURES, STORAGE_RETRY_S, clock=clock, on_change=_log_outage
        )

    @classmethod
    def from_settings(
        cls,
        settings: ServerSettings,
        on_error: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
        *,
        rules: str | None = None,
    ) -> RateLimit | None:
        """The limit of ``rules`` (default: ``settings.rate_limit``) kept in
        ``settings.rate_limit_storage``; None when there are no rules."""
        rules = settings.rate_limit if rules is None else rules
        if not rules:
            return None
        uri = settings.rate_limit_storage
        storage: object
        pool = None
        if uri.startswith("memory://"):
            storage = SweptMemoryStorage()
        else:
            # redis-py is already a dependency; limits would otherwise want coredis. Our pool,
            # not the one limits makes: redis-py built a rediss:// storage's SSL context as it
            # connected, on the event loop (the default context and the CA certificates, tens
            # of ms of CPU, more on a loaded node), every request waiting (:meth:`prepare`).
            pool = OffLoopTLSPool.from_url(uri.replace("redis+unix://", "unix://", 1))
            storage = storage_from_string(
                "async+" + uri,
                implementation="redispy",
                connection_pool=pool,  # type: ignore[arg-type]  # limits' options: scalars only
            )
        if not isinstance(storage, Storage):
            raise TypeError(f"rate limit storage {uri!r} has no asyncio implementation")
        return cls(parse_many(rules), storage, on_error=on_error, clock=clock, pool=pool)

    async def prepare(self) -> None:
        """Build what the storage's first connection needs that costs CPU, in a thread: for
        ``rediss://``, the SSL context. Never fails: a failure is the first check's, which lets
        the request through as for any storage failure."""
        if self._pool is None:
            return
        try:
            await self._pool.prepare()
        except Exception as exc:  # the rate limit must never fail the node's start
            log.debug("rate-limit storage: could not build its SSL context: %r", exc)

    async def check(self, identity: str, cost: int = 1, *, counted: int = 0) -> bool:
        """Count ``cost`` more requests for ``identity``, of one request that ``counted``
        already; each rule counts the whole request as at most its allowance, so a batch larger
        than a rule is still let through when the client has used none of it. 429 with
        Retry-After when a limit is exceeded. Returns whether the storage counted it: False
        (the request let through) when it cannot say."""
        if not self._breaker.allow():
            return False
        try:
            async with asyncio.timeout(STORAGE_TIMEOUT_S):
                exceeded = await self._exceeded(identity, cost, counted)
        except Exception as exc:  # any storage failure (connection, timeout, protocol)
            log.debug("rate-limit storage failed: %r", exc)
            self._on_error()
            self._breaker.record_failure()
            return False
        self._breaker.record_success()
        if exceeded is not None:
            rule, retry = exceeded
            raise RateLimited(
                f"rate limit {rule} exceeded; retry in {retry} s",
                retry_after_s=retry,
                details={"limit": str(rule)},
            )
        return True

    async def _exceeded(
        self, identity: str, cost: int, counted: int
    ) -> tuple[RateLimitItem, int] | None:
        """The first rule ``identity`` is over, with the seconds until it may retry; or None."""
        for rule in self._rules:
            charged = min(cost, rule.amount - counted)
            if charged <= 0:
                continue
            if not await self._limiter.hit(rule, identity, cost=charged):
                stats = await self._limiter.get_window_stats(rule, identity)
                return rule, max(1, math.ceil(stats.reset_time - time.time()))
        return None


SWEEP_EVERY_S = 1.0
"""How often :class:`SweptMemoryStorage` frees the windows that have passed."""
SWEEP_SLICE = 1000
"""Clients whose windows :class:`SweptMemoryStorage` looks at in one turn of the event loop."""


class SweptMemoryStorage(MemoryStorage):
    """limits' in-process storage, its passed windows freed on the event loop in slices, once a
    second. limits' own sweep hands every client's window to a thread, one after the other, and
    begins again as soon as it ends: with 5,000 clients counted (as many addresses, each with a
    wrong key, in a minute) it kept the event loop's thread half busy for good (56% of a core
    against 4%, bench: docs/performance.md). A window is never read past its time whether or not
    it was freed (limits compares each entry's time), so the sweep only bounds the memory."""

    async def _MemoryStorage__expire_events(self) -> None:  # noqa: N802 - limits' own, mangled
        try:
            now = time.time()
            for done, key in enumerate(list(self.events), 1):
                events = self.events.get(key)
                if events:  # newest first
                    del events[bisect.bisect_left(events, -now, key=lambda e: -e.expiry) :]
                if not events:
                    self.events.pop(key, None)
                    self.locks.pop(key, None)
                if done % SWEEP_SLICE == 0:
                    await asyncio.sleep(0)
            for key, at in list(self.expirations.items()):  # fixed windows (unused here)
                if at <= now:
                    self.storage.pop(key, None)
                    self.expirations.pop(key, None)
                    self.locks.pop(key, None)
            # Requests start the next sweep once this one is done: not before a second is up.
            await asyncio.sleep(SWEEP_EVERY_S)
        except asyncio.CancelledError:
            return


def _log_outage(is_open: bool) -> None:
    if is_open:
        log.warning(
            "rate-limit storage does not answer: requests are let through, unlimited, until it"
            " does (asked again every %g s)",
            STORAGE_RETRY_S,
        )
    else:
        log.info("rate-limit storage answers again: rate limits apply")


LOCKED_ADDRESSES = 4096
"""Addresses :class:`KeyFailures` remembers as locked out in one process (oldest forgotten)."""


class KeyFailures:
    """``server.key_failure_limit``: requests with a missing or wrong API key per client address
    (:func:`refused_key_identity`). An address past it is locked out until its window has room
    again: every request from it answers 429 before its key is looked at, a right one too, so
    guessing goes no faster than the limit (counting the failures alone, the right key guessed
    at the 2,993rd try of 3,000 in 6 s was still let in). The lockout is remembered in this
    process, so checking it costs no trip to the storage."""

    def __init__(
        self,
        limit: RateLimit,
        fallback: RateLimit | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit = limit
        self._fallback = fallback
        """Counts in this process while ``limit``'s storage cannot: a guesser is not let through
        by a Redis that is down or slow (with the storage paused, 399 of 400 guesses were
        checked and the right one let in), as a request is by the rate limit."""
        self._clock = clock
        self._locked: OrderedDict[str, tuple[float, str | None]] = OrderedDict()

    @classmethod
    def from_settings(
        cls, settings: ServerSettings, on_error: Callable[[], None] = lambda: None
    ) -> KeyFailures | None:
        """The limit when API keys are on and it is set, else None."""
        rules = settings.key_failure_limit
        if not settings.api_key_hashes or not rules:
            return None
        limit = RateLimit.from_settings(settings, on_error, rules=rules)
        if limit is None:
            return None
        fallback = None
        if not settings.rate_limit_storage.startswith("memory://"):
            in_process = settings.model_copy(update={"rate_limit_storage": "memory://"})
            fallback = RateLimit.from_settings(in_process, rules=rules)
        return cls(limit, fallback)

    async def prepare(self) -> None:
        """:meth:`RateLimit.prepare` of its storage."""
        await self._limit.prepare()

    def check_locked(self, request: Request) -> None:
        """429 when the request's address is locked out."""
        identity = refused_key_identity(request)
        locked = self._locked.get(identity)
        if locked is None:
            return
        until, rule = locked
        left = max(1, math.ceil(until - self._clock()))
        if until <= self._clock():
            del self._locked[identity]
            return
        raise RateLimited(
            f"too many requests with a missing or wrong API key from this address; retry in "
            f"{left} s",
            retry_after_s=left,
            details={} if rule is None else {"limit": rule},
        )

    async def count(self, request: Request) -> None:
        """Count a refused key against its address; 429, and the address locked out, past the
        limit."""
        identity = refused_key_identity(request)
        try:
            if not await self._limit.check(identity) and self._fallback is not None:
                await self._fallback.check(identity)
        except RateLimited as refusal:
            rule = refusal.details.get("limit")
            until = self._clock() + refusal.retry_after_s
            self._locked[identity] = (until, rule if isinstance(rule, str) else None)
            self._locked.move_to_end(identity)
            while len(self._locked) > LOCKED_ADDRESSES:
                self._locked.popitem(last=False)
            raise
