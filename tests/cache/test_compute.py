"""Cache-then-compute with a counting stand-in for the inference pool."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest

from faceflow.cache.compute import CachedCompute, Req, Task
from faceflow.cache.keys import cache_key
from faceflow.cache.tiered import CacheStatus, ResultCache
from faceflow.config import CacheSettings
from faceflow.errors import JsonScalar, NoFace
from faceflow.runtime.context import WorkerContext
from faceflow.runtime.tasks import TaskOutput


def echo(context: WorkerContext, request: str) -> TaskOutput:
    """A task by reference: the stand-in pool below names it instead of running it."""
    raise AssertionError("a task runs in the pool, never in the cache")


class CountingPool:
    """Runs nothing: answers ``fn``'s name and the request, once the gate opens."""

    def __init__(self) -> None:
        self.runs = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.error: Exception | None = None

    async def run(self, fn: Task[Req], request: Req, /) -> TaskOutput:
        self.runs += 1
        await self.gate.wait()
        if self.error is not None:
            raise self.error
        return TaskOutput("text/plain", f"{fn.__name__}:{request}".encode(), {"ms_echo": 1.5})


@pytest.fixture
def pool() -> CountingPool:
    return CountingPool()


@pytest.fixture
def seen() -> list[Mapping[str, JsonScalar]]:
    return []


@pytest.fixture
def compute(pool: CountingPool, seen: list[Mapping[str, JsonScalar]]) -> CachedCompute:
    cache = ResultCache.from_settings(CacheSettings(memory_bytes=1 << 20))
    return CachedCompute(cache, pool, seen.append)


async def test_concurrent_identical_requests_compute_once_then_hit(
    compute: CachedCompute, pool: CountingPool, seen: list[Mapping[str, JsonScalar]]
) -> None:
    key = cache_key(b"image", "echo", {})
    pool.gate.clear()
    calls = [asyncio.create_task(compute.run(key, echo, "hello")) for _ in range(3)]
    for _ in range(10):  # let every caller reach the lookup and the flight
        await asyncio.sleep(0)
    pool.gate.set()
    answers = await asyncio.gather(*calls)
    assert {entry.body for entry, _ in answers} == {b"echo:hello"}
    assert sorted(status for _, status in answers) == sorted(
        [CacheStatus.MISS, CacheStatus.JOINED, CacheStatus.JOINED]
    )
    entry, status = await compute.run(key, echo, "hello")
    assert (entry.body, status) == (b"echo:hello", CacheStatus.HIT_MEMORY)
    assert pool.runs == 1
    assert seen == [{"ms_echo": 1.5}]  # the stage timings of the one computation, not of hits


async def test_an_error_reaches_the_caller_and_is_not_cached(
    compute: CachedCompute, pool: CountingPool, seen: list[Mapping[str, JsonScalar]]
) -> None:
    key = cache_key(b"no face here", "echo", {})
    pool.error = NoFace("no face found")
    with pytest.raises(NoFace):
        await compute.run(key, echo, "x")
    pool.error = None
    entry, status = await compute.run(key, echo, "x")
    assert (entry.body, status) == (b"echo:x", CacheStatus.MISS)
    assert pool.runs == 2
    assert compute.cache.memory_stats().items == 1


async def test_a_result_of_several_trips_is_stored_under_its_key(compute: CachedCompute) -> None:
    async def two_trips() -> TaskOutput:
        return TaskOutput("image/png", b"rendered", {})

    key = cache_key(b"photo", "id-photo", {"spec": "us"})
    assert (await compute.produce(key, two_trips))[1] is CacheStatus.MISS
    entry, _ = await compute.cache.lookup(key)
    assert entry is not None
    assert entry.body == b"rendered"
