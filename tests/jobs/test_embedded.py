"""What only the embedded runner has (its bounds in jobs and bytes, waiting for the pool, cancel
of a running job), with the inference pool replaced by a controllable fake. The contract both
runners keep is tests/jobs/test_contract.py."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from blake3 import blake3

from faceflow.cache import keys
from faceflow.cache.compute import CachedCompute, Req, Task
from faceflow.cache.entry import failure_of
from faceflow.cache.keys import cache_key
from faceflow.cache.tiered import ResultCache
from faceflow.config import CacheSettings, Settings
from faceflow.errors import (
    Conflict,
    FaceflowError,
    NoFace,
    NotFound,
    NotReady,
    Overloaded,
    QueueFull,
    RateLimited,
    WorkerCrashed,
)
from faceflow.jobs.embedded import EmbeddedRunner
from faceflow.jobs.handles import HANDLES_PER_OWNER
from faceflow.jobs.records import JobRecord, JobStatus
from faceflow.operations.registry import Submission, prepare
from faceflow.runtime.budget import ByteBudget
from faceflow.runtime.tasks import TaskOutput

WAIT_S = 5.0


class FakePool:
    """Stands in for the inference pool: counts runs, can be held, can fail on cue."""

    def __init__(self) -> None:
        self.calls = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.errors: list[FaceflowError] = []
        self.result = b'{"face_count":1}'

    async def run(self, fn: Task[Req], request: Req, /) -> TaskOutput:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        await self.gate.wait()
        return TaskOutput("application/json", self.result, {"face_count": 1})


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
        self.pool = FakePool()
        self.compute = CachedCompute(self.cache, self.pool)
        self.runner = EmbeddedRunner(settings, self.compute, clock=lambda: self.now[0])

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


MIB = 1024 * 1024


def sized_job(settings: Settings, n: int, size: int) -> Submission:
    return prepare("detect", n.to_bytes(4, "big") * (size // 4), {}, settings)


async def test_the_queue_is_bounded_in_bytes_and_gives_them_back() -> None:
    settings = make_settings(max_queued=100, embedded_max_bytes=2 * MIB)
    h = Harness(settings)
    h.runner = EmbeddedRunner(settings, h.compute, clock=lambda: h.now[0])
    await h.runner.start()
    h.pool.gate.clear()
    first = await h.runner.submit(sized_job(settings, 1, MIB), None)
    await h.runner.submit(sized_job(settings, 2, MIB), None)
    # Two jobs, far from max_queued, but their images fill the byte bound.
    with pytest.raises(QueueFull) as refused:
        await h.runner.submit(sized_job(settings, 3, MIB), None)
    assert refused.value.retry_after_s >= 1
    assert h.runner.stats()["held_bytes"] == 2 * MIB
    h.pool.gate.set()
    await h.done(first.handle)
    await until(lambda: h.runner.stats()["held_bytes"] == 0)
    await h.runner.submit(sized_job(settings, 3, MIB), None)  # room again
    await h.runner.close()


async def test_queued_images_take_from_the_shared_upload_budget() -> None:
    settings = make_settings(max_queued=100, embedded_max_bytes=8 * MIB)
    h = Harness(settings)
    budget = ByteBudget(2 * MIB)
    h.runner = EmbeddedRunner(settings, h.compute, clock=lambda: h.now[0], budget=budget)
    await h.runner.start()
    h.pool.gate.clear()
    queued = [await h.runner.submit(sized_job(settings, n, MIB), None) for n in (1, 2)]
    assert budget.used_bytes == 2 * MIB
    with pytest.raises(QueueFull):
        await h.runner.submit(sized_job(settings, 3, MIB), None)
    await h.runner.cancel(queued[1].handle, None)  # queued behind the first: cancelable
    assert budget.used_bytes == MIB
    h.pool.gate.set()
    await h.done(queued[0].handle)
    assert budget.used_bytes == 0
    await h.runner.close()


@pytest.mark.parametrize(
    ("bound", "result_bytes"),
    [({"embedded_keep_finished": 2}, 100), ({"embedded_results_max_bytes": MIB}, 400 * 1024)],
    ids=["jobs", "bytes"],
)
async def test_finished_jobs_are_kept_within_their_bounds_oldest_dropped(
    bound: dict[str, int], result_bytes: int
) -> None:
    """A day's finished results (megabytes each for sheets and PNGs) were bounded only in number:
    10,000 of them outgrew the machine."""
    settings = make_settings(max_queued=100, **bound)
    h = Harness(settings)
    h.runner = EmbeddedRunner(settings, h.compute, clock=lambda: h.now[0])
    h.pool.result = b"r" * result_bytes
    await h.runner.start()
    handles = []
    for n in range(3):
        handles.append((await h.runner.submit(h.job(n), None)).handle)
        await h.done(handles[-1])
    with pytest.raises(NotFound):
        await h.runner.status(handles[0], None)
    for handle in handles[1:]:
        _, entry = await h.runner.result(handle, None)
        assert len(entry.body) == result_bytes
    assert h.runner.stats()["results_bytes"] == 2 * result_bytes
    await h.runner.close()


async def test_results_dropped_for_the_bounds_leave_their_owners_share() -> None:
    """jobs.max_result_bytes_per_client counts the results the runner keeps (the contract is
    tests/jobs/test_contract.py): one dropped for embedded_keep_finished (404 from then on)
    counts no more, and Retry-After is when the owner's soonest kept result expires."""
    settings = make_settings(
        max_queued=100, embedded_keep_finished=2, max_result_bytes_per_client=1024
    )
    h = Harness(settings)
    h.pool.result = b"r" * 600
    await h.runner.start()
    mine, theirs = "a" * 64, "b" * 64
    for n in range(2):
        await h.done((await h.runner.submit(h.job(n), mine)).handle, mine)
    h.now[0] += 100
    with pytest.raises(RateLimited) as refused:
        await h.runner.submit(h.job(2), mine)
    assert refused.value.retry_after_s == settings.jobs.result_ttl_s - 100
    await h.done((await h.runner.submit(h.job(3), theirs)).handle, theirs)  # drops my oldest
    assert (await h.runner.submit(h.job(2), mine)).status is JobStatus.QUEUED
    await h.runner.close()


async def test_a_result_over_the_bound_is_kept_until_the_next_one_ends() -> None:
    settings = make_settings(embedded_results_max_bytes=MIB)
    h = Harness(settings)
    h.runner = EmbeddedRunner(settings, h.compute, clock=lambda: h.now[0])
    h.pool.result = b"r" * (2 * MIB)
    await h.runner.start()
    handle = (await h.runner.submit(h.job(0), None)).handle
    await h.done(handle)
    _, entry = await h.runner.result(handle, None)
    assert len(entry.body) == 2 * MIB
    await h.runner.close()


async def test_jobs_leave_a_process_to_sync_requests_by_default() -> None:
    # Twenty ID-photo jobs posted in a quarter of a second held both processes of two: others'
    # detects took 5 s for the minute they ran. Three processes: two lanes, whatever the jobs.
    settings = Settings.model_validate(
        {"jobs": {"max_queued": 10, "retry_backoff_s": [0]}, "runtime": {"processes": 3}}
    )
    h = Harness(settings)
    h.runner = EmbeddedRunner(settings, h.compute, clock=lambda: h.now[0])
    await h.runner.start()
    h.pool.gate.clear()
    handles = [(await h.runner.submit(h.job(n), None)).handle for n in range(4)]
    await until(lambda: h.pool.calls == 2)
    await asyncio.sleep(0.05)  # a third would have started by now
    assert h.pool.calls == 2
    h.pool.gate.set()
    for handle in handles:
        assert (await h.done(handle)).status is JobStatus.FINISHED
    await h.runner.close()


async def test_a_job_waits_for_a_lane_the_batches_hold() -> None:
    settings = make_settings(embedded_consumers=2)
    h = Harness(settings)
    lanes = asyncio.Semaphore(1)
    h.runner = EmbeddedRunner(settings, h.compute, clock=lambda: h.now[0], lanes=lanes)
    await h.runner.start()
    await lanes.acquire()  # a batch holds the only lane
    handle = (await h.runner.submit(h.job(1), None)).handle
    await asyncio.sleep(0.05)
    assert h.pool.calls == 0
    assert (await h.runner.status(handle, None)).status is JobStatus.QUEUED
    lanes.release()
    assert (await h.done(handle)).status is JobStatus.FINISHED
    await h.runner.close()


async def test_closing_with_jobs_not_finished_says_how_many_are_lost(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A SIGTERM dropped an accepted job without a word.
    h = Harness(make_settings())
    await h.runner.start()
    h.pool.gate.clear()
    for n in range(3):
        await h.runner.submit(h.job(n), None)
    await until(lambda: h.pool.calls == 1)
    with caplog.at_level(logging.WARNING, logger="faceflow.jobs.embedded"):
        await h.runner.close()
    (line,) = [r for r in caplog.records if r.name == "faceflow.jobs.embedded"]
    assert line.levelno == logging.WARNING
    assert "3 accepted jobs" in line.getMessage()
    assert "jobs.redis_url" in line.getMessage()


async def test_a_job_lost_when_the_server_stopped_is_polled_as_gone_with_it() -> None:
    # A job accepted (202) by a server stopped before it ran: polled on the server started
    # again, its handle read as never minted (that process signs with a new key), and the
    # answer was the words a mistyped handle gets, with no word of the restart.
    before = Harness(make_settings())
    await before.runner.start()
    before.pool.gate.clear()
    handle = (await before.runner.submit(before.job(), None)).handle
    await before.runner.close()
    again = Harness(make_settings())
    await again.runner.start()
    try:
        for ask in (again.runner.status, again.runner.result, again.runner.cancel):
            with pytest.raises(NotFound) as lost:
                await ask(handle, None)
            assert lost.value.code == "not_found"  # the one answer: handles cannot be probed
            assert "before it last stopped is gone" in lost.value.message
            assert "submit it again" in lost.value.message
    finally:
        await again.runner.close()


async def test_id_photo_jobs_of_one_photo_share_its_cut_out(harness: Harness) -> None:
    # Each job ran u2netp again: twenty jobs of one photo on twenty backgrounds, twenty cut-outs.
    ran: list[str] = []
    run = harness.pool.run

    async def recording(fn: Task[Req], request: Req, /) -> TaskOutput:
        ran.append(getattr(fn, "__name__", ""))
        return await run(fn, request)

    harness.pool.run = recording  # type: ignore[method-assign]
    data = b"one photo"
    handles = [
        (await harness.runner.submit(prepare("id-photo", data, options, harness.settings), None))
        for options in ({"background": "blue"}, {"background": "red"}, {"spec": "us-passport"})
    ]
    for record in handles:
        assert (await harness.done(record.handle)).status is JobStatus.FINISHED

    assert ran.count("matte_task") == 1
    assert ran.count("render_task") == 3


async def test_an_id_photo_job_hashes_its_upload_once(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job's key and its cut-out's key are both made of the upload's content hash: taken
    once at submission and handed on, where the staged run hashed the upload a second time."""
    data = b"a photo hashed once" * 1000
    hashed: list[int] = []

    def counting(material: bytes | memoryview) -> Any:
        if bytes(material) == data:  # not the keys' own hash of their parameters
            hashed.append(len(material))
        return blake3(material)

    monkeypatch.setattr(keys, "blake3", counting)
    record = await harness.runner.submit(prepare("id-photo", data, {}, harness.settings), None)
    assert (await harness.done(record.handle)).status is JobStatus.FINISHED
    assert len(hashed) == 1


async def test_a_job_of_work_whose_failure_is_cached_fails_at_submission(
    harness: Harness,
) -> None:
    """The sync route found no face in the image (cached: it would find none again), so a job
    of the same work ends failed at once, as the route answers, and runs nothing."""
    job = harness.job(1)
    harness.pool.errors = [NoFace("no face found")]
    with pytest.raises(NoFace):
        await harness.compute.run(job.key, job.spec.task, job.request)
    calls = harness.pool.calls

    record = await harness.runner.submit(job, None)

    assert record.status is JobStatus.FAILED
    assert record.error is not None
    assert (record.error.code, record.error.message) == ("no_face", "no face found")
    assert harness.pool.calls == calls
    with pytest.raises(NoFace):
        await harness.runner.result(record.handle, None)


async def test_id_photo_jobs_of_a_photo_without_a_face_look_for_one_once(
    harness: Harness,
) -> None:
    """Its cut-out's failure is cached under the cut-out's key: a job for another size or
    colour of the same photo fails with it, no detection run again, and so does the sync
    route's repeat of a job (its key holds the failure too)."""
    ran: list[str] = []

    async def recording(fn: Task[Req], request: Req, /) -> TaskOutput:
        ran.append(getattr(fn, "__name__", ""))
        raise NoFace("no face found")

    harness.pool.run = recording  # type: ignore[method-assign]
    data = b"a photo of a cup"
    jobs = [prepare("id-photo", data, o, harness.settings) for o in ({}, {"background": "red"})]
    for job in jobs:
        record = await harness.done((await harness.runner.submit(job, None)).handle)
        assert record.error is not None
        assert record.error.code == "no_face"
    entry, _ = await harness.cache.lookup(jobs[0].key)
    failure = failure_of(entry) if entry is not None else None
    assert failure is not None
    assert failure.code == "no_face"
    assert ran == ["matte_task"]


async def test_cancel_a_queued_job_but_not_a_started_one(harness: Harness) -> None:
    harness.pool.gate.clear()
    running = await harness.runner.submit(harness.job(1), None)
    queued = await harness.runner.submit(harness.job(2), None)
    shared = await harness.runner.submit(harness.job(2), None)
    await until(lambda: harness.pool.calls > 0)
    with pytest.raises(Conflict):
        await harness.runner.cancel(running.handle, None)
    canceled = await harness.runner.cancel(queued.handle, None)
    assert canceled.status is JobStatus.CANCELED
    with pytest.raises(Conflict):
        await harness.runner.result(queued.handle, None)
    harness.pool.gate.set()
    # the identical submission under another handle still runs
    assert (await harness.done(shared.handle)).status is JobStatus.FINISHED
    assert (await harness.runner.status(queued.handle, None)).status is JobStatus.CANCELED


async def test_input_errors_fail_at_once_and_crashes_are_retried(harness: Harness) -> None:
    harness.pool.errors = [NoFace("no face found")]
    bad = await harness.done((await harness.runner.submit(harness.job(1), None)).handle)
    assert bad.status is JobStatus.FAILED
    assert bad.error is not None
    assert (bad.error.code, bad.attempts) == ("no_face", 1)
    with pytest.raises(NoFace):
        await harness.runner.result(bad.handle, None)

    harness.pool.errors = [WorkerCrashed("died"), Overloaded("busy"), NotReady("starting")]
    flaky = await harness.done((await harness.runner.submit(harness.job(2), None)).handle)
    assert flaky.status is JobStatus.FINISHED
    assert flaky.attempts == 2  # the crash counts; waiting for the pool (busy or starting) does not

    retries = harness.settings.jobs.max_retries
    harness.pool.errors = [WorkerCrashed("died") for _ in range(retries + 1)]
    dead = await harness.done((await harness.runner.submit(harness.job(3), None)).handle)
    assert dead.status is JobStatus.FAILED
    assert dead.error is not None
    assert (dead.error.code, dead.attempts) == ("worker_crashed", retries + 1)


def test_a_job_key_is_the_sync_endpoint_cache_key() -> None:
    job = prepare("detect", b"x", {}, make_settings())
    assert job.key == cache_key(b"x", "detect", job.params)


async def test_canceling_and_resubmitting_neither_mints_handles_nor_fills_the_queue(
    harness: Harness,
) -> None:
    """A client looping "submit, cancel" on one image while the consumers were busy got a new
    handle each time (its per-owner list began afresh with each replacement job) and left a
    canceled entry in the queue each time, until every client's submission was refused."""
    harness.pool.gate.clear()
    await harness.runner.submit(harness.job(0), None)  # keeps the one consumer busy
    await until(lambda: harness.pool.calls == 1)
    for _ in range(3 * harness.settings.jobs.max_queued):
        record = await harness.runner.submit(harness.job(1), "looping-client")
        await harness.runner.cancel(record.handle, "looping-client")
    # The busy job's handle and the looping client's newest 16 (older canceled ones forgotten).
    assert harness.runner.stats()["handles"] == 1 + HANDLES_PER_OWNER
    assert harness.runner.stats()["queued"] == 0
    other = await harness.runner.submit(harness.job(2), "another-client")  # not queue_full
    harness.pool.gate.set()
    assert (await harness.done(other.handle, "another-client")).status is JobStatus.FINISHED


async def test_two_submissions_finding_the_job_canceled_share_one_made_anew(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The RQ runner's race (tests/jobs/test_rq_runner.py), here: two submissions read the job
    canceled, then both wait at their one suspension point (the cache read) before making it
    anew. Each looks again after it, with no wait between that look and making the job, so the
    second finds the first's new job and joins it."""
    harness.pool.gate.clear()
    await harness.runner.submit(harness.job(0), None)  # keeps the one consumer busy
    await until(lambda: harness.pool.calls == 1)
    old = await harness.runner.submit(harness.job(1), None)
    await harness.runner.cancel(old.handle, None)
    both_read = asyncio.Barrier(2)
    get = harness.cache.get

    async def held_together(key: str) -> Any:
        await both_read.wait()
        return await get(key)

    monkeypatch.setattr(harness.cache, "get", held_together)
    async with asyncio.timeout(WAIT_S):  # only a submission that read it canceled reads the cache
        first, second = await asyncio.gather(
            harness.runner.submit(harness.job(1), "b" * 64),
            harness.runner.submit(harness.job(1), "c" * 64),
        )
    monkeypatch.undo()
    assert harness.runner.stats()["queued"] == 1
    harness.pool.gate.set()
    assert (await harness.done(first.handle, "b" * 64)).status is JobStatus.FINISHED
    assert (await harness.done(second.handle, "c" * 64)).status is JobStatus.FINISHED
    assert harness.pool.calls == 2  # the busy job, and job 1 once


async def test_a_job_canceled_while_it_waits_for_room_in_the_pool_does_not_run(
    harness: Harness,
) -> None:
    # While it waits out the pool's overload it shows as queued, so it may be canceled; it ran
    # anyway once room came, its image already given back.
    harness.pool.errors = [Overloaded("busy") for _ in range(1000)]
    waiting = await harness.runner.submit(harness.job(1), None)
    await until(lambda: harness.pool.calls >= 1)
    assert (await harness.runner.cancel(waiting.handle, None)).status is JobStatus.CANCELED
    harness.pool.errors = []
    calls = harness.pool.calls
    after = await harness.runner.submit(harness.job(2), None)  # the one consumer takes it next
    assert (await harness.done(after.handle)).status is JobStatus.FINISHED
    assert harness.pool.calls == calls + 1
    assert (await harness.cache.get(harness.job(1).key))[0] is None
