"""Cache-then-compute with a counting stand-in for the inference pool."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest

from faceflow.cache.compute import CachedCompute, Req, Task
from faceflow.cache.keys import cache_key
from faceflow.cache.tiered import CacheStatus, ResultCache
from faceflow.config import CacheSettings
from faceflow.errors import (
    DeadlineExceeded,
    FaceflowError,
    InvalidParameter,
    JsonScalar,
    MultipleFaces,
    NoFace,
    OutOfRange,
    Overloaded,
    TooManyPixels,
    WorkerCrashed,
)
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


@pytest.mark.parametrize(
    "error",
    [
        NoFace("no face found; an ID photo needs one face looking at the camera"),
        MultipleFaces("2 faces", {"face_count": 2}),
        InvalidParameter(
            "cannot fit a 4000×4000 JPEG in 1 KB",
            {"parameter": "max_kb", "max_kb": 1, "min_achievable_kb": 210},
        ),
        OutOfRange("face 3 of 2", {"parameter": "face", "min": 1, "max": 2}),
    ],
    ids=lambda error: error.code,
)
async def test_a_deterministic_failure_is_cached_and_raised_again_without_the_pool(
    compute: CachedCompute, pool: CountingPool, error: FaceflowError
) -> None:
    key = cache_key(b"no face here", "echo", {})
    pool.error = error
    with pytest.raises(type(error)) as first:
        await compute.run(key, echo, "x")
    pool.error = None  # a repeat would now succeed, if it reached the pool
    with pytest.raises(type(error)) as again:
        await compute.run(key, echo, "x")
    assert pool.runs == 1
    assert again.value.to_dict() == first.value.to_dict() == error.to_dict()
    assert (first.value.cache_status, again.value.cache_status) == ("miss", "hit_memory")


@pytest.mark.parametrize(
    "error",
    [
        Overloaded("busy", retry_after_s=2),
        DeadlineExceeded("too slow"),
        WorkerCrashed("died"),
        TooManyPixels("over this server's limit", {"max_pixels": 10}),  # a setting's doing
        FaceflowError("internal error"),
        RuntimeError("a bug"),
    ],
    ids=lambda error: type(error).__name__,
)
async def test_a_transient_failure_is_not_cached_and_the_next_caller_computes(
    compute: CachedCompute, pool: CountingPool, error: Exception
) -> None:
    key = cache_key(b"photo", "echo", {})
    pool.error = error
    with pytest.raises(type(error)):
        await compute.run(key, echo, "x")
    pool.error = None
    entry, status = await compute.run(key, echo, "x")
    assert (entry.body, status) == (b"echo:x", CacheStatus.MISS)
    assert pool.runs == 2


async def test_a_cancelled_computation_is_not_cached(
    compute: CachedCompute, pool: CountingPool
) -> None:
    key = cache_key(b"photo", "echo", {})
    pool.gate.clear()
    call = asyncio.create_task(compute.run(key, echo, "x"))
    for _ in range(10):
        await asyncio.sleep(0)
    await compute.cache.close()  # cancels the flight, as a shutdown does
    with pytest.raises(asyncio.CancelledError):
        await call
    pool.gate.set()
    entry, status = await compute.run(key, echo, "x")
    assert (entry.body, status) == (b"echo:x", CacheStatus.MISS)
    assert pool.runs == 2


async def test_a_result_of_several_trips_is_stored_under_its_key(compute: CachedCompute) -> None:
    async def two_trips() -> TaskOutput:
        return TaskOutput("image/png", b"rendered", {})

    key = cache_key(b"photo", "id-photo", {"spec": "us"})
    assert (await compute.produce(key, two_trips))[1] is CacheStatus.MISS
    entry, _ = await compute.cache.lookup(key)
    assert entry is not None
    assert entry.body == b"rendered"
