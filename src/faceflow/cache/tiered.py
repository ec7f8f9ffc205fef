"""The result cache the service uses: in-process ring, then Redis, then single-flight compute."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from enum import StrEnum

from faceflow.cache.entry import CacheEntry
from faceflow.cache.keys import CUTOUT_KEY_PREFIX
from faceflow.cache.memory import MemoryRing, MemoryStats
from faceflow.cache.observer import CacheLevel, CacheObserver, NullObserver
from faceflow.cache.redis_cache import RedisCache
from faceflow.cache.singleflight import RedisFlight, SingleFlight
from faceflow.config import CacheSettings

logger = logging.getLogger(__name__)

_ON_DISK = (
    "result cache: the cache Redis writes what it holds to its disk (%s): cached results (ID "
    "photos, annotated images, ages and genders) are in its files on that machine; a cache "
    'needs none of it (anything lost is computed again): run it with save "" and appendonly no'
)
"""Said once at start: a stock Redis snapshots by default (its ``save`` rules), and the README
promises that images are never written to disk."""


class CacheStatus(StrEnum):
    """How :meth:`ResultCache.get_or_compute` got its entry (the service's ``X-Cache`` value)."""

    HIT_MEMORY = "hit_memory"
    HIT_REDIS = "hit_redis"
    MISS = "miss"  # computed by this call
    JOINED = "joined"  # waited for a computation started by another caller or another node

    @property
    def label(self) -> str:
        """The answer's ``X-Cache``: ``miss`` when this request ran the computation; ``hit``
        when it got one already made or being made for another request, here or on another
        node (``joined``), as a cache answers a request that waited for another's fetch."""
        return "miss" if self is CacheStatus.MISS else "hit"

    @classmethod
    def hit_at(cls, level: CacheLevel) -> CacheStatus:
        """The status of an entry found at ``level`` (memory or Redis)."""
        return cls.HIT_MEMORY if level is CacheLevel.MEMORY else cls.HIT_REDIS


class ResultCache:
    """Looks results up in memory then Redis, and computes each missing one once.

    Redis is optional (``redis=None`` is the embedded mode) and fails open: while it is down or
    hung, lookups fall through to compute, and :attr:`breaker_open` says so. Every outcome is
    reported to the observer: one ``hit``/``miss``/``joined`` per :meth:`get` or
    :meth:`get_or_compute`. Use from one event loop, between :meth:`start` and :meth:`close`.

    In process, ID-photo cut-outs (keys beginning :data:`CUTOUT_KEY_PREFIX`) are kept in a ring
    of their own, ``cutouts``, so that only other cut-outs evict them: a ``source=`` render has
    nothing but the cut-out to start from, and in one ring with every other answer a few large
    renders pushed an idle user's cut-out out (404 ``source_expired``, upload again). Without
    ``cutouts`` they share ``memory``.
    """

    def __init__(
        self,
        memory: MemoryRing,
        redis: RedisCache | None = None,
        *,
        ttl_s: float,
        lock_ttl_ms: int,
        deadline_s: float | None = None,
        observer: CacheObserver | None = None,
        cutouts: MemoryRing | None = None,
    ) -> None:
        self._memory = memory
        self._cutouts = memory if cutouts is None else cutouts
        self._redis = redis
        self._ttl_s = ttl_s
        self._observer: CacheObserver = observer or NullObserver()
        self._flights: SingleFlight[tuple[CacheEntry, CacheStatus]] = SingleFlight()
        self._redis_flight = (
            RedisFlight(redis, lock_ttl_ms=lock_ttl_ms, deadline_s=deadline_s) if redis else None
        )

    @classmethod
    def from_settings(
        cls,
        settings: CacheSettings,
        observer: CacheObserver | None = None,
        *,
        deadline_s: float | None = None,
    ) -> ResultCache:
        """The cache ``settings`` describe; Redis only if ``settings.redis_url`` is set.
        ``deadline_s``: the request deadline (``runtime.deadline_s``), which a request waiting
        for another node's computation spends (:class:`RedisFlight`).

        Opens no connection: call :meth:`start` on the event loop that will use it.
        ``memory_bytes`` is split: ``memory_cutout_share`` of it for cut-outs, the rest for
        every other answer.
        """
        cutout_bytes = int(settings.memory_bytes * settings.memory_cutout_share)
        largest = settings.memory_max_entry_bytes
        return cls(
            MemoryRing(settings.memory_bytes - cutout_bytes, max_entry_bytes=largest),
            RedisCache.from_settings(settings, observer),
            ttl_s=settings.ttl_s,
            lock_ttl_ms=settings.lock_ttl_ms,
            deadline_s=deadline_s,
            observer=observer,
            cutouts=MemoryRing(cutout_bytes, max_entry_bytes=largest),
        )

    async def start(self) -> None:
        """Check Redis once and log the result; an unreachable Redis is not fatal (fail open)."""
        if self._redis is None:
            logger.info("result cache: in-process only")
            return
        await self._redis.prepare()
        if await self._redis.ping():
            logger.info("result cache: in-process + redis")
            if (how := await self._redis.on_disk()) is not None:
                logger.warning(_ON_DISK, how)
        else:
            logger.warning(
                "result cache: redis did not answer (%s); serving without it until it does",
                self._redis.last_error,
            )

    async def close(self) -> None:
        """Cancel computations still in flight and close the Redis connections (time-bounded)."""
        await self._flights.cancel_all()
        if self._redis is not None:
            await self._redis.close()

    @property
    def redis_enabled(self) -> bool:
        return self._redis is not None

    @property
    def breaker_open(self) -> bool:
        """Whether Redis is configured but currently bypassed by the circuit breaker."""
        return self._redis is not None and self._redis.breaker.is_open

    def memory_stats(self) -> MemoryStats:
        """Both in-process rings together (:meth:`cutout_stats`: the cut-outs' alone)."""
        stats = self._memory.stats()
        if self._cutouts is self._memory:
            return stats
        cutouts = self._cutouts.stats()
        return MemoryStats(
            items=stats.items + cutouts.items,
            bytes=stats.bytes + cutouts.bytes,
            max_bytes=stats.max_bytes + cutouts.max_bytes,
            evictions=stats.evictions + cutouts.evictions,
            expirations=stats.expirations + cutouts.expirations,
            reinsertions=stats.reinsertions + cutouts.reinsertions,
        )

    def cutout_stats(self) -> MemoryStats:
        """The cut-outs' ring (the shared one when they have none of their own)."""
        return self._cutouts.stats()

    async def get(self, key: str) -> tuple[CacheEntry | None, CacheLevel]:
        """The entry for ``key`` and where it was found; a Redis hit is copied into memory."""
        entry, level = await self._lookup(key)
        if entry is None:
            self._observer.miss()
        else:
            self._observer.hit(level)
        return entry, level

    def computing(self, key: str) -> bool | None:
        """Whether ``key`` is being computed: True/False in the embedded mode; None with Redis,
        where another node may be computing it (and a caller would wait for it, not compute)."""
        if self._redis is not None and not self._redis.breaker.is_open:
            return None
        return self._flights.running(key)

    def callers(self, key: str) -> int:
        """How many callers of :meth:`get_or_compute` in this process wait for ``key`` now."""
        return self._flights.callers(key)

    async def lookup(self, key: str) -> tuple[CacheEntry | None, CacheLevel]:
        """Like :meth:`get`, but tells the observer nothing: for a caller that goes on to
        :meth:`get_or_compute` (with ``missed=True``) on a miss, which reports the outcome
        itself."""
        return await self._lookup(key)

    def found(self, level: CacheLevel) -> None:
        """Tell the observer that a :meth:`lookup` found its entry in ``level``, for a caller
        that uses it as :meth:`get_or_compute`'s hit (which would have told it so)."""
        self._observer.hit(level)

    async def put(self, key: str, entry: CacheEntry) -> None:
        """Store ``entry`` in memory and (if available) Redis with the configured TTL."""
        self._ring(key).put(key, entry, self._ttl_s)
        if self._redis is not None:
            await self._redis.set(key, entry)

    async def get_or_compute(
        self, key: str, compute: Callable[[], Awaitable[CacheEntry]], *, missed: bool = False
    ) -> tuple[CacheEntry, CacheStatus]:
        """The entry for ``key``, computing and storing it on a miss, once for concurrent callers.

        Concurrent calls for one key share one ``compute()`` in this process and, with Redis, in
        the whole cluster; only the call that started the work runs its own ``compute``. An error
        raised by ``compute`` reaches every caller sharing it and is not cached. Cancelling a
        caller does not cancel the shared computation.

        ``missed``: the caller has just looked ``key`` up (:meth:`lookup`) and found nothing, so
        it is not looked up again (with Redis that lookup was a round trip). It goes straight to
        the flight, which still finds a result finished meanwhile (in memory, or in Redis once
        the cross-node lock is taken) and joins one being computed.
        """
        if not missed:
            entry, level = await self._lookup(key)
            if entry is not None:
                self._observer.hit(level)
                return entry, CacheStatus.hit_at(level)
        (entry, status), joined = await self._flights.run(key, lambda: self._fill(key, compute))
        if joined:
            status = CacheStatus.JOINED
        if status is CacheStatus.MISS:
            self._observer.miss()
        elif status is CacheStatus.JOINED:
            self._observer.joined()
        else:
            self._observer.hit(
                CacheLevel.MEMORY if status is CacheStatus.HIT_MEMORY else CacheLevel.REDIS
            )
        return entry, status

    def _ring(self, key: str) -> MemoryRing:
        """The in-process ring that keeps ``key``'s entry."""
        return self._cutouts if key.startswith(CUTOUT_KEY_PREFIX) else self._memory

    def _memory_get(self, key: str) -> CacheEntry | None:
        entry = self._memory.get(key)
        if entry is None and self._cutouts is not self._memory:
            entry = self._cutouts.get(key)
        return entry

    async def _lookup(self, key: str) -> tuple[CacheEntry | None, CacheLevel]:
        # _memory_get written out: the answers' ring first, with no test of the key, so a hit
        # there (every face operation's, the hot path's) costs what it did with one ring; a
        # cut-out costs one more dict lookup.
        entry = self._memory.get(key)
        if entry is None and self._cutouts is not self._memory:
            entry = self._cutouts.get(key)
        if entry is not None:
            return entry, CacheLevel.MEMORY
        if self._redis is not None:
            entry = await self._redis.get(key)
            if entry is not None:
                self._ring(key).put(key, entry, self._ttl_s)
                return entry, CacheLevel.REDIS
        return None, CacheLevel.MISS

    async def _fill(
        self, key: str, compute: Callable[[], Awaitable[CacheEntry]]
    ) -> tuple[CacheEntry, CacheStatus]:
        # A flight for this key may have finished between this caller's lookup and its flight.
        entry = self._memory_get(key)
        if entry is not None:
            return entry, CacheStatus.HIT_MEMORY
        if self._redis_flight is None:
            entry = await compute()
            await self.put(key, entry)
            return entry, CacheStatus.MISS

        async def store(computed: CacheEntry) -> None:
            await self.put(key, computed)

        result = await self._redis_flight.run(key, compute, store)
        if result.computed:
            return result.entry, CacheStatus.MISS
        self._ring(key).put(key, result.entry, self._ttl_s)
        return result.entry, CacheStatus.JOINED if result.waited else CacheStatus.HIT_REDIS
