from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from redis.asyncio import Redis

from faceflow.cache.entry import CacheEntry
from faceflow.cache.keys import CUTOUT_KEY_PREFIX
from faceflow.cache.observer import CacheLevel
from faceflow.cache.redis_cache import RedisCache
from faceflow.cache.tiered import CacheStatus, ResultCache
from tests.cache.conftest import FAULT_TIMEOUT_MS, RESET_S, RecordingObserver, cache_settings
from tests.fixtures.redis_monitor import commands_during, reads_of
from tests.fixtures.redis_server import RedisProcess

ENTRY = CacheEntry("application/json", b'{"faces":[]}', {"faces": 0})
ENTRY_KEY = "faceflow:cache:"
LOCK = "faceflow:lock:"
# Required by the product owner for a hung Redis; see test_redis_cache.py.
CALL_BOUND_S = 0.2


class Compute:
    """Counts runs; sleeps so concurrent callers overlap; optionally fails."""

    def __init__(self, delay_s: float = 0.05, error: Exception | None = None) -> None:
        self.calls = 0
        self.delay_s = delay_s
        self.error = error

    async def __call__(self) -> CacheEntry:
        self.calls += 1
        await asyncio.sleep(self.delay_s)
        if self.error is not None:
            raise self.error
        return CacheEntry("application/json", b'{"computed":%d}' % self.calls)


async def recovered(cache: ResultCache, bound_s: float = RESET_S * 10) -> bool:
    """Put until the breaker's trial succeeds and closes it, bounded by ``bound_s``."""
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        await cache.put("probe", ENTRY)
        if not cache.breaker_open:
            return True
        await asyncio.sleep(0.05)
    return False


@asynccontextmanager
async def started(
    redis_url: str | None, observer: RecordingObserver | None = None, **overrides: object
) -> AsyncIterator[ResultCache]:
    cache = ResultCache.from_settings(cache_settings(redis_url, **overrides), observer)
    await cache.start()
    try:
        yield cache
    finally:
        await cache.close()


async def test_embedded_get_put_and_levels(observer: RecordingObserver) -> None:
    async with started(None, observer) as cache:
        assert not cache.redis_enabled
        assert not cache.breaker_open
        assert await cache.get("k") == (None, CacheLevel.MISS)
        await cache.put("k", ENTRY)
        assert await cache.get("k") == (ENTRY, CacheLevel.MEMORY)
        assert cache.memory_stats().items == 1
    assert observer.events == Counter({"miss": 1, "hit_memory": 1})


async def test_embedded_get_or_compute_statuses(observer: RecordingObserver) -> None:
    compute = Compute()
    async with started(None, observer) as cache:
        first = await cache.get_or_compute("k", compute)
        second = await cache.get_or_compute("k", compute)
    assert first[1] is CacheStatus.MISS
    assert second == (first[0], CacheStatus.HIT_MEMORY)
    assert compute.calls == 1
    assert observer.events == Counter({"miss": 1, "hit_memory": 1})


@pytest.mark.parametrize(
    "redis",
    [pytest.param(False, id="embedded"), pytest.param(True, id="redis", marks=pytest.mark.redis)],
)
async def test_fifty_concurrent_callers_compute_once(
    redis: bool, request: pytest.FixtureRequest, observer: RecordingObserver
) -> None:
    url = request.getfixturevalue("redis_url") if redis else None
    compute = Compute()
    async with started(url, observer) as cache:
        results = await asyncio.gather(*(cache.get_or_compute("new", compute) for _ in range(50)))
    assert compute.calls == 1
    assert len({entry.body for entry, _ in results}) == 1
    statuses = Counter(status for _, status in results)
    assert statuses == Counter({CacheStatus.MISS: 1, CacheStatus.JOINED: 49})
    assert observer.events == Counter({"miss": 1, "joined": 49})


async def test_compute_errors_propagate_to_all_and_are_not_cached() -> None:
    compute = Compute(error=ValueError("no face"))
    async with started(None) as cache:
        results = await asyncio.gather(
            *(cache.get_or_compute("k", compute) for _ in range(5)), return_exceptions=True
        )
        assert compute.calls == 1
        assert all(isinstance(r, ValueError) for r in results)
        assert await cache.get("k") == (None, CacheLevel.MISS)
        compute.error = None
        _, status = await cache.get_or_compute("k", compute)
    assert status is CacheStatus.MISS
    assert compute.calls == 2


async def test_cancelled_caller_does_not_cancel_the_computation() -> None:
    compute = Compute(delay_s=0.1)
    async with started(None) as cache:
        leader = asyncio.create_task(cache.get_or_compute("k", compute))
        follower = asyncio.create_task(cache.get_or_compute("k", compute))
        await asyncio.sleep(0.02)
        leader.cancel()
        entry, status = await follower
        assert status is CacheStatus.JOINED
        assert await cache.get("k") == (entry, CacheLevel.MEMORY)
    assert compute.calls == 1


async def test_entry_too_big_for_memory_is_still_answered() -> None:
    compute = Compute()
    async with started(None, memory_bytes=10) as cache:
        _, first = await cache.get_or_compute("k", compute)
        _, second = await cache.get_or_compute("k", compute)
    assert (first, second) == (CacheStatus.MISS, CacheStatus.MISS)
    assert compute.calls == 2


async def test_an_answer_over_the_entry_limit_is_answered_but_not_kept_in_memory() -> None:
    compute = Compute()
    async with started(None, memory_bytes=1 << 20, memory_max_entry_bytes=10) as cache:
        _, first = await cache.get_or_compute("k", compute)
        _, second = await cache.get_or_compute("k", compute)
        assert cache.memory_stats().items == 0
    assert (first, second) == (CacheStatus.MISS, CacheStatus.MISS)
    assert compute.calls == 2


MIB = 1 << 20


def cutout_key(n: int) -> str:
    return f"{CUTOUT_KEY_PREFIX}{n:064x}"


def sized(n_bytes: int, media_type: str = "image/png") -> CacheEntry:
    return CacheEntry(media_type, bytes(n_bytes))


async def test_an_idle_cutout_outlives_a_flood_of_large_renders() -> None:
    """The case measured: a user's cut-out, written once and not read since, then eight
    3.8 MB PNG renders of other clients (source= renders: no cut-out of their own). In one
    16 MB ring they evicted it; in its own part it stays, and the renders still evict each
    other."""
    async with started(None, memory_bytes=16 * MIB, memory_max_entry_bytes=4 * MIB) as cache:
        cutout = sized(1_200_000, "application/vnd.faceflow.matte")
        await cache.put(cutout_key(1), cutout)
        for n in range(8):
            await cache.put(f"ff1:id-photo:{n:064x}", sized(3_800_000))
        assert await cache.lookup(cutout_key(1)) == (cutout, CacheLevel.MEMORY)
        assert (await cache.lookup(f"ff1:id-photo:{0:064x}"))[0] is None
        assert (await cache.lookup(f"ff1:id-photo:{7:064x}"))[0] is not None
        assert cache.memory_stats().max_bytes == 16 * MIB
        assert cache.cutout_stats().items == 1


async def test_cutouts_evict_each_other_oldest_first() -> None:
    """The cut-outs' part is a ring like the other: more cut-outs than it holds push the oldest
    out (one read since it was written gets its second chance), and nothing else is touched."""
    async with started(None, memory_bytes=4 * MIB, memory_cutout_share=0.5) as cache:
        answer = sized(1_000, "application/json")
        await cache.put("ff1:detect:" + "0" * 64, answer)
        for n in range(3):
            await cache.put(cutout_key(n), sized(600_000))
        assert (await cache.lookup(cutout_key(1)))[0] is not None  # read: kept once
        for n in range(3, 5):
            await cache.put(cutout_key(n), sized(600_000))
        kept = [n for n in range(5) if (await cache.lookup(cutout_key(n)))[0] is not None]
        assert kept == [1, 3, 4]
        assert cache.cutout_stats().evictions == 2
        assert (await cache.lookup("ff1:detect:" + "0" * 64))[0] == answer


async def test_callers_that_looked_up_themselves_still_share_one_computation(
    observer: RecordingObserver,
) -> None:
    """``missed=True`` skips only the lookup: concurrent callers still join one flight, and a
    caller whose lookup missed just before the flight finished gets its result."""
    compute = Compute()
    async with started(None, observer) as cache:
        assert await cache.lookup("k") == (None, CacheLevel.MISS)
        first, second = await asyncio.gather(
            cache.get_or_compute("k", compute, missed=True),
            cache.get_or_compute("k", compute, missed=True),
        )
        late = await cache.get_or_compute("k", compute, missed=True)
    assert compute.calls == 1
    assert {first[1], second[1]} == {CacheStatus.MISS, CacheStatus.JOINED}
    assert first[0] == second[0] == late[0]
    assert late[1] is CacheStatus.HIT_MEMORY
    assert observer.events == Counter({"miss": 1, "joined": 1, "hit_memory": 1})


def reads_around_the_lock(commands: list[str], key: str) -> tuple[int, int]:
    """How many times Redis was asked for ``key``'s entry before its compute lock was taken,
    and after."""
    lock = next(i for i, command in enumerate(commands) if command.startswith(f"SET {LOCK}{key}"))
    return len(reads_of(commands[:lock], ENTRY_KEY + key)), len(
        reads_of(commands[lock:], ENTRY_KEY + key)
    )


@pytest.mark.redis
async def test_a_miss_looks_its_key_up_in_redis_once(redis_url: str) -> None:
    """One lookup per miss, whether the caller made it (the hot path: :meth:`lookup`, then
    ``missed=True``) or :meth:`get_or_compute` did; then the one check made under the cross-node
    lock, for an entry another node stored between the two."""
    async with started(redis_url) as cache:

        async def lookup_then_compute() -> CacheStatus:
            assert await cache.lookup("a") == (None, CacheLevel.MISS)
            _, status = await cache.get_or_compute("a", Compute(0), missed=True)
            return status

        async def compute_alone() -> CacheStatus:
            _, status = await cache.get_or_compute("b", Compute(0))
            return status

        after_lookup, by_caller = await commands_during(redis_url, lookup_then_compute)
        alone, by_cache = await commands_during(redis_url, compute_alone)
    assert after_lookup is alone is CacheStatus.MISS
    assert reads_around_the_lock(by_caller, "a") == (1, 1)
    assert reads_around_the_lock(by_cache, "b") == (1, 1)


@pytest.mark.redis
async def test_two_nodes_share_redis(redis_url: str, observer: RecordingObserver) -> None:
    async with started(redis_url) as node_a, started(redis_url, observer) as node_b:
        assert node_a.redis_enabled
        await node_a.put("k", ENTRY)
        assert await node_b.get("k") == (ENTRY, CacheLevel.REDIS)
        assert await node_b.get("k") == (ENTRY, CacheLevel.MEMORY)  # written back
        compute = Compute()
        entry, status = await node_a.get_or_compute("k2", compute)
        assert status is CacheStatus.MISS
        assert await node_b.get_or_compute("k2", compute) == (entry, CacheStatus.HIT_REDIS)
    assert compute.calls == 1
    assert observer.events == Counter({"hit_redis": 2, "hit_memory": 1})


@pytest.mark.redis
@pytest.mark.parametrize("missed", [False, True], ids=["own-lookup", "caller-looked-up"])
async def test_two_nodes_ten_callers_each_compute_once(redis_url: str, missed: bool) -> None:
    compute = Compute(delay_s=0.1)
    async with started(redis_url) as node_a, started(redis_url) as node_b:
        results = await asyncio.gather(
            *(
                node.get_or_compute("new", compute, missed=missed)
                for node in (node_a, node_b)
                for _ in range(10)
            )
        )
    assert compute.calls == 1
    assert len({entry.body for entry, _ in results}) == 1
    statuses = Counter(status for _, status in results)
    assert statuses[CacheStatus.MISS] == 1
    assert statuses[CacheStatus.JOINED] + statuses[CacheStatus.HIT_REDIS] == 19


@pytest.mark.redis
async def test_an_answer_too_large_to_share_is_computed_at_once_by_each_node(
    redis_url: str, raw_redis: Redis
) -> None:
    # A 12 MB annotated PNG asked for on two nodes at once: the second waited on the first's
    # lock, took it and found nothing in Redis, and only then computed it, for three nodes a
    # third after the second.
    large = CacheEntry("image/png", bytes(1024))
    both_computing = asyncio.Event()
    computing = 0

    async def compute() -> CacheEntry:
        nonlocal computing
        computing += 1
        if computing == 2:
            both_computing.set()
        await both_computing.wait()
        return large

    limits: dict[str, object] = {
        "redis_max_entry_bytes": 512,
        "memory_max_entry_bytes": 512,
        "lock_ttl_ms": 60_000,
    }
    async with (
        started(redis_url, None, **limits) as node_a,
        started(redis_url, None, **limits) as node_b,
    ):
        first = await node_a.get_or_compute("large", lambda: asyncio.sleep(0, large))
        assert await raw_redis.exists(f"{ENTRY_KEY}large") == 0
        # Well inside the lock's 60 s, which a node waiting in line would wait out.
        async with asyncio.timeout(10):
            answers = await asyncio.gather(
                node_a.get_or_compute("large", compute), node_b.get_or_compute("large", compute)
            )
    assert first[1] is CacheStatus.MISS
    assert list(answers) == [(large, CacheStatus.MISS)] * 2


@pytest.mark.redis
async def test_killed_redis_fails_open(
    redis_url: str, redis_process: RedisProcess, observer: RecordingObserver
) -> None:
    compute = Compute(delay_s=0)
    async with started(redis_url, observer, redis_timeout_ms=FAULT_TIMEOUT_MS) as cache:
        redis_process.kill()
        for n in range(5):
            assert await cache.get(f"k{n}") == (None, CacheLevel.MISS)
            await cache.put(f"p{n}", ENTRY)
            _, status = await cache.get_or_compute(f"c{n}", compute)
            assert status is CacheStatus.MISS
        assert cache.breaker_open
        assert observer.breaker == [True]
        assert await cache.get("p0") == (ENTRY, CacheLevel.MEMORY)  # memory still works

        redis_process.restart()
        assert await recovered(cache)
        await cache.put("back", ENTRY)
        assert observer.breaker == [True, False]
    async with started(redis_url) as other_node:
        assert await other_node.get("back") == (ENTRY, CacheLevel.REDIS)


@pytest.mark.redis
async def test_paused_redis_bounds_every_call_then_recovers(
    redis_url: str, redis_process: RedisProcess
) -> None:
    compute = Compute(delay_s=0)
    async with (
        started(redis_url, redis_timeout_ms=FAULT_TIMEOUT_MS) as cache,
        started(redis_url) as other_node,
    ):
        await cache.put("before", ENTRY)
        redis_process.pause()
        try:
            for n in range(5):
                start = time.monotonic()
                assert await cache.get(f"k{n}") == (None, CacheLevel.MISS)
                assert time.monotonic() - start < CALL_BOUND_S
                start = time.monotonic()
                await cache.put(f"p{n}", ENTRY)
                assert time.monotonic() - start < CALL_BOUND_S
                start = time.monotonic()
                _, status = await cache.get_or_compute(f"c{n}", compute)
                assert time.monotonic() - start < CALL_BOUND_S
                assert status is CacheStatus.MISS
            assert cache.breaker_open
        finally:
            redis_process.resume()

        assert await recovered(cache)
        await cache.put("after", ENTRY)
        assert await other_node.get("after") == (ENTRY, CacheLevel.REDIS)
        assert await other_node.get("before") == (ENTRY, CacheLevel.REDIS)


@pytest.mark.redis
async def test_start_and_close_with_redis_down(redis_url: str, redis_process: RedisProcess) -> None:
    redis_process.kill()
    compute = Compute(delay_s=0)
    start = time.monotonic()
    async with started(redis_url, redis_timeout_ms=FAULT_TIMEOUT_MS) as cache:
        _, status = await cache.get_or_compute("k", compute)
    assert status is CacheStatus.MISS
    assert time.monotonic() - start < 1.0


async def test_close_cancels_computations_in_flight() -> None:
    compute = Compute(delay_s=10)
    async with started(None) as cache:
        caller = asyncio.create_task(cache.get_or_compute("k", compute))
        await asyncio.sleep(0.01)
    with pytest.raises(asyncio.CancelledError):
        await caller


@pytest.mark.redis
async def test_start_builds_a_tls_redis_s_ssl_context_before_its_first_call(
    tls_url: str, ssl_builds: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Built by the first call, it took that call's whole 50 ms budget and more (170-235 ms at
    # load 13): every node's start-up said "redis did not answer (TimeoutError)".
    built_before_first_call: list[int] = []
    ping = RedisCache.ping

    async def first_looking(self: RedisCache) -> bool:
        built_before_first_call.append(len(ssl_builds))
        return await ping(self)

    monkeypatch.setattr(RedisCache, "ping", first_looking)
    async with started(tls_url) as cache:
        assert not cache.breaker_open
    assert built_before_first_call[0] > 0, built_before_first_call
    assert threading.get_ident() not in ssl_builds


@pytest.mark.redis
@pytest.mark.parametrize(
    ("appendonly", "save", "how"),
    [
        pytest.param("no", "3600 1 300 100", '(save "3600 1 300 100")', id="stock-snapshots"),
        pytest.param("yes", "", "(appendonly yes)", id="aof"),
        pytest.param("no", "", None, id="memory-only"),
    ],
)
async def test_a_cache_redis_that_writes_to_its_disk_is_named_at_start(
    redis_url: str,
    raw_redis: Redis,
    caplog: pytest.LogCaptureFixture,
    appendonly: str,
    save: str,
    how: str | None,
) -> None:
    """A stock Redis snapshots what it holds (its default save rules): every cached ID photo
    and face report reached its disk, while the README said images never are, and nothing
    said so. The node now says it at start, with what to set (a cache needs no persistence)."""
    await raw_redis.config_set("appendonly", appendonly)
    await raw_redis.config_set("save", save)
    try:
        with caplog.at_level(logging.WARNING, logger="faceflow.cache"):
            async with started(redis_url):
                pass
    finally:
        await raw_redis.config_set("save", "")
        await raw_redis.config_set("appendonly", "no")
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    if how is None:
        assert said == []
        return
    assert len(said) == 1, said
    assert how in said[0]
    assert "ID photos" in said[0]
    assert 'save "" and appendonly no' in said[0]


@pytest.mark.redis
async def test_a_cache_redis_user_denied_config_is_not_warned_about_its_disk(
    redis_url: str, raw_redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """Managed services deny CONFIG: the node cannot tell, says so at debug only, and the
    cache works (the refusal is no outage: the breaker stays closed)."""
    await raw_redis.config_set("save", "3600 1")
    await raw_redis.acl_setuser(
        "noconfig",
        enabled=True,
        passwords=["+secret"],
        keys=["~*"],
        channels=["*"],
        commands=["+@all", "-@dangerous"],
    )
    url = redis_url.replace("redis://", "redis://noconfig:secret@", 1)
    try:
        with caplog.at_level(logging.DEBUG, logger="faceflow.cache"):
            async with started(url) as cache:
                _, status = await cache.get_or_compute("k", Compute(delay_s=0))
                assert status is CacheStatus.MISS
                assert not cache.breaker_open
    finally:
        await raw_redis.acl_deluser("noconfig")
        await raw_redis.config_set("save", "")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("persistence settings" in r.getMessage() for r in caplog.records)
