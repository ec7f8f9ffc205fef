from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from faceflow.cache.entry import CacheEntry
from faceflow.cache.redis_cache import RedisCache
from faceflow.cache.singleflight import RedisFlight, SingleFlight
from faceflow.errors import DeadlineExceeded
from faceflow.runtime.pool import DEADLINE_AT
from tests.cache.conftest import cache_settings
from tests.fixtures.redis_server import RedisProcess

ENTRY = CacheEntry("application/json", b'{"n":1}')


class Work:
    """A computation that counts its runs and can be held until released."""

    def __init__(self, result: str = "value", error: Exception | None = None) -> None:
        self.calls = 0
        self.finished = 0
        self.result = result
        self.error = error
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self) -> str:
        self.calls += 1
        await self.release.wait()
        await asyncio.sleep(0.01)  # let every concurrent caller arrive first
        if self.error is not None:
            raise self.error
        self.finished += 1
        return self.result


async def test_concurrent_callers_share_one_run() -> None:
    flights: SingleFlight[str] = SingleFlight()
    work = Work()
    results = await asyncio.gather(*(flights.run("k", work) for _ in range(50)))
    assert work.calls == 1
    assert [value for value, _ in results] == ["value"] * 50
    assert sorted(joined for _, joined in results) == [False] + [True] * 49
    assert len(flights) == 0


async def test_different_keys_run_separately() -> None:
    flights: SingleFlight[str] = SingleFlight()
    work_a, work_b = Work("a"), Work("b")
    results = await asyncio.gather(flights.run("a", work_a), flights.run("b", work_b))
    assert [value for value, _ in results] == ["a", "b"]
    assert (work_a.calls, work_b.calls) == (1, 1)


async def test_finished_flight_is_not_a_cache() -> None:
    flights: SingleFlight[str] = SingleFlight()
    work = Work()
    await flights.run("k", work)
    await flights.run("k", work)
    assert work.calls == 2


async def test_every_caller_gets_the_same_exception_and_it_is_not_kept() -> None:
    flights: SingleFlight[str] = SingleFlight()
    error = ValueError("model exploded")
    work = Work(error=error)
    results = await asyncio.gather(
        *(flights.run("k", work) for _ in range(10)), return_exceptions=True
    )
    assert work.calls == 1
    assert all(result is error for result in results)
    work.error = None
    assert await flights.run("k", work) == ("value", False)
    assert work.calls == 2


async def test_cancelling_a_caller_does_not_cancel_the_shared_work() -> None:
    flights: SingleFlight[str] = SingleFlight()
    work = Work()
    work.release.clear()
    leader = asyncio.create_task(flights.run("k", work))
    followers = [asyncio.create_task(flights.run("k", work)) for _ in range(3)]
    await asyncio.sleep(0.01)
    leader.cancel()
    followers[0].cancel()
    await asyncio.sleep(0.01)
    work.release.set()
    results = await asyncio.gather(*followers[1:])
    assert results == [("value", True), ("value", True)]
    assert leader.cancelled()
    assert followers[0].cancelled()
    assert (work.calls, work.finished) == (1, 1)


async def test_callers_counts_those_waiting_for_a_key_until_each_is_answered_or_gone() -> None:
    flight: SingleFlight[str] = SingleFlight()
    work = Work()
    work.release.clear()
    first = asyncio.create_task(flight.run("k", work))
    second = asyncio.create_task(flight.run("k", work))
    await asyncio.sleep(0)
    assert (flight.callers("k"), flight.callers("other")) == (2, 0)

    second.cancel()
    await asyncio.gather(second, return_exceptions=True)
    assert flight.callers("k") == 1
    work.release.set()
    await first
    assert flight.callers("k") == 0


async def test_work_finishes_even_if_every_caller_left() -> None:
    flights: SingleFlight[str] = SingleFlight()
    work = Work()
    work.release.clear()
    caller = asyncio.create_task(flights.run("k", work))
    await asyncio.sleep(0.01)
    caller.cancel()
    work.release.set()
    for _ in range(100):
        if work.finished:
            break
        await asyncio.sleep(0.01)
    assert work.finished == 1
    assert len(flights) == 0


async def test_unobserved_failure_is_not_reported_as_never_retrieved() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    flights: SingleFlight[str] = SingleFlight()
    work = Work(error=RuntimeError("nobody is listening"))
    work.release.clear()
    caller = asyncio.create_task(flights.run("k", work))
    await asyncio.sleep(0.01)
    caller.cancel()
    work.release.set()
    await asyncio.sleep(0.05)
    # The cancelled caller's traceback keeps the flight task alive; drop it so the task is
    # collected now, which is when asyncio would report an exception nobody retrieved.
    del caller
    gc.collect()
    assert reported == []


class Held:
    """Something a computation holds (its upload), watched with a weak reference."""


async def settled() -> None:
    """Let the callbacks the failure scheduled run (the flight's, which lets go of its task)."""
    for _ in range(3):
        await asyncio.sleep(0)


def failing_work(held: Held) -> Callable[[], Awaitable[str]]:
    async def work() -> str:
        raise KeyError(f"no result for {held!r}")

    return work


async def test_a_failed_flight_frees_what_its_work_held_with_its_error() -> None:
    """Without waiting for a collection: the error is raised with ``run``'s frame in its
    traceback, and that frame held the task, which holds the error; the cycle kept what the
    work held (a failed request's upload) until the next full collection."""
    flights: SingleFlight[str] = SingleFlight()
    held = Held()
    watched = weakref.ref(held)
    work = failing_work(held)
    del held
    gc.disable()
    try:
        with pytest.raises(KeyError):
            await flights.run("k", work)
        del work
        await settled()
        assert watched() is None
    finally:
        gc.enable()


async def test_cancel_all_cancels_flights_in_progress() -> None:
    flights: SingleFlight[str] = SingleFlight()
    work = Work()
    work.release.clear()
    caller = asyncio.create_task(flights.run("k", work))
    await asyncio.sleep(0.01)
    await flights.cancel_all()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert work.finished == 0
    assert len(flights) == 0


class Compute:
    def __init__(self, delay_s: float = 0.0, error: Exception | None = None) -> None:
        self.calls = 0
        self.delay_s = delay_s
        self.error = error

    async def __call__(self) -> CacheEntry:
        self.calls += 1
        await asyncio.sleep(self.delay_s)
        if self.error is not None:
            raise self.error
        return ENTRY


@pytest.fixture
async def redis_cache(redis_url: str) -> AsyncIterator[RedisCache]:
    cache = RedisCache.from_settings(cache_settings(redis_url))
    assert cache is not None
    try:
        yield cache
    finally:
        await cache.close()


def storer(cache: RedisCache, key: str) -> Any:
    async def store(entry: CacheEntry) -> None:
        await cache.set(key, entry)

    return store


@pytest.mark.redis
async def test_lock_holder_computes_stores_and_releases(
    redis_cache: RedisCache, raw_redis: Redis
) -> None:
    flight = RedisFlight(redis_cache, lock_ttl_ms=5000)
    compute = Compute()
    result = await flight.run("k", compute, storer(redis_cache, "k"))
    assert (result.entry, result.computed, result.waited) == (ENTRY, True, False)
    assert compute.calls == 1
    assert await redis_cache.get("k") == ENTRY
    assert await raw_redis.exists("faceflow:lock:k") == 0


@pytest.mark.redis
async def test_waiter_gets_the_holders_value(redis_cache: RedisCache, raw_redis: Redis) -> None:
    await raw_redis.set("faceflow:lock:k", "other-node", px=5000)
    flight = RedisFlight(redis_cache, lock_ttl_ms=5000)
    compute = Compute()

    async def other_node_finishes() -> None:
        await asyncio.sleep(0.1)
        assert await redis_cache.set("k", ENTRY)
        await raw_redis.delete("faceflow:lock:k")

    finisher = asyncio.create_task(other_node_finishes())
    result = await flight.run("k", compute, storer(redis_cache, "k"))
    await finisher
    assert (result.entry, result.computed, result.waited) == (ENTRY, False, True)
    assert compute.calls == 0


@pytest.mark.redis
async def test_holder_found_value_stored_just_before_its_lock(
    redis_cache: RedisCache, raw_redis: Redis
) -> None:
    # Another node stored the value and released its lock after this node's lookup missed.
    assert await redis_cache.set("k", ENTRY)
    compute = Compute()
    result = await RedisFlight(redis_cache, lock_ttl_ms=5000).run(
        "k", compute, storer(redis_cache, "k")
    )
    assert (result.computed, result.waited) == (False, False)
    assert compute.calls == 0
    assert await raw_redis.exists("faceflow:lock:k") == 0


@pytest.mark.redis
async def test_waiter_takes_over_when_the_holder_vanished(
    redis_cache: RedisCache, raw_redis: Redis
) -> None:
    await raw_redis.set("faceflow:lock:k", "crashed-node", px=150)  # never stores a value
    compute = Compute()
    result = await RedisFlight(redis_cache, lock_ttl_ms=5000).run(
        "k", compute, storer(redis_cache, "k")
    )
    assert (result.computed, result.waited) == (True, True)
    assert compute.calls == 1
    assert await redis_cache.get("k") == ENTRY


class Blocked:
    """A computation that says when it started and then never ends (its node died in it)."""

    def __init__(self) -> None:
        self.started = asyncio.Event()

    async def __call__(self) -> CacheEntry:
        self.started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


@pytest.mark.redis
async def test_a_dead_holders_lock_lapses_after_its_lease_not_the_lock_ttl(
    redis_url: str, redis_cache: RedisCache, raw_redis: Redis
) -> None:
    # Node A takes the lock and dies mid-compute: its Redis calls stop (here its breaker is
    # opened, so its renewals are refused as a killed process's would never come). Node B's
    # identical request used to wait the whole lock TTL (30 s by default) before computing.
    node_a = RedisCache.from_settings(cache_settings(redis_url))
    assert node_a is not None
    blocked = Blocked()
    holder = asyncio.create_task(
        RedisFlight(node_a, lock_ttl_ms=60_000, lease_ms=300).run("k", blocked, storer(node_a, "k"))
    )
    try:
        await blocked.started.wait()
        assert 0 < await raw_redis.pttl("faceflow:lock:k") <= 300
        for _ in range(3):
            node_a.breaker.record_failure()
        compute = Compute()
        # The guard is 30 times the lease: without the lease B waits the full 60 s TTL.
        async with asyncio.timeout(9):
            result = await RedisFlight(redis_cache, lock_ttl_ms=60_000, lease_ms=300).run(
                "k", compute, storer(redis_cache, "k")
            )
        assert (result.computed, result.waited) == (True, True)
        assert await redis_cache.get("k") == ENTRY
    finally:
        holder.cancel()
        await asyncio.gather(holder, return_exceptions=True)
        await node_a.close()


@pytest.mark.redis
async def test_a_live_holder_keeps_its_lock_past_the_lease(
    redis_cache: RedisCache, raw_redis: Redis
) -> None:
    loop = asyncio.get_running_loop()
    flight = RedisFlight(redis_cache, lock_ttl_ms=60_000, lease_ms=900)
    held_throughout = True

    async def compute() -> CacheEntry:
        # Runs for three leases, checking all along that the lock never lapsed (renewals come
        # every 300 ms, each a round trip of about a millisecond: a renewal may come 600 ms late
        # on a busy machine before the lock lapses).
        nonlocal held_throughout
        end = loop.time() + 2.7
        while loop.time() < end:
            held_throughout = held_throughout and bool(await raw_redis.exists("faceflow:lock:k"))
            await asyncio.sleep(0.02)
        return ENTRY

    result = await flight.run("k", compute, storer(redis_cache, "k"))
    assert result.computed
    assert held_throughout
    assert await raw_redis.exists("faceflow:lock:k") == 0


@pytest.mark.redis
async def test_renewing_stops_at_the_lock_ttl(redis_cache: RedisCache, raw_redis: Redis) -> None:
    # Compute longer than lock_ttl_ms loses its lock, as before leases: renewals never extend it.
    blocked = Blocked()
    holder = asyncio.create_task(
        RedisFlight(redis_cache, lock_ttl_ms=200, lease_ms=150).run(
            "k", blocked, storer(redis_cache, "k")
        )
    )
    try:
        await blocked.started.wait()
        # Waits for the expiry itself: bounded (25 times the TTL), no timing margin.
        deadline = asyncio.get_running_loop().time() + 5
        while await raw_redis.exists("faceflow:lock:k"):
            assert asyncio.get_running_loop().time() < deadline, "renewed past lock_ttl_ms"
            await asyncio.sleep(0.02)
    finally:
        holder.cancel()
        await asyncio.gather(holder, return_exceptions=True)


@pytest.mark.redis
async def test_waiting_is_bounded_by_the_lock_ttl(
    redis_cache: RedisCache, raw_redis: Redis
) -> None:
    await raw_redis.set("faceflow:lock:k", "stuck-node", px=60_000)
    compute = Compute()
    loop = asyncio.get_running_loop()
    start = loop.time()
    result = await RedisFlight(redis_cache, lock_ttl_ms=300).run(
        "k", compute, storer(redis_cache, "k")
    )
    elapsed = loop.time() - start
    assert (result.computed, result.waited) == (True, True)
    # Bounded by the 0.3 s TTL, not the stuck lock's 60 s: 3 s leaves a busy machine 10 times it.
    assert 0.2 <= elapsed < 3.0


class Timed:
    """A computation that records the deadline its tasks would get (DEADLINE_AT)."""

    def __init__(self) -> None:
        self.deadline_at: list[float | None] = []
        self.started_at: list[float] = []

    async def __call__(self) -> CacheEntry:
        self.deadline_at.append(DEADLINE_AT.get())
        self.started_at.append(asyncio.get_running_loop().time())
        return ENTRY


@pytest.mark.redis
async def test_a_waiter_answers_503_rather_than_compute_past_its_deadline(
    redis_cache: RedisCache, raw_redis: Redis
) -> None:
    # Another node's lock, alive for the whole wait (a slow holder renewing its lease). The
    # waiter used to wait lock_ttl_ms, then compute with a whole deadline of its own.
    await raw_redis.set("faceflow:lock:k", "slow-node", px=60_000)
    compute = Timed()
    flight = RedisFlight(redis_cache, lock_ttl_ms=60_000, deadline_s=0.3)
    async with asyncio.timeout(9):  # 30 times the deadline: without it, the 60 s lock TTL
        with pytest.raises(DeadlineExceeded) as caught:
            await flight.run("k", compute, storer(redis_cache, "k"))
    assert caught.value.retry_after_s >= 1
    assert compute.deadline_at == []  # nothing started
    assert await raw_redis.get("faceflow:lock:k") == b"slow-node"


@pytest.mark.redis
async def test_a_waiter_that_gives_up_early_computes_in_what_is_left(
    redis_cache: RedisCache, raw_redis: Redis
) -> None:
    await raw_redis.set("faceflow:lock:k", "slow-node", px=60_000)
    compute = Timed()
    loop = asyncio.get_running_loop()
    start = loop.time()
    result = await RedisFlight(redis_cache, lock_ttl_ms=300, deadline_s=60).run(
        "k", compute, storer(redis_cache, "k")
    )
    assert (result.computed, result.waited) == (True, True)
    [deadline_at], [started_at] = compute.deadline_at, compute.started_at
    assert deadline_at is not None
    # The request's deadline (from the flight's start), less the wait (0.3 s give or take the
    # last poll's 0.05 s): not a fresh one.
    assert start + 60 <= deadline_at <= started_at + 60 - 0.2
    assert DEADLINE_AT.get() is None


@pytest.mark.redis
async def test_taking_over_a_lapsed_lock_computes_in_what_is_left(
    redis_cache: RedisCache, raw_redis: Redis
) -> None:
    await raw_redis.set("faceflow:lock:k", "crashed-node", px=150)
    compute = Timed()
    start = asyncio.get_running_loop().time()
    result = await RedisFlight(redis_cache, lock_ttl_ms=5000, deadline_s=60).run(
        "k", compute, storer(redis_cache, "k")
    )
    assert (result.computed, result.waited) == (True, True)
    [deadline_at], [started_at] = compute.deadline_at, compute.started_at
    assert deadline_at is not None
    assert start + 60 <= deadline_at < started_at + 60
    # A holder that never waited computes on the pool's own deadline.
    other = Timed()
    result = await RedisFlight(redis_cache, lock_ttl_ms=5000, deadline_s=60).run(
        "k2", other, storer(redis_cache, "k2")
    )
    assert (result.computed, result.waited, other.deadline_at) == (True, False, [None])


@pytest.mark.redis
async def test_compute_error_propagates_releases_and_stores_nothing(
    redis_cache: RedisCache, raw_redis: Redis
) -> None:
    compute = Compute(error=KeyError("boom"))
    with pytest.raises(KeyError, match="boom"):
        await RedisFlight(redis_cache, lock_ttl_ms=5000).run("k", compute, storer(redis_cache, "k"))
    assert await raw_redis.exists("faceflow:lock:k", "faceflow:cache:k") == 0


@pytest.mark.redis
async def test_redis_down_computes_locally(
    redis_cache: RedisCache, redis_process: RedisProcess
) -> None:
    redis_process.kill()
    compute = Compute()
    result = await RedisFlight(redis_cache, lock_ttl_ms=5000).run(
        "k", compute, storer(redis_cache, "k")
    )
    assert (result.entry, result.computed) == (ENTRY, True)
    assert compute.calls == 1


@pytest.mark.parametrize(
    ("lock_ttl_ms", "poll_min_s", "poll_max_s"),
    [(0, 0.005, 0.05), (1000, 0.0, 0.05), (1000, 0.1, 0.05)],
)
def test_bad_flight_settings_are_refused(
    lock_ttl_ms: int, poll_min_s: float, poll_max_s: float
) -> None:
    cache = RedisCache.from_settings(cache_settings("redis://127.0.0.1:1/0"))
    assert cache is not None
    with pytest.raises(ValueError, match="lock_ttl_ms"):
        RedisFlight(cache, lock_ttl_ms=lock_ttl_ms, poll_min_s=poll_min_s, poll_max_s=poll_max_s)
