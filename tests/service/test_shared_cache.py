"""Two API nodes sharing one real Redis, and Redis failing under them (state.py's cache path).

Each node is the real app in this process (tests/service/in_process.py): what is shared between
them is Redis alone. ``hot`` keeps an in-process cache; ``cold`` has none (``memory_bytes=0``), so
every hit it answers came from Redis and every Redis failure shows on it.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import msgpack
import pytest
import pytest_asyncio
from redis import Redis

from faceflow.cache.entry import FAILURE_MEDIA_TYPE, SCHEMA_VERSION
from tests.fixtures.images import truncated
from tests.fixtures.live_server import Scrape
from tests.fixtures.redis_monitor import commands_during, reads_of
from tests.fixtures.redis_server import RedisProcess
from tests.service.in_process import InProcess, app_settings, running_app
from tests.service.support import assert_error, fresh

pytestmark = [pytest.mark.redis, pytest.mark.asyncio(loop_scope="session")]

# The product's bound: a hung Redis must not delay any request by more than this.
REDIS_DELAY_BOUND_S = 0.2
SAMPLES = 9
BREAKER_RESET_S = 1.0
SETTLE_S = 30.0


@dataclass
class Node:
    app: InProcess
    http: httpx.AsyncClient

    async def post(self, image: bytes) -> httpx.Response:
        response = await self.http.post("/v1/detect", content=image)
        assert response.status_code == 200, response.text
        return response

    async def timed(self, image: bytes) -> tuple[float, httpx.Response]:
        start = time.perf_counter()
        response = await self.post(image)
        return time.perf_counter() - start, response

    async def metrics(self) -> Scrape:
        response = await self.http.get("/metrics")
        response.raise_for_status()
        return Scrape(response.text)

    async def breaker_open(self) -> float:
        return (await self.metrics()).value("faceflow_redis_breaker_open")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def redis_nodes(redis_server: RedisProcess) -> AsyncIterator[tuple[Node, Node]]:
    """(hot, cold): both on the session's Redis, whose port survives kill and restart."""
    cache = {"redis_url": redis_server.url, "breaker_reset_s": BREAKER_RESET_S}
    async with (
        running_app(app_settings(cache=cache), ready=False) as hot,
        running_app(app_settings(cache={**cache, "memory_bytes": 0}), ready=False) as cold,
        hot.client() as hot_http,
        cold.client() as cold_http,
    ):
        await asyncio.gather(hot.wait_ready(), cold.wait_ready())  # both load side by side
        yield Node(hot, hot_http), Node(cold, cold_http)


@pytest.fixture
def inspector(redis_process: RedisProcess) -> Iterator[Redis]:
    """A plain client with generous timeouts on the (healthy, flushed) shared server."""
    client = Redis.from_url(redis_process.url, socket_timeout=5, socket_connect_timeout=5)
    try:
        yield client
    finally:
        client.close()


def cached_keys(inspector: Redis) -> int:
    return len(inspector.keys("faceflow:cache:*"))


async def wait_until_redis_is_used(node: Node, inspector: Redis, face_jpeg: bytes) -> None:
    """Send new images until one lands in Redis with the node's breaker closed (bounded)."""
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        before = cached_keys(inspector)
        await node.post(fresh(face_jpeg))
        if cached_keys(inspector) > before and await node.breaker_open() == 0:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"node did not use Redis within {SETTLE_S} s")


@pytest_asyncio.fixture(loop_scope="session")
async def nodes(
    redis_nodes: tuple[Node, Node], inspector: Redis, face_jpeg: bytes
) -> tuple[Node, Node]:
    """Both nodes with Redis healthy, empty and in use (an earlier test may have broken it)."""
    for node in redis_nodes:
        await wait_until_redis_is_used(node, inspector, face_jpeg)
    inspector.flushall()
    return redis_nodes


async def test_a_miss_looks_its_key_up_in_redis_once(
    nodes: tuple[Node, Node], redis_process: RedisProcess, face_jpeg: bytes
) -> None:
    """The hot path looks the key up, and on a miss hands it on without a second lookup: Redis
    is asked for the entry once before the compute lock (and once under it, for an entry another
    node stored meanwhile)."""
    hot, _ = nodes
    image = fresh(face_jpeg)
    response, commands = await commands_during(redis_process.url, lambda: hot.post(image))
    assert response.headers["X-Cache"] == "miss"
    lock = next(i for i, command in enumerate(commands) if command.startswith("SET faceflow:lock:"))
    assert len(reads_of(commands[:lock], "faceflow:cache:")) == 1
    assert len(reads_of(commands[lock:], "faceflow:cache:")) == 1


async def test_second_node_answers_from_redis(
    nodes: tuple[Node, Node], inspector: Redis, face_jpeg: bytes
) -> None:
    hot, cold = nodes
    image = fresh(face_jpeg)
    cold_before = await cold.metrics()
    computed = await hot.post(image)
    assert computed.headers["X-Cache"] == "miss"
    assert cached_keys(inspector) == 1

    shared = await cold.post(image)
    assert shared.headers["X-Cache"] == "hit"
    assert shared.headers["X-Cache-Detail"] == "hit_redis"
    assert shared.content == computed.content
    cold_after = await cold.metrics()
    assert cold_after.value("faceflow_inferences_total") == cold_before.value(
        "faceflow_inferences_total"
    )
    assert (
        cold_after.value("faceflow_cache_hits_total", level="redis")
        - cold_before.value("faceflow_cache_hits_total", level="redis")
        == 1
    )


async def test_a_failure_cached_by_one_node_is_answered_by_the_other(
    nodes: tuple[Node, Node], face_jpeg: bytes
) -> None:
    """Bytes that cannot be decoded fail on every node alike: the second node answers the
    first one's failure from Redis, status and body, and runs nothing."""
    hot, cold = nodes
    image = truncated(fresh(face_jpeg), 0.5)
    cold_before = await cold.metrics()
    computed = await hot.http.post("/v1/detect", content=image)
    shared = await cold.http.post("/v1/detect", content=image)
    assert_error(computed, 422, "undecodable")
    assert (shared.status_code, shared.content) == (computed.status_code, computed.content)
    assert (computed.headers["X-Cache"], shared.headers["X-Cache-Detail"]) == ("miss", "hit_redis")
    cold_after = await cold.metrics()
    assert cold_after.value("faceflow_inferences_total") == cold_before.value(
        "faceflow_inferences_total"
    )


async def test_a_forged_failure_is_a_miss(
    nodes: tuple[Node, Node], inspector: Redis, face_jpeg: bytes
) -> None:
    """A failure in the cache Redis that faceflow would not store (here a 503, which would turn
    every client sending this image away) is no answer: the result is computed afresh."""
    hot, cold = nodes
    image = fresh(face_jpeg)
    computed = await hot.post(image)
    [key] = inspector.keys("faceflow:cache:*")
    body = b'{"code":"overloaded","message":"go away","retry_after_s":3600}'
    inspector.set(key, msgpack.packb([SCHEMA_VERSION, FAILURE_MEDIA_TYPE, body, {}]))
    answer = await cold.post(image)
    assert answer.headers["X-Cache"] == "miss"
    assert answer.content == computed.content


async def test_a_request_that_waited_for_another_nodes_result_is_a_hit(
    nodes: tuple[Node, Node], inspector: Redis, face_jpeg: bytes
) -> None:
    """Cold misses while another node holds the key's lock, waits, and then finds the result
    that node stored: it ran nothing, so ``X-Cache: hit`` (detail ``joined``); it said miss."""
    hot, cold = nodes
    image = fresh(face_jpeg)
    computed = await hot.post(image)
    [key] = inspector.keys("faceflow:cache:*")
    stored = inspector.get(key)
    assert stored is not None
    inspector.delete(key)
    name = key.decode() if isinstance(key, bytes) else str(key)  # bytes, typed as str
    lock = name.replace("faceflow:cache:", "faceflow:lock:", 1)
    inspector.set(lock, "other-node", px=60_000)
    sets_before = inspector.info("commandstats")["cmdstat_set"]["calls"]
    waiting = asyncio.create_task(cold.post(image))
    # Cold's SET NX on the lock (refused) is the only SET meanwhile: from then on it polls (another
    # server's counter: nothing here can signal it).
    async with asyncio.timeout(SETTLE_S):
        while inspector.info("commandstats")["cmdstat_set"]["calls"] == sets_before:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    assert not waiting.done()
    inspector.set(key, stored, px=60_000)  # the other node stores its result, then unlocks
    inspector.delete(lock)
    answer = await waiting
    assert answer.content == computed.content
    assert (answer.headers["X-Cache"], answer.headers["X-Cache-Detail"]) == ("hit", "joined")


@pytest.mark.parametrize(
    ("media_type", "meta"),
    [
        pytest.param("text/html", {}, id="html"),
        pytest.param("application/json", {"compliance": "pass\r\nSet-Cookie: a=b"}, id="crlf-meta"),
    ],
)
async def test_an_entry_faceflow_does_not_write_is_a_miss(
    nodes: tuple[Node, Node],
    inspector: Redis,
    face_jpeg: bytes,
    media_type: str,
    meta: dict[str, str],
) -> None:
    """Whoever can write to the cache Redis (a compromised node, another application) stored an
    entry under a result's key: its text/html was answered as it was, the script in its body
    on the service's own origin, and a CR LF in a meta value that becomes a header had the
    server drop the connection without an answer. Such a value is a miss: computed afresh."""
    hot, cold = nodes
    image = fresh(face_jpeg)
    computed = await hot.post(image)
    [key] = inspector.keys("faceflow:cache:*")
    forged = [SCHEMA_VERSION, media_type, b"<script>alert(1)</script>", meta]
    inspector.set(key, msgpack.packb(forged, use_bin_type=True))
    answer = await cold.post(image)
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["X-Cache"] == "miss"
    assert answer.content == computed.content


async def test_redis_killed_fails_open_and_recovers(
    nodes: tuple[Node, Node], redis_process: RedisProcess, face_jpeg: bytes
) -> None:
    _, cold = nodes
    image = fresh(face_jpeg)
    computed = await cold.post(image)
    assert (await cold.post(image)).headers["X-Cache-Detail"] == "hit_redis"

    redis_process.kill()
    errors_before = (await cold.metrics()).value("faceflow_redis_errors_total")
    for _ in range(5):
        response = await cold.post(image)
        assert response.headers["X-Cache"] == "miss"
        assert response.content == computed.content
    scrape = await cold.metrics()
    assert scrape["faceflow_redis_breaker_open"] == 1
    assert scrape.value("faceflow_redis_errors_total") > errors_before

    redis_process.start()  # same port, empty
    # After the breaker's reset time a trial call finds Redis back: results are shared again.
    deadline = time.monotonic() + SETTLE_S
    again = fresh(face_jpeg)
    detail = ""
    while time.monotonic() < deadline:
        detail = (await cold.post(again)).headers["X-Cache-Detail"]
        if detail == "hit_redis":
            break
        await asyncio.sleep(0.2)
    assert detail == "hit_redis"
    assert await cold.breaker_open() == 0


def median_delay(before: list[float], during: list[float]) -> float:
    return statistics.median(during) - statistics.median(before)


async def test_hung_redis_delays_no_request(
    nodes: tuple[Node, Node], redis_process: RedisProcess, face_jpeg: bytes
) -> None:
    hot, cold = nodes
    in_memory = fresh(face_jpeg)
    await hot.post(in_memory)
    recomputed = fresh(face_jpeg)
    assert (await cold.post(recomputed)).headers["X-Cache"] == "miss"
    assert (await cold.post(recomputed)).headers["X-Cache-Detail"] == "hit_redis"

    # Before: a memory hit on hot; on cold (no memory cache) the same image computed with Redis
    # healthy, which is what it costs once Redis stops answering, minus Redis's share.
    memory_before, cold_before = [], []
    for _ in range(SAMPLES):
        seconds, response = await hot.timed(in_memory)
        assert response.headers["X-Cache-Detail"] == "hit_memory"
        memory_before.append(seconds)
        redis_process.flushall()
        seconds, response = await cold.timed(recomputed)
        assert response.headers["X-Cache-Detail"] == "miss"
        cold_before.append(seconds)
    redis_process.flushall()
    await cold.post(recomputed)  # in Redis again: cold's next lookup would be a Redis hit

    redis_process.pause()
    try:
        memory_during, cold_during = [], []
        for _ in range(SAMPLES):
            seconds, response = await hot.timed(in_memory)
            assert response.headers["X-Cache-Detail"] == "hit_memory"
            memory_during.append(seconds)
            seconds, response = await cold.timed(recomputed)
            assert response.headers["X-Cache"] == "miss"  # the Redis hit fell back to compute
            cold_during.append(seconds)
        assert await cold.breaker_open() == 1
    finally:
        redis_process.resume()

    memory_delay = median_delay(memory_before, memory_during)
    fallback_delay = median_delay(cold_before, cold_during)
    assert memory_delay < REDIS_DELAY_BOUND_S, (memory_before, memory_during)
    assert fallback_delay < REDIS_DELAY_BOUND_S, (cold_before, cold_during)

    # And once Redis answers again, cold shares results through it again.
    deadline = time.monotonic() + SETTLE_S
    detail = ""
    while time.monotonic() < deadline and detail != "hit_redis":
        detail = (await cold.post(recomputed)).headers["X-Cache-Detail"]
        await asyncio.sleep(0.1)
    assert detail == "hit_redis"
