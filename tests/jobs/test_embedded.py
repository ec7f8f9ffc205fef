"""The embedded runner's semantics, with the compute path replaced by a controllable fake."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from faceflow.cache.entry import CacheEntry
from faceflow.cache.keys import cache_key
from faceflow.cache.tiered import CacheStatus, ResultCache
from faceflow.config import CacheSettings, Settings
from faceflow.errors import (
    Conflict,
    FaceflowError,
    NoFace,
    NotFound,
    NotReady,
    Overloaded,
    QueueFull,
    WorkerCrashed,
)
from faceflow.jobs.embedded import EmbeddedRunner
from faceflow.jobs.records import JobRecord, JobStatus
from faceflow.operations.registry import Submission, prepare
from faceflow.runtime.budget import ByteBudget

RESULT = CacheEntry("application/json", b'{"face_count":1}', {"face_count": 1})
WAIT_S = 5.0


class FakeCompute:
    """Stands in for Services.cached: counts calls, can be held, can fail on cue."""

    def __init__(self) -> None:
        self.calls = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.errors: list[FaceflowError] = []

    async def __call__(
        self, data: bytes, operation: str, params: dict[str, Any], task: Any, request: Any
    ) -> tuple[CacheEntry, CacheStatus]:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        await self.gate.wait()
        return RESULT, CacheStatus.MISS


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT_S):
        for _ in range(100_000):
            if condition():
                return
            await asyncio.sleep(0.005)


def make_settings(**jobs: Any) -> Settings:
    values = {"max_queued": 10, "embedded_consumers": 1, "retry_backoff_s": [0], **jobs}
    return Settings.model_validate({"jobs": values, "runtime": {"processes": 1}})


class Harness:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.now = [1000.0]
        self.cache = ResultCache.from_settings(CacheSettings(memory_bytes=1 << 20))
        self.compute = FakeCompute()
        self.runner = EmbeddedRunner(settings, self.cache, self.compute, clock=lambda: self.now[0])

    def job(self, n: int = 0) -> Submission:
        return prepare("detect", f"image-{n}".encode(), {}, self.settings)

    async def done(self, handle: str, owner: str | None = None) -> JobRecord:
        async with asyncio.timeout(WAIT_S):
            while True:
                record = await self.runner.status(handle, owner)
                if record.status.done:
                    return record
                await asyncio.sleep(0.005)


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = Harness(make_settings())
    await h.runner.start()
    yield h
    await h.runner.close()


async def test_submit_runs_and_returns_the_result(harness: Harness) -> None:
    submitted = await harness.runner.submit(harness.job(), None)
    assert submitted.status in (JobStatus.QUEUED, JobStatus.STARTED)
    record = await harness.done(submitted.handle)
    assert record.status is JobStatus.FINISHED
    assert record.attempts == 1
    assert record.media_type == "application/json"
    _, entry = await harness.runner.result(submitted.handle, None)
    assert entry == RESULT


async def test_identical_submissions_run_once_with_distinct_handles(harness: Harness) -> None:
    harness.compute.gate.clear()
    first = await harness.runner.submit(harness.job(), None)
    second = await harness.runner.submit(harness.job(), None)
    assert first.handle != second.handle
    harness.compute.gate.set()
    await harness.done(first.handle)
    await harness.done(second.handle)
    third = await harness.runner.submit(harness.job(), None)  # finished: shared too
    assert third.status is JobStatus.FINISHED
    assert harness.compute.calls == 1


async def test_a_cached_result_finishes_the_job_at_once(harness: Harness) -> None:
    job = harness.job(7)
    await harness.cache.put(job.key, RESULT)
    record = await harness.runner.submit(job, None)
    assert record.status is JobStatus.FINISHED
    assert record.from_cache
    assert harness.compute.calls == 0


async def test_a_full_queue_refuses_with_queue_full(harness: Harness) -> None:
    h = Harness(make_settings(max_queued=1))
    await h.runner.start()
    h.compute.gate.clear()
    await h.runner.submit(h.job(1), None)
    await until(lambda: h.compute.calls > 0)  # the consumer took job 1: the queue is empty
    await h.runner.submit(h.job(2), None)
    with pytest.raises(QueueFull) as refused:
        await h.runner.submit(h.job(3), None)
    assert refused.value.retry_after_s >= 1
    h.compute.gate.set()
    await h.runner.close()


MIB = 1024 * 1024


def sized_job(settings: Settings, n: int, size: int) -> Submission:
    return prepare("detect", n.to_bytes(4, "big") * (size // 4), {}, settings)


async def test_the_queue_is_bounded_in_bytes_and_gives_them_back() -> None:
    settings = make_settings(max_queued=100, embedded_max_bytes=2 * MIB)
    h = Harness(settings)
    h.runner = EmbeddedRunner(settings, h.cache, h.compute, clock=lambda: h.now[0])
    await h.runner.start()
    h.compute.gate.clear()
    first = await h.runner.submit(sized_job(settings, 1, MIB), None)
    await h.runner.submit(sized_job(settings, 2, MIB), None)
    # Two jobs, far from max_queued, but their images fill the byte bound.
    with pytest.raises(QueueFull) as refused:
        await h.runner.submit(sized_job(settings, 3, MIB), None)
    assert refused.value.retry_after_s >= 1
    assert h.runner.stats()["held_bytes"] == 2 * MIB
    h.compute.gate.set()
    await h.done(first.handle)
    await until(lambda: h.runner.stats()["held_bytes"] == 0)
    await h.runner.submit(sized_job(settings, 3, MIB), None)  # room again
    await h.runner.close()


async def test_queued_images_take_from_the_shared_upload_budget() -> None:
    settings = make_settings(max_queued=100, embedded_max_bytes=8 * MIB)
    h = Harness(settings)
    budget = ByteBudget(2 * MIB)
    h.runner = EmbeddedRunner(settings, h.cache, h.compute, clock=lambda: h.now[0], budget=budget)
    await h.runner.start()
    h.compute.gate.clear()
    queued = [await h.runner.submit(sized_job(settings, n, MIB), None) for n in (1, 2)]
    assert budget.used_bytes == 2 * MIB
    with pytest.raises(QueueFull):
        await h.runner.submit(sized_job(settings, 3, MIB), None)
    await h.runner.cancel(queued[1].handle, None)  # queued behind the first: cancelable
    assert budget.used_bytes == MIB
    h.compute.gate.set()
    await h.done(queued[0].handle)
    assert budget.used_bytes == 0
    await h.runner.close()


async def test_cancel_a_queued_job_but_not_a_started_one(harness: Harness) -> None:
    harness.compute.gate.clear()
    running = await harness.runner.submit(harness.job(1), None)
    queued = await harness.runner.submit(harness.job(2), None)
    shared = await harness.runner.submit(harness.job(2), None)
    await until(lambda: harness.compute.calls > 0)
    with pytest.raises(Conflict):
        await harness.runner.cancel(running.handle, None)
    canceled = await harness.runner.cancel(queued.handle, None)
    assert canceled.status is JobStatus.CANCELED
    with pytest.raises(Conflict):
        await harness.runner.result(queued.handle, None)
    harness.compute.gate.set()
    # the identical submission under another handle still runs
    assert (await harness.done(shared.handle)).status is JobStatus.FINISHED
    assert (await harness.runner.status(queued.handle, None)).status is JobStatus.CANCELED


async def test_a_handle_is_invisible_to_other_api_keys(harness: Harness) -> None:
    mine, theirs = "a" * 64, "b" * 64
    record = await harness.runner.submit(harness.job(), mine)
    await harness.done(record.handle, mine)
    for call in (harness.runner.status, harness.runner.result, harness.runner.cancel):
        with pytest.raises(NotFound):
            await call(record.handle, theirs)
        with pytest.raises(NotFound):
            await call(record.handle, None)


async def test_input_errors_fail_at_once_and_crashes_are_retried(harness: Harness) -> None:
    harness.compute.errors = [NoFace("no face found")]
    bad = await harness.done((await harness.runner.submit(harness.job(1), None)).handle)
    assert bad.status is JobStatus.FAILED
    assert bad.error is not None
    assert (bad.error.code, bad.attempts) == ("no_face", 1)
    with pytest.raises(NoFace):
        await harness.runner.result(bad.handle, None)

    harness.compute.errors = [WorkerCrashed("died"), Overloaded("busy"), NotReady("starting")]
    flaky = await harness.done((await harness.runner.submit(harness.job(2), None)).handle)
    assert flaky.status is JobStatus.FINISHED
    assert flaky.attempts == 2  # the crash counts; waiting for the pool (busy or starting) does not

    retries = harness.settings.jobs.max_retries
    harness.compute.errors = [WorkerCrashed("died") for _ in range(retries + 1)]
    dead = await harness.done((await harness.runner.submit(harness.job(3), None)).handle)
    assert dead.status is JobStatus.FAILED
    assert dead.error is not None
    assert (dead.error.code, dead.attempts) == ("worker_crashed", retries + 1)


async def test_results_expire(harness: Harness) -> None:
    record = await harness.runner.submit(harness.job(), None)
    await harness.done(record.handle)
    harness.now[0] += harness.settings.jobs.result_ttl_s + 1
    with pytest.raises(NotFound):
        await harness.runner.status(record.handle, None)
    harness.runner.sweep()
    assert harness.runner.stats()["records"] == 0


def test_embedded_key_matches_the_cache_key() -> None:
    job = prepare("detect", b"x", {}, make_settings())
    assert job.key == cache_key(b"x", "detect", job.params)
