"""The job contract, one suite run against both runners on real models.

* embedded: an :class:`EmbeddedRunner` over its own inference pool (one process, shared by the
  module); its consumers start at the first :meth:`Driver.work`, so submitted jobs wait queued
  until then, as RQ jobs wait for a worker;
* redis: an :class:`RqRunner` on a real queue Redis, its jobs worked by an in-process burst
  :class:`~faceflow.jobs.worker.FaceflowWorker` (the models of this test process).
"""

from __future__ import annotations

import asyncio
import json
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from faceflow.cache.compute import CachedCompute, Req, Task
from faceflow.cache.entry import CacheEntry, failure_entry
from faceflow.cache.tiered import ResultCache
from faceflow.config import ModelSettings, RuntimeSettings, Settings
from faceflow.errors import (
    Conflict,
    DeadlineExceeded,
    JobFailed,
    NoFace,
    NotFound,
    OutOfRange,
    QueueFull,
    RateLimited,
    Unavailable,
    UnsupportedFormat,
    WorkerCrashed,
)
from faceflow.jobs.embedded import EmbeddedRunner
from faceflow.jobs.handles import HANDLES_PER_OWNER
from faceflow.jobs.records import JobRecord, JobStatus
from faceflow.jobs.rq_runner import RqRunner
from faceflow.jobs.runner import JobRunner
from faceflow.operations.registry import prepare
from faceflow.runtime.context import WorkerContext, load_pool_context
from faceflow.runtime.pool import InferencePool
from faceflow.runtime.tasks import TaskOutput
from tests.fixtures.redis_server import RedisProcess
from tests.jobs.support import job_settings, variant, work_burst

pytestmark = pytest.mark.asyncio(loop_scope="module")

MINE, THEIRS = "a" * 64, "b" * 64
WAIT_S = 60.0
# Every retry at once (RQ puts it at the queue's front, where the burst worker finds it).
FAST_RETRIES = {"max_retries": 2, "retry_backoff_s": [0]}
POOL_READY_S = 120.0


class Faults:
    """Errors the next job attempts fail with, one each, before their task runs."""

    def __init__(self) -> None:
        self.pending: list[Exception] = []

    def fire(self) -> None:
        if self.pending:
            raise self.pending.pop(0)


class FaultyPool:
    """The embedded runner's inference pool, failing an attempt when :class:`Faults` say so."""

    def __init__(self, pool: InferencePool[WorkerContext], faults: Faults) -> None:
        self._pool = pool
        self._faults = faults

    async def run(self, fn: Task[Req], request: Req, /) -> TaskOutput:
        self._faults.fire()
        return await self._pool.run(fn, request)


class Driver(ABC):
    """One runner under test, with what the suite needs to drive it alike whichever it is."""

    def __init__(
        self, runner: JobRunner, settings: Settings, cache: ResultCache, faults: Faults
    ) -> None:
        self.runner = runner
        self.settings = settings
        self.cache = cache
        self.faults = faults
        self.submitted: list[tuple[str, str | None]] = []

    async def submit(
        self,
        data: bytes,
        owner: str | None = None,
        operation: str = "detect",
        options: Mapping[str, str] | None = None,
    ) -> JobRecord:
        submission = prepare(operation, data, options or {}, self.settings)
        record = await self.runner.submit(submission, owner)
        self.submitted.append((record.handle, owner))
        return record

    def key(self, data: bytes, operation: str = "detect") -> str:
        return prepare(operation, data, {}, self.settings).key

    @abstractmethod
    async def work(self) -> None:
        """Run every queued job to its end."""

    @abstractmethod
    async def outlive_results(self) -> None:
        """Return once the results of the jobs finished so far have expired."""

    async def close(self) -> None:
        await self.runner.close()


class EmbeddedDriver(Driver):
    def __init__(self, settings: Settings, pool: InferencePool[WorkerContext]) -> None:
        cache = ResultCache.from_settings(settings.cache)
        faults = Faults()
        self.now = 1000.0
        compute = CachedCompute(cache, FaultyPool(pool, faults))
        runner = EmbeddedRunner(settings, compute, clock=lambda: self.now)
        super().__init__(runner, settings, cache, faults)
        self._started = False

    async def work(self) -> None:
        if not self._started:
            await self.runner.start()
            self._started = True
        async with asyncio.timeout(WAIT_S):
            for handle, owner in self.submitted:
                while True:
                    if (await self.runner.status(handle, owner)).status.done:
                        break
                    await asyncio.sleep(0.01)

    async def outlive_results(self) -> None:
        self.now += self.settings.jobs.result_ttl_s + 1  # the runner's clock

    async def close(self) -> None:
        if self._started:
            await self.runner.close()


class RedisDriver(Driver):
    def __init__(self, settings: Settings, context: WorkerContext) -> None:
        cache = ResultCache.from_settings(settings.cache)
        super().__init__(RqRunner(settings, cache), settings, cache, Faults())
        self._context = context

    async def work(self) -> None:
        # On this thread: RQ's worker installs signal handlers and times jobs with SIGALRM.
        work_burst(self.settings, self._context, lambda _payload: self.faults.fire())

    async def outlive_results(self) -> None:
        # Redis expires the keys in real time: wait until the last job's result is gone.
        handle, owner = self.submitted[-1]
        async with asyncio.timeout(self.settings.jobs.result_ttl_s + WAIT_S):
            while True:
                try:
                    await self.runner.status(handle, owner)
                except NotFound:
                    return
                await asyncio.sleep(0.1)


OpenDriver = Callable[..., Driver]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def inference_pool(
    pulled_model_settings: ModelSettings,
) -> AsyncIterator[InferencePool[WorkerContext]]:
    settings = Settings(
        models=pulled_model_settings, runtime=RuntimeSettings(processes=1, warmup=False)
    )
    pool: InferencePool[WorkerContext] = InferencePool.from_settings(
        settings.runtime,
        init=load_pool_context,
        init_arg=settings.model_dump_json(),
    )
    async with pool:
        await pool.wait_ready(POOL_READY_S)
        yield pool


@pytest.fixture(params=["embedded", pytest.param("redis", marks=pytest.mark.redis)])
def open_driver(request: pytest.FixtureRequest) -> OpenDriver:
    """``open_driver(**jobs)``: a driver of this parameter's runner with these job settings."""
    if request.param == "embedded":
        pool: InferencePool[WorkerContext] = request.getfixturevalue("inference_pool")

        def embedded(**jobs: Any) -> Driver:
            values = {"max_queued": 100, "embedded_consumers": 1, **FAST_RETRIES, **jobs}
            settings = Settings.model_validate({"jobs": values, "cache": {"memory_bytes": 1 << 20}})
            return EmbeddedDriver(settings, pool)

        return embedded
    queue_redis: RedisProcess = request.getfixturevalue("queue_redis")
    context: WorkerContext = request.getfixturevalue("worker_context")

    def redis(**jobs: Any) -> Driver:
        return RedisDriver(job_settings(queue_redis.url, **{**FAST_RETRIES, **jobs}), context)

    return redis


@pytest_asyncio.fixture(loop_scope="module")
async def drivers(open_driver: OpenDriver) -> AsyncIterator[OpenDriver]:
    """Like ``open_driver``; every driver opened is closed when the test ends."""
    opened: list[Driver] = []

    def open_one(**jobs: Any) -> Driver:
        opened.append(open_driver(**jobs))
        return opened[-1]

    yield open_one
    for driver in opened:
        await driver.close()


@pytest.fixture
def driver(drivers: OpenDriver) -> Driver:
    return drivers()


async def test_submit_poll_result(driver: Driver, face_jpeg: bytes) -> None:
    record = await driver.submit(variant(face_jpeg), MINE, "analyze")
    assert record.status is JobStatus.QUEUED
    assert record.enqueued_at is not None
    assert not record.from_cache
    await driver.work()
    done = await driver.runner.status(record.handle, MINE)
    assert done.status is JobStatus.FINISHED
    assert done.attempts == 1
    assert done.started_at is not None
    assert done.ended_at is not None
    assert done.media_type == "application/json"
    _, entry = await driver.runner.result(record.handle, MINE)
    report = json.loads(entry.body)
    assert report["face_count"] == 1
    assert report["faces"][0]["gender"]["label"] == "male"


async def test_identical_submissions_share_one_job(driver: Driver, face_jpeg: bytes) -> None:
    data = variant(face_jpeg)
    records = [await driver.submit(data) for _ in range(3)]
    records += await asyncio.gather(*(driver.submit(data) for _ in range(3)))
    assert len({r.handle for r in records}) == 6
    assert await driver.runner.queue_depth() == 1
    await driver.work()
    done = [await driver.runner.status(r.handle, None) for r in records]
    assert {r.status for r in done} == {JobStatus.FINISHED}
    assert {r.attempts for r in done} == {1}
    later = await driver.submit(data)  # the finished job is shared too
    assert later.status is JobStatus.FINISHED


async def test_identical_submissions_share_work_only_within_an_api_key_when_scoped(
    drivers: OpenDriver, face_jpeg: bytes
) -> None:
    """With jobs.dedup_scope=api_key, one key's submission neither joins another key's job nor
    finishes from a result cached for it: nothing tells it the image was seen before."""
    driver = drivers(dedup_scope="api_key")
    data = variant(face_jpeg)
    mine = [await driver.submit(data, MINE) for _ in range(2)]
    theirs = await driver.submit(data, THEIRS)
    assert await driver.runner.queue_depth() == 2  # mine share one job; theirs is its own
    await driver.work()
    assert (await driver.runner.status(theirs.handle, THEIRS)).status is JobStatus.FINISHED
    statuses = {(await driver.runner.status(r.handle, MINE)).status for r in mine}
    assert statuses == {JobStatus.FINISHED}

    # A result cached for the same work (e.g. by the sync endpoint): a third key still runs.
    await driver.cache.put(driver.key(data), CacheEntry("application/json", b"{}", {}))
    third = await driver.submit(data, "c" * 64)
    assert third.status is JobStatus.QUEUED
    assert not third.from_cache


async def test_cancel_a_queued_job(driver: Driver, face_jpeg: bytes) -> None:
    alone = await driver.submit(variant(face_jpeg))
    shared_data = variant(face_jpeg)
    shared_a = await driver.submit(shared_data)
    shared_b = await driver.submit(shared_data)

    assert (await driver.runner.cancel(alone.handle, None)).status is JobStatus.CANCELED
    assert (await driver.runner.cancel(shared_a.handle, None)).status is JobStatus.CANCELED
    assert (await driver.runner.cancel(shared_a.handle, None)).status is JobStatus.CANCELED
    await driver.work()
    # Work shared with another handle ran for it; only the canceled handle is canceled.
    assert (await driver.runner.status(shared_b.handle, None)).status is JobStatus.FINISHED
    assert (await driver.runner.status(shared_a.handle, None)).status is JobStatus.CANCELED
    assert (await driver.runner.status(alone.handle, None)).ended_at is not None
    with pytest.raises(Conflict):
        await driver.runner.cancel(shared_b.handle, None)  # finished: too late
    with pytest.raises(Conflict):
        await driver.runner.result(alone.handle, None)
    again = await driver.submit(shared_data)
    assert again.status is JobStatus.FINISHED


async def test_resubmitting_the_same_work_mints_a_bounded_number_of_handles(
    driver: Driver, face_jpeg: bytes
) -> None:
    """A handle is kept as long as its job: a client resubmitting a cached image (thousands a
    second) grew the server (or the queue Redis) by a handle a request for the result TTL."""
    data = variant(face_jpeg)
    first = await driver.submit(data)
    await driver.work()
    handles = {(await driver.submit(data)).handle for _ in range(40)}
    assert len(handles | {first.handle}) == HANDLES_PER_OWNER
    for handle in handles:
        assert (await driver.runner.status(handle, None)).status is JobStatus.FINISHED
    theirs = await driver.submit(data, THEIRS)  # another key's count is its own
    assert theirs.handle not in handles


async def test_canceling_and_resubmitting_one_job_keeps_its_handles_bounded(
    driver: Driver, face_jpeg: bytes
) -> None:
    # Each cancel ends the job and the next submission makes it anew: the embedded runner began
    # the owner's handles afresh with each new job, so a client looping "submit, cancel" minted
    # handles without end.
    data = variant(face_jpeg)
    minted = []
    for _ in range(2 * HANDLES_PER_OWNER + 1):
        record = await driver.submit(data, MINE)
        minted.append(record.handle)
        await driver.runner.cancel(record.handle, MINE)
    driver.submitted.clear()  # every one canceled: nothing for work() to wait on
    with pytest.raises(NotFound):
        await driver.runner.status(minted[0], MINE)
    assert (await driver.runner.status(minted[-1], MINE)).status is JobStatus.CANCELED


async def test_a_canceled_handle_is_never_handed_out_again(
    driver: Driver, face_jpeg: bytes
) -> None:
    data = variant(face_jpeg)
    held = await driver.submit(data, THEIRS)  # keeps the shared job queued
    mine = [(await driver.submit(data, MINE)).handle for _ in range(HANDLES_PER_OWNER)]
    for handle in mine:
        await driver.runner.cancel(handle, MINE)
    again = await driver.submit(data, MINE)
    assert again.handle not in mine
    assert again.status is JobStatus.QUEUED
    with pytest.raises(NotFound):  # the oldest canceled one made room
        await driver.runner.status(mine[0], MINE)
    driver.submitted.remove((mine[0], MINE))  # nothing for work() to wait on
    assert (await driver.runner.status(mine[-1], MINE)).status is JobStatus.CANCELED
    await driver.work()
    assert (await driver.runner.status(held.handle, THEIRS)).status is JobStatus.FINISHED
    assert (await driver.runner.status(again.handle, MINE)).status is JobStatus.FINISHED


async def test_a_cached_result_finishes_the_job_at_submission(
    driver: Driver, face_jpeg: bytes
) -> None:
    data = variant(face_jpeg)
    entry = CacheEntry("application/json", b'{"face_count":0}', {})
    await driver.cache.put(driver.key(data), entry)
    record = await driver.submit(data)
    assert record.status is JobStatus.FINISHED
    assert record.from_cache
    assert record.ended_at is not None
    assert await driver.runner.queue_depth() == 0
    assert (await driver.runner.result(record.handle, None))[1] == entry


async def test_a_cached_failure_fails_the_job_at_submission(
    driver: Driver, face_jpeg: bytes
) -> None:
    """The sync route cached that this work has no face (it would have none again): a job of
    it ends at once with the route's error, and nothing is queued."""
    data = variant(face_jpeg)
    error = NoFace("no face found", {"hint": "look at the camera"})
    await driver.cache.put(driver.key(data), failure_entry(error))
    record = await driver.submit(data)
    assert record.status is JobStatus.FAILED
    assert record.error is not None
    assert (record.error.code, record.error.status) == ("no_face", 422)
    assert record.from_cache
    assert await driver.runner.queue_depth() == 0
    with pytest.raises(NoFace) as raised:
        await driver.runner.result(record.handle, None)
    assert raised.value.to_dict() == error.to_dict()


async def test_bad_input_fails_once_with_the_sync_error_code(driver: Driver) -> None:
    record = await driver.submit(b"this is not an image")
    await driver.work()
    failed = await driver.runner.status(record.handle, None)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None
    assert failed.error.code == "unsupported_format"
    assert failed.attempts == 1
    assert failed.ended_at is not None
    with pytest.raises(UnsupportedFormat):
        await driver.runner.result(record.handle, None)


async def test_an_id_photo_job_takes_the_face_and_nudges_of_the_sync_route(
    driver: Driver, testdata: Path
) -> None:
    """A job chooses one person of several and nudges the framing (tests/operations: under the
    sync route's key); a face past the last fails the job once with the route's out_of_range."""
    data = variant((testdata / "two_people.jpg").read_bytes())
    chosen = {"face": "2", "head_mm": "22", "roll_deg": "2", "response": "json"}
    record = await driver.submit(data, None, "id-photo", chosen)
    past = await driver.submit(data, None, "id-photo", {"face": "3"})
    await driver.work()

    _, entry = await driver.runner.result(record.handle, None)
    assert entry.media_type == "application/json"
    checks = {c["name"]: c for c in json.loads(entry.body)["report"]["checks"]}
    assert checks["head_height_ratio"]["value"] * 35 == pytest.approx(22, abs=0.1)
    failed = await driver.runner.status(past.handle, None)
    assert (failed.status, failed.attempts) == (JobStatus.FAILED, 1)
    assert failed.error is not None
    # Its record and its result carry the sync route's details, not only code and message.
    details = {"parameter": "face", "min": 1, "max": 2, "face_count": 2}
    assert failed.to_json()["error"] == {
        "code": "out_of_range",
        "message": "face must be from 1 to 2: the photo has 2",
        **details,
    }
    with pytest.raises(OutOfRange, match="face must be from 1 to 2") as raised:
        await driver.runner.result(past.handle, None)
    assert raised.value.details == details


async def test_a_full_queue_refuses_with_queue_full(drivers: OpenDriver, face_jpeg: bytes) -> None:
    driver = drivers(max_queued=2)
    for _ in range(2):
        await driver.submit(variant(face_jpeg))
    with pytest.raises(QueueFull) as refused:
        await driver.submit(variant(face_jpeg))
    assert refused.value.retry_after_s >= 1


async def test_a_key_with_its_share_of_jobs_queued_is_refused_while_others_are_taken(
    drivers: OpenDriver, face_jpeg: bytes
) -> None:
    """jobs.max_queued_per_client: a key with that many jobs of its own submitting queued or
    running is refused (429 with Retry-After) while another key's job is taken; joining its own
    queued work is not counted, and a job that ended or was canceled gives its place back."""
    driver = drivers(max_queued_per_client=2)
    first = variant(face_jpeg)
    await driver.submit(first, MINE)
    second = await driver.submit(variant(face_jpeg), MINE)
    with pytest.raises(RateLimited) as refused:
        await driver.submit(variant(face_jpeg), MINE)
    assert refused.value.retry_after_s >= 1
    assert (await driver.submit(first, MINE)).status is JobStatus.QUEUED  # joins its job
    assert (await driver.submit(variant(face_jpeg), THEIRS)).status is JobStatus.QUEUED
    await driver.runner.cancel(second.handle, MINE)
    await driver.submit(variant(face_jpeg), MINE)
    with pytest.raises(RateLimited):
        await driver.submit(variant(face_jpeg), MINE)
    await driver.work()
    assert (await driver.submit(variant(face_jpeg), MINE)).status is JobStatus.QUEUED


async def test_a_key_whose_results_hold_its_share_is_refused_until_they_expire(
    drivers: OpenDriver, face_jpeg: bytes
) -> None:
    """jobs.max_result_bytes_per_client: a key whose kept results (computed or from the cache)
    hold that many bytes is refused new work, 429 with Retry-After until its soonest result
    expires, before anything is queued, while another key's work is taken; once its results
    have expired it is taken again. The embedded runner ignored the setting: one key's day of
    results could take all of embedded_results_max_bytes, other keys' results then dropped
    (404) long before result_ttl_s."""
    share, ttl_s = 1024, 5  # results kept 5 s: far longer than a burst of 5 detects takes
    driver = drivers(max_result_bytes_per_client=share, result_ttl_s=ttl_s)
    mine = [await driver.submit(variant(face_jpeg), MINE) for _ in range(5)]
    await driver.work()
    kept = [len((await driver.runner.result(r.handle, MINE))[1].body) for r in mine]
    assert sum(kept) >= share  # what the refusal below is about

    later = variant(face_jpeg)
    with pytest.raises(RateLimited) as refused:
        await driver.submit(later, MINE)
    assert 1 <= refused.value.retry_after_s <= ttl_s
    assert refused.value.details == {"limit": f"{share} bytes of stored results"}
    assert await driver.runner.queue_depth() == 0  # nothing to compute
    known = variant(face_jpeg)  # a result from the cache would be kept too
    await driver.cache.put(driver.key(known), CacheEntry("application/json", b"{}", {}))
    with pytest.raises(RateLimited):
        await driver.submit(known, MINE)
    assert (await driver.submit(later, THEIRS)).status is JobStatus.QUEUED
    assert (await driver.submit(known, THEIRS)).from_cache
    # Joining work another key queued is no new work (its result counts against that key).
    assert (await driver.submit(later, MINE)).status is JobStatus.QUEUED
    await driver.work()

    await driver.outlive_results()
    assert (await driver.submit(variant(face_jpeg), MINE)).status is JobStatus.QUEUED


async def test_results_expire(drivers: OpenDriver, face_jpeg: bytes) -> None:
    driver = drivers(result_ttl_s=3)
    record = await driver.submit(variant(face_jpeg))
    await driver.work()
    assert (await driver.runner.status(record.handle, None)).status is JobStatus.FINISHED
    await driver.outlive_results()
    with pytest.raises(NotFound):
        await driver.runner.status(record.handle, None)
    with pytest.raises(NotFound):
        await driver.runner.result(record.handle, None)


async def test_handles_are_scoped_to_their_api_key(driver: Driver, face_jpeg: bytes) -> None:
    record = await driver.submit(variant(face_jpeg), MINE)
    for stage in ("queued", "finished"):
        assert (await driver.runner.status(record.handle, MINE)).handle == record.handle, stage
        for owner in (THEIRS, None):
            for call in (driver.runner.status, driver.runner.result, driver.runner.cancel):
                with pytest.raises(NotFound):
                    await call(record.handle, owner)
        await driver.work()
    assert (await driver.runner.status(record.handle, MINE)).status is JobStatus.FINISHED


@pytest.mark.parametrize(
    ("errors", "status", "code", "attempts"),
    [
        ([NoFace("no face")], JobStatus.FAILED, "no_face", 1),
        ([RuntimeError("a bug")], JobStatus.FAILED, "internal", 1),
        ([WorkerCrashed("died"), DeadlineExceeded("slow")], JobStatus.FINISHED, None, 3),
        ([Unavailable("a blip")], JobStatus.FINISHED, None, 2),
        ([WorkerCrashed("died")] * 3, JobStatus.FAILED, "worker_crashed", 3),
    ],
    ids=["input", "internal", "crash+deadline", "unavailable", "retries-spent"],
)
async def test_one_retry_rule(
    driver: Driver,
    face_jpeg: bytes,
    errors: list[Exception],
    status: JobStatus,
    code: str | None,
    attempts: int,
) -> None:
    """Input and internal errors fail the job at once; crashes, deadlines and transient
    unavailability are retried, up to ``max_retries`` (2 here)."""
    driver.faults.pending = list(errors)
    record = await driver.submit(variant(face_jpeg))
    await driver.work()
    ended = await driver.runner.status(record.handle, None)
    assert (ended.status, ended.attempts) == (status, attempts)
    assert (ended.error.code if ended.error is not None else None) == code
    if code == "no_face":
        with pytest.raises(NoFace):
            await driver.runner.result(record.handle, None)
    elif code is not None:
        with pytest.raises(JobFailed):
            await driver.runner.result(record.handle, None)


async def test_work_failed_for_want_of_capacity_runs_again_when_submitted_again(
    driver: Driver, face_jpeg: bytes
) -> None:
    """A job whose retries were spent on capacity (here a worker that could not take it) failed
    on what befell its attempts, not on its image: another client submitting the same work gets
    it run, where it was answered with that failure for failure_ttl_s (7 days) without running."""
    data = variant(face_jpeg)
    driver.faults.pending = [Unavailable("not now")] * 3
    first = await driver.submit(data, MINE)
    await driver.work()
    failed = await driver.runner.status(first.handle, MINE)
    assert (failed.error.code if failed.error is not None else None) == "unavailable"

    again = await driver.submit(data, THEIRS)
    assert again.status is JobStatus.QUEUED
    await driver.work()
    done = await driver.runner.status(again.handle, THEIRS)
    assert (done.status, done.attempts) == (JobStatus.FINISHED, 1)
    assert json.loads((await driver.runner.result(again.handle, THEIRS))[1].body)["face_count"]


async def test_work_that_crashed_every_attempt_is_not_run_again(
    driver: Driver, face_jpeg: bytes
) -> None:
    """A crash on every attempt may be the image's own doing (one that kills its worker): a
    resubmission shares the failure rather than costing 1 + max_retries crashed workers again."""
    data = variant(face_jpeg)
    driver.faults.pending = [WorkerCrashed("died")] * 3
    await driver.submit(data, MINE)
    await driver.work()

    again = await driver.submit(data, THEIRS)
    assert again.status is JobStatus.FAILED
    assert (again.error.code if again.error is not None else None) == "worker_crashed"
    assert await driver.runner.queue_depth() == 0


async def test_work_failed_on_its_input_is_not_run_again(driver: Driver) -> None:
    """An input error is the work's own: a resubmission shares it (runs nothing)."""
    await driver.submit(b"this is not an image")
    await driver.work()
    again = await driver.submit(b"this is not an image", THEIRS)
    assert again.status is JobStatus.FAILED
    assert (again.error.code if again.error is not None else None) == "unsupported_format"
    assert await driver.runner.queue_depth() == 0
