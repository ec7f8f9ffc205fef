from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from redis.asyncio import Redis

from faceflow.cache.breaker import CircuitBreaker
from faceflow.cache.entry import SCHEMA_VERSION, CacheEntry, encode_entry
from faceflow.cache.redis_cache import (
    REDIS_CONNECTIONS,
    LockResult,
    RedisCache,
    make_client,
    read_value,
)
from faceflow.cache.tiered import CacheStatus, ResultCache
from tests.cache.conftest import FAULT_TIMEOUT_MS, RESET_S, RecordingObserver, cache_settings
from tests.fixtures.redis_server import RedisProcess

ENTRY = CacheEntry("application/json", b'{"faces":[{"age":33}]}', {"faces": 1})

# A call against a dead or hung Redis must come back within this (required by the product owner;
# generous against the 50 ms timeout so a loaded machine does not make the test flaky).
CALL_BOUND_S = 0.2
# Fifty calls started at once against a hung Redis share one event loop (each opens a connection),
# so they are held to a looser bound: about 0.1 s idle, 0.51 s once at load average 14; without
# the timeout they would wait for as long as Redis stays hung (the test's whole pause).
CONCURRENT_BOUND_S = 1.0


@pytest.mark.parametrize(
    ("rng_value", "expected_ms"),
    [(0.0, 90_000), (0.25, 95_000), (0.5, 100_000), (1.0, 110_000)],
)
def test_jittered_ttl_spans_the_configured_range(rng_value: float, expected_ms: int) -> None:
    cache = RedisCache(
        make_client("redis://127.0.0.1:1/0", 0.05),  # never connected: no call is made
        timeout_s=0.05,
        breaker=CircuitBreaker(3, 1.0),
        ttl_s=100,
        ttl_jitter=0.1,
        rng=lambda: rng_value,
    )
    assert cache.jittered_ttl_ms() == expected_ms
    assert cache.jittered_ttl_ms(ttl_s=10) == expected_ms // 10


def test_no_redis_url_means_no_redis_cache() -> None:
    assert RedisCache.from_settings(cache_settings(None)) is None


@pytest.fixture
async def cache(redis_url: str, observer: RecordingObserver) -> AsyncIterator[RedisCache]:
    redis_cache = RedisCache.from_settings(cache_settings(redis_url), observer)
    assert redis_cache is not None
    try:
        yield redis_cache
    finally:
        await redis_cache.close()


@pytest.fixture
async def fault_cache(redis_url: str, observer: RecordingObserver) -> AsyncIterator[RedisCache]:
    """A cache with the production default timeout, for tests that kill or pause Redis."""
    settings = cache_settings(redis_url, redis_timeout_ms=FAULT_TIMEOUT_MS)
    redis_cache = RedisCache.from_settings(settings, observer)
    assert redis_cache is not None
    assert redis_cache.timeout_s == 0.05
    try:
        yield redis_cache
    finally:
        await redis_cache.close()


@pytest.mark.redis
async def test_round_trip(cache: RedisCache, observer: RecordingObserver) -> None:
    assert await cache.get("k1") is None
    assert await cache.set("k1", ENTRY)
    assert await cache.get("k1") == ENTRY
    assert await cache.get("k2") is None
    assert await cache.delete("k1")
    assert await cache.get("k1") is None
    assert observer.errors == []
    assert not cache.breaker.is_open


@pytest.mark.redis
async def test_keys_are_namespaced_and_values_versioned(
    cache: RedisCache, raw_redis: Redis
) -> None:
    await cache.set("ff1:analyze:abc", ENTRY)
    assert await raw_redis.keys("*") == [b"faceflow:cache:ff1:analyze:abc"]
    raw = await raw_redis.get("faceflow:cache:ff1:analyze:abc")
    assert msgpack.unpackb(raw)[0] == SCHEMA_VERSION


@pytest.mark.redis
async def test_ttl_is_applied_with_jitter(cache: RedisCache, raw_redis: Redis) -> None:
    ttls_ms = []
    for n in range(40):
        assert await cache.set(f"k{n}", ENTRY, ttl_s=100)
        ttls_ms.append(await raw_redis.pttl(f"faceflow:cache:k{n}"))
    # 100 s ± 10 %, less the few ms between SET and PTTL.
    assert all(89_000 <= ttl <= 110_000 for ttl in ttls_ms), ttls_ms
    assert max(ttls_ms) - min(ttls_ms) > 1000, "jitter was not applied"


@pytest.mark.redis
@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"\x80\x04garbage", id="corrupt"),
        pytest.param(msgpack.packb([SCHEMA_VERSION + 1, "a/b", b"x", {}]), id="unknown-version"),
        pytest.param(encode_entry(ENTRY)[:-3], id="truncated"),
    ],
)
async def test_unreadable_value_is_a_miss(
    cache: RedisCache, raw_redis: Redis, observer: RecordingObserver, raw: bytes
) -> None:
    await raw_redis.set("faceflow:cache:k", raw)
    assert await cache.get("k") is None
    assert observer.errors == []  # a bad value is not Redis failing
    assert not cache.breaker.is_open


@pytest.mark.redis
async def test_a_full_redis_refusing_writes_keeps_serving_reads(
    cache: RedisCache, raw_redis: Redis, observer: RecordingObserver
) -> None:
    """maxmemory with noeviction: every write is refused (OOM) at once, reads still work. The
    refusals used to open the breaker (three in a row), and the node then stopped reading the
    results other nodes had stored, computing them again."""
    assert await cache.set("stored", ENTRY)
    policy = (await raw_redis.config_get("maxmemory-policy"))["maxmemory-policy"]
    assert policy is not None
    await raw_redis.config_set("maxmemory-policy", "noeviction")
    await raw_redis.config_set("maxmemory", 1)  # below what it holds already
    try:
        for n in range(5):  # more refusals than breaker_failures (3)
            assert not await cache.set(f"k{n}", ENTRY)
            assert await cache.acquire_lock(f"k{n}", "token", 1000) is LockResult.UNAVAILABLE
        assert not cache.breaker.is_open
        assert await cache.get("stored") == ENTRY
        assert observer.errors == ["set", "lock"] * 5  # still counted in the metrics
    finally:
        await raw_redis.config_set("maxmemory", 0)
        await raw_redis.config_set("maxmemory-policy", policy)


@pytest.mark.redis
async def test_a_full_redis_is_said_once_as_it_fills_and_once_as_it_has_room(
    cache: RedisCache, raw_redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """Its refusals were logged at debug only: an operator saw no more than a metric while
    every node computed what it would have shared."""
    policy = (await raw_redis.config_get("maxmemory-policy"))["maxmemory-policy"]
    assert policy is not None
    await raw_redis.config_set("maxmemory-policy", "noeviction")
    await raw_redis.config_set("maxmemory", 1)
    try:
        with caplog.at_level(logging.INFO, logger="faceflow.cache.redis_cache"):
            for n in range(3):
                assert not await cache.set(f"k{n}", ENTRY)
                assert await cache.acquire_lock(f"k{n}", "token", 1000) is LockResult.UNAVAILABLE
            await raw_redis.config_set("maxmemory", 0)
            assert await cache.set("k", ENTRY)
            assert await cache.set("k2", ENTRY)
    finally:
        await raw_redis.config_set("maxmemory", 0)
        await raw_redis.config_set("maxmemory-policy", policy)

    said = [(r.levelno, r.getMessage()) for r in caplog.records if r.levelno >= logging.INFO]
    assert [level for level, _ in said] == [logging.WARNING, logging.INFO]
    assert "out of memory" in said[0][1]
    assert "maxmemory" in said[0][1]  # Redis's own words
    assert "room again" in said[1][1]


@pytest.mark.redis
async def test_an_entry_too_large_to_read_back_in_time_is_not_stored(
    redis_url: str, raw_redis: Redis, observer: RecordingObserver
) -> None:
    """A 27 MB annotated PNG was stored, and its GETs (125 ms on this VM) outran the 50 ms
    timeout: each a miss computed again, each counted toward the breaker."""
    settings = cache_settings(redis_url, redis_max_entry_bytes=len(encode_entry(ENTRY)))
    cache = RedisCache.from_settings(settings, observer)
    assert cache is not None
    try:
        assert await cache.set("fits", ENTRY)
        large = CacheEntry("image/png", b"\x89PNG" + b"\0" * 1024)
        assert not await cache.set("large", large)
        assert await raw_redis.exists("faceflow:cache:large") == 0
        assert await cache.get("fits") == ENTRY
        # Marked instead, for those waiting on its lock, as long as it would have been kept.
        assert await cache.poll("large") == (None, True)
        assert await cache.poll("fits") == (ENTRY, False)
        assert await cache.poll("absent") == (None, False)
        assert await raw_redis.pttl("faceflow:unshared:large") > 500_000  # ttl_s 600 ± 10%
        assert observer.errors == []  # not Redis failing
    finally:
        await cache.close()


@pytest.mark.redis
async def test_lock_is_exclusive_and_released_only_by_its_token(
    cache: RedisCache, raw_redis: Redis
) -> None:
    assert await cache.acquire_lock("k", "token-a", 5000) is LockResult.ACQUIRED
    assert await cache.acquire_lock("k", "token-b", 5000) is LockResult.HELD
    assert 0 < await raw_redis.pttl("faceflow:lock:k") <= 5000
    assert not await cache.release_lock("k", "token-b")
    assert await raw_redis.get("faceflow:lock:k") == b"token-a"
    assert await cache.release_lock("k", "token-a")
    assert await raw_redis.get("faceflow:lock:k") is None
    assert await cache.acquire_lock("k", "token-b", 5000) is LockResult.ACQUIRED


@pytest.mark.redis
async def test_only_the_locks_owner_renews_it(cache: RedisCache, raw_redis: Redis) -> None:
    assert await cache.acquire_lock("k", "token-a", 100) is LockResult.ACQUIRED
    assert not await cache.renew_lock("k", "token-b", 5000)
    assert 0 < await raw_redis.pttl("faceflow:lock:k") <= 100
    assert await cache.renew_lock("k", "token-a", 5000)
    assert 100 < await raw_redis.pttl("faceflow:lock:k") <= 5000
    assert await cache.release_lock("k", "token-a")
    # A lock that lapsed is not revived by its former owner.
    assert not await cache.renew_lock("k", "token-a", 5000)
    assert await raw_redis.exists("faceflow:lock:k") == 0


@pytest.mark.redis
async def test_lock_release_is_tried_even_with_the_breaker_open(
    cache: RedisCache, raw_redis: Redis
) -> None:
    assert await cache.acquire_lock("k", "mine", 5000) is LockResult.ACQUIRED
    for _ in range(3):
        cache.breaker.record_failure()
    assert cache.breaker.is_open
    assert await cache.get("k") is None  # refused by the breaker
    assert await cache.release_lock("k", "mine")
    assert await raw_redis.exists("faceflow:lock:k") == 0


@pytest.mark.redis
async def test_lock_expires_by_its_ttl(cache: RedisCache, raw_redis: Redis) -> None:
    assert await cache.acquire_lock("k", "a", 100) is LockResult.ACQUIRED
    assert 0 < await raw_redis.pttl("faceflow:lock:k") <= 100
    # Waits for the expiry itself rather than sleeping past it: bounded, no timing margin.
    deadline = time.monotonic() + 10
    while await cache.acquire_lock("k", "b", 100) is not LockResult.ACQUIRED:
        assert time.monotonic() < deadline, "the lock never expired"
        await asyncio.sleep(0.01)


async def _wait_for_recovery(cache: RedisCache, bound_s: float, key: str = "after") -> bool:
    """Keep calling until a set of ``key`` succeeds (the breaker's trial), bounded by
    ``bound_s``."""
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        if await cache.set(key, ENTRY):
            return True
        await asyncio.sleep(0.05)
    return False


async def _connected(cache: RedisCache, observer: RecordingObserver, key: str) -> None:
    """``key`` stored and a pooled connection open, however many tries its first connect took
    (on a busy machine it can outlast the 50 ms timeout, which is not what the fault tests are
    about); the observer's records start after it."""
    assert await _wait_for_recovery(cache, bound_s=RESET_S * 20, key=key)
    assert not cache.breaker.is_open
    observer.breaker.clear()
    observer.errors.clear()


@pytest.mark.redis
async def test_killed_redis_fails_open_and_recovers(
    fault_cache: RedisCache, redis_process: RedisProcess, observer: RecordingObserver
) -> None:
    await _connected(fault_cache, observer, "before")
    redis_process.kill()

    for _ in range(5):
        start = time.monotonic()
        assert await fault_cache.get("before") is None
        assert not await fault_cache.set("k", ENTRY)
        assert await fault_cache.acquire_lock("k", "t", 1000) is LockResult.UNAVAILABLE
        assert not await fault_cache.release_lock("k", "t")
        assert not await fault_cache.ping()
        assert time.monotonic() - start < CALL_BOUND_S * 5
    assert fault_cache.breaker.is_open
    assert observer.breaker == [True]
    # Three failures open the breaker, which then stops every call but the lock release.
    assert observer.errors == ["get", "set", "lock"] + ["unlock"] * 5

    redis_process.restart()
    assert await _wait_for_recovery(fault_cache, bound_s=RESET_S * 10)
    assert not fault_cache.breaker.is_open
    assert observer.breaker == [True, False]
    assert await fault_cache.get("after") == ENTRY


@pytest.mark.redis
async def test_paused_redis_never_hangs_callers(
    fault_cache: RedisCache, redis_process: RedisProcess, observer: RecordingObserver
) -> None:
    await _connected(fault_cache, observer, "k")
    redis_process.pause()
    try:
        durations = []
        for _ in range(6):
            start = time.monotonic()
            assert await fault_cache.get("k") is None
            durations.append(time.monotonic() - start)
            start = time.monotonic()
            assert not await fault_cache.set("k2", ENTRY)
            durations.append(time.monotonic() - start)
        assert max(durations) < CALL_BOUND_S, durations
        # The first calls really waited for the timeout, then the open breaker answered at once.
        assert durations[0] >= FAULT_TIMEOUT_MS / 1000 * 0.9
        assert fault_cache.breaker.is_open
        assert observer.breaker == [True]

        # While paused, a half-open trial also times out within the bound and re-opens.
        await asyncio.sleep(RESET_S)
        start = time.monotonic()
        assert await fault_cache.get("k") is None
        assert time.monotonic() - start < CALL_BOUND_S
        assert fault_cache.breaker.is_open
    finally:
        redis_process.resume()

    assert await _wait_for_recovery(fault_cache, bound_s=RESET_S * 10)
    assert await fault_cache.get("k") == ENTRY
    assert observer.breaker == [True, False]


@pytest.mark.redis
async def test_concurrent_calls_to_a_paused_redis_are_all_bounded(
    fault_cache: RedisCache, redis_process: RedisProcess, observer: RecordingObserver
) -> None:
    await _connected(fault_cache, observer, "k")
    redis_process.pause()
    try:
        start = time.monotonic()
        results = await asyncio.gather(*(fault_cache.get(f"k{n}") for n in range(50)))
        elapsed = time.monotonic() - start
    finally:
        redis_process.resume()
    assert results == [None] * 50
    assert elapsed < CONCURRENT_BOUND_S
    assert fault_cache.breaker.is_open


@pytest.mark.redis
async def test_close_is_bounded_when_redis_is_paused(
    fault_cache: RedisCache, redis_process: RedisProcess, observer: RecordingObserver
) -> None:
    await _connected(fault_cache, observer, "k")
    redis_process.pause()
    try:
        start = time.monotonic()
        await fault_cache.close()
        assert time.monotonic() - start < 1.0
    finally:
        redis_process.resume()


@pytest.mark.redis
async def test_a_burst_of_lookups_waits_for_a_connection_rather_than_failing(
    cache: RedisCache, observer: RecordingObserver
) -> None:
    """More lookups at once than the pool has connections, against a healthy Redis: each waits
    for a free connection and hits. redis-py's default pool (100 connections) refused the 101st
    at once (MaxConnectionsError): a miss, a failure on the breaker, which the burst opened, and
    the node stopped using the shared cache for breaker_reset_s."""
    assert await cache.set("k", ENTRY)
    for _ in range(3):
        results = await asyncio.gather(*(cache.get("k") for _ in range(3 * REDIS_CONNECTIONS)))
        assert results == [ENTRY] * (3 * REDIS_CONNECTIONS)
    assert observer.errors == []
    assert not cache.breaker.is_open


class _SilentServer:
    """A TCP server that accepts every connection and never answers: a Redis hung after its
    accept loop (or a proxy in front of a dead one). Counts the connections open at once."""

    def __init__(self) -> None:
        self.open = 0
        self.peak = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=512)
        port = self._server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/0"

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        self.peak = max(self.peak, self.open)
        try:
            while await reader.read(4096):  # the commands, never answered, until the client goes
                pass
        except ConnectionError:
            pass
        finally:
            self.open -= 1
            writer.close()


async def test_a_silent_redis_gets_a_bounded_number_of_connections() -> None:
    """200 lookups at once against a Redis that accepts and never answers: each waits for one
    of at most REDIS_CONNECTIONS connections, and every one is a miss within the call's timeout,
    never an error. Before, the pool opened one connection for each call under way, up to its
    default 100."""
    server = _SilentServer()
    async with server as url:
        settings = cache_settings(url, redis_timeout_ms=FAULT_TIMEOUT_MS, breaker_failures=3)
        cache = RedisCache.from_settings(settings)
        assert cache is not None
        try:
            results = await asyncio.gather(*(cache.get(f"k{n}") for n in range(200)))
        finally:
            await cache.close()
    assert results == [None] * 200
    assert 1 <= server.peak <= REDIS_CONNECTIONS
    assert cache.breaker.is_open


@pytest.mark.redis
async def test_a_redis_that_refuses_every_call_is_logged_with_its_reason(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A wrong password or database number fails every call as a hung Redis does: the log
    said "redis did not answer" and the breaker opened, with no word of why. Redis's own
    reason is now in both warnings (the URL never: it may hold the password)."""
    settings = cache_settings(redis_url.removesuffix("/0") + "/99")  # Redis has 16 databases
    results = ResultCache.from_settings(settings)
    with caplog.at_level(logging.WARNING, logger="faceflow.cache"):
        await results.start()
        for _ in range(settings.breaker_failures):
            await results.get("k1")
    await results.close()

    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(said) == 2, said
    assert said[0].startswith("result cache: redis did not answer (DB index is out of range)")
    assert said[1].startswith("redis cache breaker opened (DB index is out of range)")


@pytest.mark.redis
async def test_a_user_denied_scripting_keeps_the_breaker_closed_and_shares_results(
    redis_url: str, raw_redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """An ACL user without @scripting (the lock's renewal and release are scripts): each
    release refused counted on the breaker, so a burst of misses opened it, and the node
    stopped reading results from Redis for breaker_reset_s, at every burst. Refused, Redis
    answered: it is said once, and the lock lapses by its lease."""
    await raw_redis.acl_setuser(
        "noscripts",
        enabled=True,
        passwords=["+secret"],
        keys=["~*"],
        channels=["*"],
        commands=["+@all", "-@scripting", "-@dangerous"],
    )
    url = redis_url.replace("redis://", "redis://noscripts:secret@", 1)
    nodes = [ResultCache.from_settings(cache_settings(url)) for _ in range(2)]
    try:

        async def compute() -> CacheEntry:
            return ENTRY

        with caplog.at_level(logging.WARNING, logger="faceflow.cache.redis_cache"):
            first = await asyncio.gather(
                *(nodes[0].get_or_compute(f"k{n}", compute) for n in range(10))
            )
        assert {status for _, status in first} == {CacheStatus.MISS}
        assert not nodes[0].breaker_open
        # The other node reads what the first stored.
        second = [await nodes[1].get_or_compute(f"k{n}", compute) for n in range(10)]
        assert {status for _, status in second} == {CacheStatus.HIT_REDIS}
        said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(said) == 1
        assert "evalsha" in said[0]
    finally:
        for node in nodes:
            await node.close()
        await raw_redis.acl_deluser("noscripts")


@pytest.mark.redis
async def test_a_tls_connection_builds_its_ssl_context_off_the_event_loop(
    tls_url: str, ssl_builds: list[int]
) -> None:
    # Not prepared (as a client whose start-up build failed): the first connection builds it.
    # redis-py did so on the event loop, 170-235 ms of CPU at load 13 that stalled every request.
    cache = RedisCache.from_settings(cache_settings(tls_url))
    assert cache is not None
    try:
        assert await cache.ping(), cache.last_error
    finally:
        await cache.close()
    assert ssl_builds, "no SSL context was built: the test would prove nothing"
    assert threading.get_ident() not in ssl_builds


@pytest.mark.redis
async def test_prepare_builds_the_tls_context_in_a_thread_and_connections_share_it(
    tls_url: str, ssl_builds: list[int]
) -> None:
    cache = RedisCache.from_settings(cache_settings(tls_url))
    assert cache is not None
    try:
        await cache.prepare()
        built = len(ssl_builds)
        assert built > 0, "prepare built nothing: the first call would build it in its budget"
        assert threading.get_ident() not in ssl_builds
        # Concurrent calls open several connections: none builds a context of its own.
        assert all(await asyncio.gather(*(cache.ping() for _ in range(5))))
        assert len(ssl_builds) == built
    finally:
        await cache.close()


@pytest.mark.redis
async def test_prepare_without_tls_or_with_a_missing_ca_file_is_harmless(
    redis_url: str, tls_redis_server: RedisProcess, tmp_path: Path
) -> None:
    plain = RedisCache.from_settings(cache_settings(redis_url))
    missing_ca = RedisCache.from_settings(
        cache_settings(tls_redis_server.tls_url(tmp_path / "absent.pem"))
    )
    assert plain is not None
    assert missing_ca is not None
    try:
        await plain.prepare()
        assert await plain.ping()
        await missing_ca.prepare()  # left to the first call to report
        assert not await missing_ca.ping()
        assert "No such file" in str(missing_ca.last_error)
    finally:
        await plain.close()
        await missing_ca.close()


@pytest.mark.redis
async def test_an_entry_over_redis_s_output_buffer_limit_is_read_in_ranges(
    cache: RedisCache, raw_redis: Redis
) -> None:
    # Managed Redis services may cap a normal client's reply buffer; a reply over it makes Redis
    # close the connection as it answers. Read whole, a 1.3 MB ID photo failed every read, and
    # three opened the breaker: the node stopped reading every other stored result.
    # Not a multiple of the ranges read, no two ranges alike: a range lost or repeated shows.
    entry = CacheEntry("image/png", secrets.token_bytes(1_300_001), {"faces": 1})
    assert await cache.set("big", entry)
    await raw_redis.config_set("client-output-buffer-limit", "normal 1mb 1mb 0")
    try:
        for _ in range(4):
            assert await cache.get("big") == entry, cache.last_error
            assert await cache.poll("big") == (entry, False), cache.last_error
    finally:
        await raw_redis.config_set("client-output-buffer-limit", "normal 0 0 0")
    assert not cache.breaker.is_open


@pytest.mark.redis
async def test_an_entry_replaced_between_two_ranges_is_read_again_not_mixed(
    redis_url: str, raw_redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    await raw_redis.set("k", b"aaaabbbbcc")
    getrange = Redis.getrange
    ranges_read = 0

    async def replaced_after_the_second(self: Redis, *args: Any) -> Any:
        nonlocal ranges_read
        ranges_read += 1
        if ranges_read == 3:
            await raw_redis.set("k", b"xxxxyyyyzz")
        return await getrange(self, *args)

    client = make_client(redis_url, 2.0)
    monkeypatch.setattr(Redis, "getrange", replaced_after_the_second)
    try:
        assert await read_value(client, "k", None, chunk_bytes=4) == b"xxxxyyyyzz"
        assert await read_value(client, "absent", None, chunk_bytes=4) is None
    finally:
        await client.aclose()
