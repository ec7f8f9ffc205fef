"""Single-flight: identical concurrent work is done once, in this process and across nodes.

:class:`SingleFlight` shares one asyncio task per key among concurrent callers in this process.
:class:`RedisFlight` adds a cross-node lock (``SET lock NX PX ttl`` with a random token): the
holder computes and stores the value, the others poll the Redis cache for it. Whenever Redis is
unavailable it steps aside and the work is done locally: a duplicate computation is always
acceptable, a request hanging on a lock is not.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import secrets
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from faceflow.cache.entry import CacheEntry
from faceflow.cache.redis_cache import LockResult, RedisCache
from faceflow.errors import DeadlineExceeded
from faceflow.runtime.pool import DEADLINE_AT

logger = logging.getLogger(__name__)

T = TypeVar("T")

LOCK_LEASE_MS = 3000
"""How long the cross-node lock outlives a holder that stopped renewing it (its process died)."""


class SingleFlight(Generic[T]):
    """Runs at most one ``work()`` per key at a time in this process; concurrent callers share it.

    The work runs in its own task. Every caller awaits it through :func:`asyncio.shield`, so
    cancelling one caller (e.g. its client went away) never cancels the work the others wait
    for; the work still finishes (and can still fill a cache) if every caller has gone.
    All callers get the same result or the same exception. Use from one event loop.
    """

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[T]] = {}
        self._callers: collections.Counter[str] = collections.Counter()

    def __len__(self) -> int:
        return len(self._tasks)

    def running(self, key: str) -> bool:
        """Whether work for ``key`` is in flight here (a new caller would join it)."""
        return key in self._tasks

    def callers(self, key: str) -> int:
        """How many callers wait here for the work on ``key`` (the one that started it too)."""
        return self._callers[key]

    async def run(self, key: str, work: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """``work()``'s result and whether this caller joined a flight another caller started."""
        task = self._tasks.get(key)
        joined = task is not None
        if task is None:
            task = asyncio.create_task(_awaited(work), name=f"singleflight:{key}")
            self._tasks[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        self._callers[key] += 1
        try:
            return await asyncio.shield(task), joined
        finally:
            self._callers[key] -= 1
            if not self._callers[key]:
                del self._callers[key]
            # The work's error is raised with this frame in its traceback, and the frame held
            # the task, which holds the error: a cycle that kept what the work's frames held (an
            # upload) until the next full collection.
            del task

    async def cancel_all(self, timeout_s: float = 1.0) -> None:
        """Cancel every flight still running and wait (at most ``timeout_s``) for them to end."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)

    def _finished(self, key: str, task: asyncio.Task[T]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]
        # Mark the exception as retrieved: when every caller was cancelled nobody else reads it,
        # and asyncio would log "Task exception was never retrieved" for an expected failure.
        if not task.cancelled():
            task.exception()


async def _awaited(work: Callable[[], Awaitable[T]]) -> T:
    return await work()


@dataclass(frozen=True, slots=True)
class FlightResult:
    """What :meth:`RedisFlight.run` got: the entry, and how."""

    entry: CacheEntry
    computed: bool  # this node ran compute()
    waited: bool  # this node waited on another node's lock before getting the entry


class RedisFlight:
    """Cross-node single-flight on top of a :class:`RedisCache`.

    :meth:`run` takes the lock ``lock:{key}``, checks the cache again (a holder may have finished
    between the caller's miss and the lock), computes, stores the entry in Redis and then releases
    the lock with a compare-and-delete on its token. If another node holds the lock it polls the
    cache with short sleeps (``poll_min_s`` doubling up to ``poll_max_s``) and retries the lock
    (the holder may have failed or died). It never waits longer than the lock's TTL, and computes
    locally as soon as Redis is unavailable. Errors from ``compute`` propagate and are not stored.
    An entry too large to be stored in Redis (``cache.redis_max_entry_bytes``) is marked there
    instead (:meth:`RedisCache.poll`): a waiter that finds the mark computes at once. Waiting for
    the lock, each took it in turn and found nothing, so identical requests on several nodes for
    a large annotated PNG were computed one after another.

    The lock is a lease of ``lease_ms`` (at most ``lock_ttl_ms``) that the holder renews every
    third of it while it computes, so the lock of a holder that died (its process killed mid
    compute) lapses within ``lease_ms`` and a waiter takes over then: with the whole
    ``lock_ttl_ms`` on the lock, every identical request on every node waited that long (30 s
    by default) for a result that was never coming. Compute that runs longer than
    ``lock_ttl_ms`` still loses its lock (renewals stop there), so another node may start the
    same work: keep the TTL above the inference deadline.

    With ``deadline_s`` (the request deadline, ``runtime.deadline_s``) waiting and a computation
    after it share that deadline: a caller waits at most until it, and what it computes after
    waiting gets only what is left (:data:`~faceflow.runtime.pool.DEADLINE_AT`). Waited out by
    a live holder (its lock still renewed), it does not start the same work with less time left
    than it has waited: the holder has been at it at least that long, so the copy would most
    likely be cut off at the deadline, a process spent for nothing. It raises
    :class:`DeadlineExceeded` (503, Retry-After) instead: a retry finds the holder's result.
    Without it a caller waited up to ``lock_ttl_ms`` (30 s) and then computed with a whole
    deadline of its own, answering up to twice the deadline late.
    """

    def __init__(
        self,
        redis: RedisCache,
        *,
        lock_ttl_ms: int,
        lease_ms: int = LOCK_LEASE_MS,
        deadline_s: float | None = None,
        poll_min_s: float = 0.005,
        poll_max_s: float = 0.05,
    ) -> None:
        if lock_ttl_ms < 1 or lease_ms < 3 or poll_min_s <= 0 or poll_max_s < poll_min_s:
            raise ValueError(
                "need lock_ttl_ms >= 1, lease_ms >= 3 and 0 < poll_min_s <= poll_max_s"
            )
        if deadline_s is not None and not deadline_s > 0:
            raise ValueError("deadline_s must be positive")
        self._redis = redis
        self._deadline_s = deadline_s
        self._lock_ttl_ms = lock_ttl_ms
        self._lease_ms = min(lease_ms, lock_ttl_ms)
        self._poll_min_s = poll_min_s
        self._poll_max_s = poll_max_s

    async def run(
        self,
        key: str,
        compute: Callable[[], Awaitable[CacheEntry]],
        store: Callable[[CacheEntry], Awaitable[None]],
    ) -> FlightResult:
        """The entry for ``key``: found in Redis, or computed here and passed to ``store``.

        ``store`` must write the entry to Redis; it runs before the lock is released so that
        nodes polling for the value find it as soon as the lock is gone.
        """
        loop = asyncio.get_running_loop()
        token = secrets.token_hex(16)
        start = loop.time()
        end = None if self._deadline_s is None else start + self._deadline_s
        give_up = start + self._lock_ttl_ms / 1000
        if end is not None:
            give_up = min(give_up, end)
        delay = self._poll_min_s
        waited = False
        unshared = False
        while True:
            lock = await self._redis.acquire_lock(key, token, self._lease_ms)
            if lock is LockResult.ACQUIRED:
                with _time_left(end if waited else None):
                    return await self._run_holding_lock(key, token, compute, store, waited)
            if lock is LockResult.UNAVAILABLE or unshared or loop.time() + delay > give_up:
                if lock is LockResult.HELD and not unshared:
                    now = loop.time()
                    if end is not None and end - now < now - start:
                        raise DeadlineExceeded(
                            "another node is still computing this result and this request has "
                            "too little time left to compute it too: retry shortly",
                            retry_after_s=math.ceil(self._lease_ms / 1000),
                        )
                    logger.warning("gave up waiting for another node's lock on %s", key)
                with _time_left(end if waited else None):
                    entry = await compute()
                await store(entry)
                return FlightResult(entry, computed=True, waited=waited)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._poll_max_s)
            waited = True
            found, unshared = await self._redis.poll(key)
            if found is not None:
                return FlightResult(found, computed=False, waited=True)

    async def _run_holding_lock(
        self,
        key: str,
        token: str,
        compute: Callable[[], Awaitable[CacheEntry]],
        store: Callable[[CacheEntry], Awaitable[None]],
        waited: bool,
    ) -> FlightResult:
        renewer = asyncio.create_task(self._renew(key, token), name=f"lock-lease:{key}")
        try:
            found = await self._redis.get(key)
            if found is not None:
                return FlightResult(found, computed=False, waited=waited)
            entry = await compute()
            await store(entry)
            return FlightResult(entry, computed=True, waited=waited)
        finally:
            renewer.cancel()
            # Shielded so that a flight cancelled during the release still frees the lock for the
            # other nodes instead of making them wait for its TTL; release_lock is time-bounded.
            await asyncio.shield(self._redis.release_lock(key, token))

    async def _renew(self, key: str, token: str) -> None:
        """Renew the lock every third of its lease until cancelled, the lock is lost (another
        owner, or Redis failed: a duplicate computation is acceptable) or ``lock_ttl_ms`` since
        it was taken has passed."""
        loop = asyncio.get_running_loop()
        end = loop.time() + self._lock_ttl_ms / 1000
        while True:
            await asyncio.sleep(self._lease_ms / 3000)
            ttl_ms = min(self._lease_ms, round((end - loop.time()) * 1000))
            if ttl_ms < 1 or not await self._redis.renew_lock(key, token, ttl_ms):
                return


@contextlib.contextmanager
def _time_left(end: float | None) -> Iterator[None]:
    """Pool tasks run inside this block must end by ``end`` (event-loop time), when set: a
    caller that waited for another node computes in what is left of its deadline."""
    if end is None:
        yield
        return
    token = DEADLINE_AT.set(end)
    try:
        yield
    finally:
        DEADLINE_AT.reset(token)
