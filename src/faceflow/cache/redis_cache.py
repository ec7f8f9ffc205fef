"""The shared cache in Redis, built to fail open.

Redis is an optimisation here, never a dependency of a correct answer. Every call is guarded by a
circuit breaker and bounded by ``timeout_s`` as a whole (connect + send + read), has no retries and
no health checks, and turns any failure into a miss or a no-op: with Redis down, hung (SIGSTOP) or
slow, callers lose at most ``timeout_s`` per call until the breaker opens, then nothing at all.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import random
import ssl
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any, NamedTuple, TypeVar

from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.connection import SSLConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoPermissionError, OutOfMemoryError, RedisError, WatchError

from faceflow.cache.breaker import CircuitBreaker
from faceflow.cache.entry import CacheEntry, decode_entry, encode_entry
from faceflow.cache.observer import CacheObserver, NullObserver
from faceflow.cache.persistence import PARAMETERS, persistence
from faceflow.config import CacheSettings

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_NAMESPACE = "faceflow"

REDIS_CONNECTIONS = 64
"""Connections one process opens to the cache Redis at most; a call finding them all busy waits
for one within its timeout. redis-py's default pool opened one for each call under way, up to
100, and refused the 101st at once (``MaxConnectionsError``): a burst of lookups on a healthy
Redis counted failures and opened the breaker, and against a Redis that accepts connections and
never answers each lookup under way held a socket of its own until its timeout."""

READ_CHUNK_BYTES = 512 * 1024
"""The most of one entry a read asks Redis for in one reply (:func:`read_value`)."""

_READ_ATTEMPTS = 3

# Deletes the lock only if it still holds our token: after our TTL expired another node may own it.
_RELEASE_LOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""

# Extends the lock only if it still holds our token, so a holder never revives a lock it lost.
_RENEW_LOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""


# No CLIENT SETINFO on connect: it costs a round trip per new connection, and redis-py 7+ builds
# the default driver info with importlib.metadata, ~3 ms of event-loop CPU per connection, which
# made a burst of calls against a hung Redis overrun its timeout. (lib_name/lib_version are the
# pre-7 spelling; they are deprecated since driver_info exists.)
_NO_CLIENT_SETINFO: dict[str, Any] = (
    {"driver_info": None}
    if importlib.util.find_spec("redis.driver_info") is not None
    else {"lib_name": None, "lib_version": None}
)


_WRITES = frozenset({"set", "lock"})
"""The calls Redis refuses at ``maxmemory`` under ``noeviction`` (a store, a lock's ``SET NX``)."""


class LockResult(StrEnum):
    ACQUIRED = "acquired"
    HELD = "held"  # another owner holds it
    UNAVAILABLE = "unavailable"  # Redis failed or the breaker is open: proceed without a lock


class _Unavailable:
    """Marker for "the Redis call did not happen or failed"."""


_UNAVAILABLE = _Unavailable()


def entry_key(key: str, namespace: str = DEFAULT_NAMESPACE) -> str:
    """The Redis key that holds the entry for cache key ``key``: the one name for it, used by
    :class:`RedisCache` and by job workers that write results into the same cache."""
    return f"{namespace}:cache:{key}"


def unshared_key(key: str, namespace: str = DEFAULT_NAMESPACE) -> str:
    """The Redis key of the mark that cache key ``key``'s entry is too large to share
    (:func:`stored_form`)."""
    return f"{namespace}:unshared:{key}"


class StoredForm(NamedTuple):
    """What goes into Redis for one entry: ``value`` under the Redis key ``name``."""

    name: str
    value: bytes
    shared: bool
    """False: ``value`` is the mark that the entry is too large to share, not the entry."""


def stored_form(
    key: str,
    entry: CacheEntry,
    max_entry_bytes: int | None,
    namespace: str = DEFAULT_NAMESPACE,
) -> StoredForm:
    """How cache key ``key``'s ``entry`` is stored in Redis, by :class:`RedisCache` and by job
    workers alike: the encoded entry, or, over ``max_entry_bytes``, a mark in its place.

    A larger entry is not sent: reading it back would not fit in a call's timeout (see
    ``cache.redis_max_entry_bytes``). It is marked instead, for as long as the entry would have
    been kept (its size does not change; a mark is a few bytes): nodes waiting on this key's
    lock would find nothing and take it in turn, each computing it after the other
    (:meth:`RedisCache.poll`).
    """
    value = encode_entry(entry)
    if max_entry_bytes is not None and len(value) > max_entry_bytes:
        return StoredForm(unshared_key(key, namespace), b"1", shared=False)
    return StoredForm(entry_key(key, namespace), value, shared=True)


def jittered_ttl_ms(ttl_s: float, jitter: float, rng: Callable[[], float] = random.random) -> int:
    """``ttl_s`` × (1 ± ``jitter``), in ms, at least 1 (``rng`` draws from [0, 1)).

    Jitter spreads the expiry of entries written together (e.g. by a warm-up or a burst), so
    they do not all expire, and get recomputed, in the same instant.
    """
    factor = 1.0 + jitter * (2.0 * rng() - 1.0)
    return max(1, round(ttl_s * 1000 * factor))


def make_client(url: str, timeout_s: float) -> Redis:
    """A redis-py asyncio client that never waits longer than ``timeout_s`` per socket operation.

    No retries (a retry doubles the worst case and hammers a struggling server), no health-check
    pings, no retry on timeout. Connections are opened lazily, so this never touches the network,
    and at most :data:`REDIS_CONNECTIONS` of them, a call waiting at most ``timeout_s`` for one.
    A ``rediss://`` client builds its SSL context in a thread (:class:`_Pool`).
    """
    pool = _Pool.from_url(
        url,
        max_connections=REDIS_CONNECTIONS,
        timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        socket_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
        retry_on_error=[],
        health_check_interval=0,
        **_NO_CLIENT_SETINFO,
    )
    return Redis.from_pool(pool)


async def read_value(
    client: Redis, key: str, head: bytes | None, chunk_bytes: int = READ_CHUNK_BYTES
) -> bytes | None:
    """The string under ``key`` (None if there is none), never more than ``chunk_bytes`` of it
    in one reply, given ``head``, its first ``chunk_bytes`` (``GETRANGE``; None: not read yet).

    Managed Redis services may set ``client-output-buffer-limit normal`` (e.g. ``1mb 1mb 0``):
    a reply over it makes Redis close the connection as it answers. A cached answer over it (an
    ID photo) was then a failure at every read: three opened the breaker, and the node stopped
    reading every other stored result. A value longer than ``head`` is read again from its
    start under ``WATCH``, so one replaced or gone between two ranges is not read as a mix.
    """
    if head is None:
        read = await client.getrange(key, 0, chunk_bytes - 1)
        head = read if isinstance(read, bytes) else None
    if not head:
        return None  # GETRANGE answers b"" for a key there is not
    if len(head) < chunk_bytes:
        return head
    for _ in range(_READ_ATTEMPTS):
        async with client.pipeline() as pipe:
            try:
                await pipe.watch(key)
                parts: list[bytes] = []
                while not parts or len(parts[-1]) == chunk_bytes:
                    start = len(parts) * chunk_bytes
                    part = await pipe.getrange(key, start, start + chunk_bytes - 1)
                    parts.append(part if isinstance(part, bytes) else b"")
                pipe.multi()  # type: ignore[no-untyped-call]
                pipe.exists(key)
                if not (await pipe.execute())[0]:
                    return None
            except WatchError:
                continue
        return b"".join(parts)
    return None


class _OffLoopSSLConnection(SSLConnection):
    """A TLS connection whose SSL context, unless already given it, is built in a thread.

    redis-py builds it as it connects, on the event loop: ``ssl.create_default_context()`` and
    the CA certificates loaded, 170–235 ms of CPU measured at load 13, so the first call of each
    process overran its 50 ms budget while blocking every request of the node (start-up said
    "redis did not answer (TimeoutError)").
    """

    async def _connect(self) -> None:
        if self.ssl_context.context is None:
            # Abandoned by a timed-out call, the build goes on: redis-py 8 shares it by settings.
            self.ssl_context.context = await asyncio.to_thread(self.ssl_context.get)
        await super()._connect()  # type: ignore[no-untyped-call]


class OffLoopTLSPool(ConnectionPool):
    """Connections whose SSL context, for ``rediss://``, is never built on the event loop: one
    built in a thread before the first call (:meth:`prepare`) and shared, else built in a
    thread by each connection as it connects (:class:`_OffLoopSSLConnection`). Also the
    rate limit's storage connections (:mod:`faceflow.service.security`)."""

    _ssl_context: ssl.SSLContext | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if issubclass(self.connection_class, SSLConnection):
            self.connection_class = _OffLoopSSLConnection

    async def prepare(self) -> None:
        """Build the SSL context its TLS connections will use, in a thread; a no-op without TLS.

        Raises what building it raises (a CA file missing or unreadable); a connection then
        tries again, in a thread too, and its call fails with that error.
        """
        if self._ssl_context is not None or not issubclass(self.connection_class, SSLConnection):
            return
        template = self.connection_class(**self.connection_kwargs)
        self._ssl_context = await asyncio.to_thread(template.ssl_context.get)

    def make_connection(self) -> Any:
        connection = super().make_connection()  # type: ignore[no-untyped-call]
        if self._ssl_context is not None and isinstance(connection, SSLConnection):
            connection.ssl_context.context = self._ssl_context
        return connection


class _Pool(OffLoopTLSPool, BlockingConnectionPool):
    """The cache's connections: at most so many, a call waiting for one (:func:`make_client`),
    their SSL context built off the event loop (:class:`OffLoopTLSPool`)."""


class RedisCache:
    """Entries and short locks in Redis under ``{namespace}:cache:`` and ``{namespace}:lock:``,
    and under ``{namespace}:unshared:`` the marks of entries too large to store there.

    Every method returns normally whatever Redis does (cancellation of the caller still
    propagates): a failed or refused call is reported to the observer, counted on the breaker
    (not a write refused for want of memory: Redis answered, and reads still work), and
    answered as a miss (``get``), ``False`` (``set``, ``delete``, ``release_lock``, ``ping``) or
    :attr:`LockResult.UNAVAILABLE`.
    """

    def __init__(
        self,
        client: Redis,
        *,
        timeout_s: float,
        breaker: CircuitBreaker,
        ttl_s: float,
        ttl_jitter: float,
        observer: CacheObserver | None = None,
        namespace: str = DEFAULT_NAMESPACE,
        rng: Callable[[], float] = random.random,
        max_entry_bytes: int | None = None,
    ) -> None:
        if not 0.0 <= ttl_jitter <= 1.0:
            raise ValueError("ttl_jitter must be within [0, 1]")
        self._max_entry_bytes = max_entry_bytes
        self._client = client
        self._timeout_s = timeout_s
        self._breaker = breaker
        self._ttl_s = ttl_s
        self._ttl_jitter = ttl_jitter
        self._observer: CacheObserver = observer or NullObserver()
        self._namespace = namespace
        self._rng = rng
        self._release_script = client.register_script(_RELEASE_LOCK)
        self._renew_script = client.register_script(_RENEW_LOCK)
        self._denied: set[str] = set()
        """The calls this Redis user may not make (ACL), each said once."""
        self._full = False
        """Whether the last write was refused for want of memory (said once as it begins, and
        once as it ends)."""
        self.last_error: str | None = None
        """Why the last failed call failed, as Redis or the client said it: a wrong password
        or database number fails every call as a hung Redis does, and the log said only that
        Redis "did not answer"."""

    @classmethod
    def from_settings(
        cls,
        settings: CacheSettings,
        observer: CacheObserver | None = None,
        *,
        namespace: str = DEFAULT_NAMESPACE,
    ) -> RedisCache | None:
        """The Redis cache ``settings`` describe, or ``None`` when no ``redis_url`` is set."""
        if settings.redis_url is None:
            return None
        observer = observer or NullObserver()
        timeout_s = settings.redis_timeout_ms / 1000
        breaker = CircuitBreaker(
            settings.breaker_failures,
            settings.breaker_reset_s,
            on_change=_breaker_reporter(observer),
        )
        return cls(
            make_client(settings.redis_url, timeout_s),
            timeout_s=timeout_s,
            breaker=breaker,
            ttl_s=settings.ttl_s,
            ttl_jitter=settings.ttl_jitter,
            observer=observer,
            namespace=namespace,
            max_entry_bytes=settings.redis_max_entry_bytes,
        )

    @property
    def breaker(self) -> CircuitBreaker:
        return self._breaker

    @property
    def timeout_s(self) -> float:
        return self._timeout_s

    def data_key(self, key: str) -> str:
        """The Redis key that holds the entry for cache key ``key``."""
        return entry_key(key, self._namespace)

    def lock_key(self, key: str) -> str:
        """The Redis key of the compute lock for cache key ``key``."""
        return f"{self._namespace}:lock:{key}"

    def unshared_key(self, key: str) -> str:
        """The Redis key of the marker that cache key ``key``'s entry is too large to share
        (:meth:`set`)."""
        return unshared_key(key, self._namespace)

    def jittered_ttl_ms(self, ttl_s: float | None = None) -> int:
        """``ttl_s`` (default: the configured TTL) with this cache's jitter (see
        :func:`jittered_ttl_ms`)."""
        base_s = self._ttl_s if ttl_s is None else ttl_s
        return jittered_ttl_ms(base_s, self._ttl_jitter, self._rng)

    async def get(self, key: str) -> CacheEntry | None:
        """The entry stored under ``key``; ``None`` if absent, unreadable or Redis unavailable."""
        raw = await self._call("get", lambda: read_value(self._client, self.data_key(key), None))
        if raw is None or isinstance(raw, _Unavailable):
            return None
        return _decoded(key, raw)

    async def poll(self, key: str) -> tuple[CacheEntry | None, bool]:
        """For a node waiting on another's compute lock: the entry under ``key`` (as
        :meth:`get`), and whether it is marked too large to share (:meth:`set`), so it will not
        be stored: compute it rather than wait. One round trip, unless the entry is over
        :data:`READ_CHUNK_BYTES` (:func:`read_value`)."""
        raw = await self._call("get", lambda: self._polled(key))
        if isinstance(raw, _Unavailable):
            return None, False
        value, marked = raw
        return (None if value is None else _decoded(key, value)), marked

    async def _polled(self, key: str) -> tuple[bytes | None, bool]:
        pipe = self._client.pipeline(transaction=False)
        pipe.getrange(self.data_key(key), 0, READ_CHUNK_BYTES - 1)
        pipe.exists(self.unshared_key(key))
        head, marked = await pipe.execute()
        return await read_value(self._client, self.data_key(key), head), bool(marked)

    async def set(self, key: str, entry: CacheEntry, ttl_s: float | None = None) -> bool:
        """Store ``entry`` under ``key`` with a jittered TTL; whether Redis confirmed it. An
        entry over ``max_entry_bytes`` is marked too large to share instead, and not stored
        (:func:`stored_form`)."""
        stored = stored_form(key, entry, self._max_entry_bytes, self._namespace)
        ttl_ms = self.jittered_ttl_ms(ttl_s)
        done = await self._call(
            "set", lambda: self._client.set(stored.name, stored.value, px=ttl_ms)
        )
        return stored.shared and done is True

    async def delete(self, key: str) -> bool:
        """Remove the entry under ``key``; whether one was removed."""
        removed = await self._call("delete", lambda: self._client.delete(self.data_key(key)))
        return removed == 1

    async def acquire_lock(self, key: str, token: str, ttl_ms: int) -> LockResult:
        """Try ``SET lock NX PX ttl_ms`` with ``token`` as the owner's proof; never waits."""
        done = await self._call(
            "lock", lambda: self._client.set(self.lock_key(key), token, nx=True, px=ttl_ms)
        )
        if isinstance(done, _Unavailable):
            return LockResult.UNAVAILABLE
        return LockResult.ACQUIRED if done else LockResult.HELD

    async def renew_lock(self, key: str, token: str, ttl_ms: int) -> bool:
        """Make the lock expire ``ttl_ms`` from now if ``token`` still owns it; whether it did."""
        renewed = await self._call(
            "renew",
            lambda: self._renew_script(keys=[self.lock_key(key)], args=[token, ttl_ms]),
        )
        return renewed == 1

    async def release_lock(self, key: str, token: str) -> bool:
        """Delete the lock if ``token`` still owns it; whether it did.

        Tried even while the breaker is open (still bounded by the timeout): the lock was taken
        when Redis worked moments ago, and left behind it would make every other node wait for
        its whole TTL. A lock left behind when this fails expires by its TTL.
        """
        removed = await self._call(
            "unlock",
            lambda: self._release_script(keys=[self.lock_key(key)], args=[token]),
            guarded=False,
        )
        return removed == 1

    async def prepare(self) -> None:
        """What a first call needs that costs CPU, done in a thread before any call: for
        ``rediss://``, the SSL context. Never fails: a failure is the first call's to report."""
        pool = self._client.connection_pool
        if not isinstance(pool, _Pool):
            return
        try:
            await pool.prepare()
        except Exception as exc:  # the cache must never fail the node's start
            logger.debug("redis cache: could not build its SSL context: %r", exc)

    async def ping(self) -> bool:
        """Whether Redis answered a PING within the timeout (and the breaker allowed it)."""
        answer = await self._call("ping", lambda: self._client.ping())
        return answer is True

    async def on_disk(self) -> str | None:
        """How this Redis writes what it holds to its disk (:func:`persistence`), else None;
        None too when it does not say (managed services often deny ``CONFIG``; said at debug).
        Not through the breaker: a refused ``CONFIG`` is no outage."""
        config: dict[Any, object] = {}
        try:
            async with asyncio.timeout(max(self._timeout_s, 0.1)):
                for name in PARAMETERS:
                    config.update(await self._client.config_get(name))
        except (RedisError, OSError, TimeoutError) as exc:
            logger.debug("redis cache: could not read its persistence settings: %r", exc)
            return None
        return persistence(config)

    async def close(self) -> None:
        """Close every connection; bounded by the timeout even if Redis is hung."""
        try:
            async with asyncio.timeout(max(self._timeout_s, 0.1)):
                await self._client.aclose()
        except (RedisError, OSError, TimeoutError):
            logger.debug("redis cache client closed uncleanly", exc_info=True)

    async def _call(
        self, op: str, call: Callable[[], Awaitable[T]], *, guarded: bool = True
    ) -> T | _Unavailable:
        if guarded and not self._breaker.allow():
            return _UNAVAILABLE
        try:
            # The client's socket timeouts bound each step; this bounds connect + send + read
            # together. Cancelling a command makes redis-py drop that connection, so a late
            # reply can never be read as the answer to a later command.
            async with asyncio.timeout(self._timeout_s):
                result = await call()
        except OutOfMemoryError as exc:
            # Full (maxmemory with noeviction): it refused a write at once and still answers
            # reads. Counted on the breaker, three refused writes in a row (a miss's lock and
            # store are two) opened it, and every node then stopped reading the results the
            # others had stored there, computing them again, for breaker_reset_s at a time.
            self._observer.redis_error(op)
            if not self._full:
                # Said at debug only, the operator saw nothing but a metric: every node computing
                # what it would have shared, and the cross-node lock gone with it.
                self._full = True
                logger.warning(
                    "redis cache is out of memory (%s): new results are not stored there and "
                    "identical requests on different nodes are each computed; reads go on",
                    exc,
                )
            logger.debug("redis %s refused: %r", op, exc)
            self._breaker.record_success()
            return _UNAVAILABLE
        except NoPermissionError as exc:
            # An ACL without a command (most often scripting, which the lock's renewal and
            # release use): Redis answered, at once. Counted on the breaker, a burst of misses
            # (each release refused) opened it, and every node stopped reading stored results
            # for breaker_reset_s, again at every burst; a lock not released lapses by its lease.
            self._observer.redis_error(op)
            if op not in self._denied:
                self._denied.add(op)
                logger.warning("redis cache: this user may not %s (%s); going on without", op, exc)
            self._breaker.record_success()
            return _UNAVAILABLE
        except (RedisError, OSError, TimeoutError, EOFError) as exc:
            self._failed(op, exc, unexpected=False)
            return _UNAVAILABLE
        except Exception as exc:  # fail open: the cache must never fail a request
            self._failed(op, exc, unexpected=True)
            return _UNAVAILABLE
        self._breaker.record_success()
        if self._full and op in _WRITES:
            self._full = False
            logger.info("redis cache has room again: storing results")
        return result

    def _failed(self, op: str, exc: Exception, *, unexpected: bool) -> None:
        # Redis's own words (never the URL, which may hold the password); a timeout has none.
        self.last_error = str(exc) or type(exc).__name__
        was_open = self._breaker.is_open
        self._breaker.record_failure()
        if self._breaker.is_open and not was_open:
            logger.warning(
                "redis cache breaker opened (%s): serving without Redis (fail open)",
                self.last_error,
            )
        self._observer.redis_error(op)
        if unexpected:
            logger.error("unexpected error from redis %s", op, exc_info=exc)
        else:
            logger.debug("redis %s failed: %r", op, exc)


def _decoded(key: str, value: bytes) -> CacheEntry | None:
    entry = decode_entry(value)
    if entry is None:
        logger.warning("ignoring an unreadable cache value for %s", key)
    return entry


def _breaker_reporter(observer: CacheObserver) -> Callable[[bool], None]:
    def report(is_open: bool) -> None:
        if not is_open:  # its opening is logged with the failure that opened it
            logger.info("redis cache breaker closed: Redis is back")
        observer.breaker_changed(is_open)

    return report
