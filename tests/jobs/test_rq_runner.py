"""The RQ runner on a real queue Redis; jobs are worked by an in-process FaceflowWorker (burst
mode, the models of this test process), so no worker process is needed here."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator

import pytest
from redis import Redis
from rq import Queue
from rq.exceptions import StopRequested
from rq.serializers import JSONSerializer

from faceflow.cache.entry import CacheEntry, decode_entry
from faceflow.cache.redis_cache import RedisCache
from faceflow.cache.tiered import ResultCache
from faceflow.config import CacheSettings, Settings
from faceflow.errors import Conflict, Expired, NotFound, QueueFull, UnsupportedFormat
from faceflow.jobs.records import JobOutcome, JobStatus, encode_outcome
from faceflow.jobs.redis_store import JobKeys
from faceflow.jobs.rq_runner import RqRunner, retry_intervals
from faceflow.jobs.supervisor import EXIT_QUEUE_LOST, exit_code
from faceflow.jobs.worker import build_worker, cache_data_key, open_queue, restart_grace_s
from faceflow.operations.registry import prepare
from faceflow.runtime.context import WorkerContext
from tests.fixtures.redis_server import RedisProcess
from tests.jobs.support import QUEUE, job_settings, runner_for, variant

pytestmark = pytest.mark.redis

MINE, THEIRS = "a" * 64, "b" * 64


@pytest.fixture
async def runner(queue_redis: RedisProcess) -> AsyncIterator[RqRunner]:
    r = runner_for(job_settings(queue_redis.url))
    await r.start()
    yield r
    await r.close()


def work(settings: Settings, context: WorkerContext) -> None:
    """Run every queued job in this process, then return."""
    worker = build_worker(settings, context)
    worker.work(burst=True, logging_level="WARNING")


def depth(url: str) -> int:
    connection = Redis.from_url(url)
    try:
        return int(Queue(QUEUE, connection=connection, serializer=JSONSerializer).count)
    finally:
        connection.close()


async def test_submit_work_poll_result(
    runner: RqRunner, queue_redis: RedisProcess, worker_context: WorkerContext, face_jpeg: bytes
) -> None:
    settings = job_settings(queue_redis.url)
    record = await runner.submit(prepare("analyze", face_jpeg, {}, settings), MINE)
    assert record.status is JobStatus.QUEUED
    assert record.enqueued_at is not None
    work(settings, worker_context)
    done = await runner.status(record.handle, MINE)
    assert done.status is JobStatus.FINISHED
    assert done.attempts == 1
    assert done.started_at is not None
    assert done.ended_at is not None
    _, entry = await runner.result(record.handle, MINE)
    report = json.loads(entry.body)
    assert report["face_count"] == 1
    assert report["faces"][0]["gender"]["label"] == "male"
    # the payload is gone once the job finished; the outcome stays
    keys = JobKeys(QUEUE)
    connection = Redis.from_url(queue_redis.url)
    job_id = prepare("analyze", face_jpeg, {}, settings).job_id
    assert not connection.exists(keys.data(job_id))
    assert connection.exists(keys.result(job_id))
    connection.close()


async def test_duplicates_are_enqueued_once(
    runner: RqRunner, queue_redis: RedisProcess, worker_context: WorkerContext, face_jpeg: bytes
) -> None:
    settings = job_settings(queue_redis.url)
    data = variant(face_jpeg)
    handles = [
        (await runner.submit(prepare("detect", data, {}, settings), None)).handle for _ in range(3)
    ]
    handles += [
        r.handle
        for r in await asyncio.gather(
            *(runner.submit(prepare("detect", data, {}, settings), None) for _ in range(3))
        )
    ]
    assert len(set(handles)) == 6
    assert depth(queue_redis.url) == 1
    work(settings, worker_context)
    records = [await runner.status(h, None) for h in handles]
    assert {r.status for r in records} == {JobStatus.FINISHED}
    assert {r.attempts for r in records} == {1}


async def test_queue_full_is_refused(queue_redis: RedisProcess, face_jpeg: bytes) -> None:
    settings = job_settings(queue_redis.url, max_queued=2)
    runner = runner_for(settings)
    for _ in range(2):
        await runner.submit(prepare("detect", variant(face_jpeg), {}, settings), None)
    with pytest.raises(QueueFull) as refused:
        await runner.submit(prepare("detect", variant(face_jpeg), {}, settings), None)
    assert refused.value.retry_after_s >= 1
    await runner.close()


async def test_cancel(
    runner: RqRunner, queue_redis: RedisProcess, worker_context: WorkerContext, face_jpeg: bytes
) -> None:
    settings = job_settings(queue_redis.url)
    alone = await runner.submit(prepare("detect", variant(face_jpeg), {}, settings), None)
    shared_data = variant(face_jpeg)
    shared_a = await runner.submit(prepare("detect", shared_data, {}, settings), None)
    shared_b = await runner.submit(prepare("detect", shared_data, {}, settings), None)
    assert depth(queue_redis.url) == 2

    assert (await runner.cancel(alone.handle, None)).status is JobStatus.CANCELED
    assert (await runner.cancel(shared_a.handle, None)).status is JobStatus.CANCELED
    assert depth(queue_redis.url) == 1  # shared_b still wants its job
    work(settings, worker_context)
    assert (await runner.status(shared_b.handle, None)).status is JobStatus.FINISHED
    assert (await runner.status(shared_a.handle, None)).status is JobStatus.CANCELED
    with pytest.raises(Conflict):
        await runner.cancel(shared_b.handle, None)
    with pytest.raises(Conflict):
        await runner.result(alone.handle, None)
    # a canceled job's work can be submitted again
    again = await runner.submit(prepare("detect", shared_data, {}, settings), None)
    assert again.status is JobStatus.FINISHED


async def test_handles_are_scoped_to_their_api_key(
    runner: RqRunner, queue_redis: RedisProcess, face_jpeg: bytes
) -> None:
    settings = job_settings(queue_redis.url)
    record = await runner.submit(prepare("detect", face_jpeg, {}, settings), MINE)
    assert (await runner.status(record.handle, MINE)).handle == record.handle
    for owner in (THEIRS, None):
        with pytest.raises(NotFound):
            await runner.status(record.handle, owner)
        with pytest.raises(NotFound):
            await runner.cancel(record.handle, owner)
        with pytest.raises(NotFound):
            await runner.result(record.handle, owner)


async def test_a_cached_result_finishes_at_submission(
    queue_redis: RedisProcess, face_jpeg: bytes
) -> None:
    settings = job_settings(queue_redis.url)
    runner = runner_for(settings)
    submission = prepare("detect", face_jpeg, {}, settings)
    entry = CacheEntry("application/json", b'{"face_count":0}', {})
    await runner._cache.put(submission.key, entry)
    record = await runner.submit(submission, None)
    assert record.status is JobStatus.FINISHED
    assert record.from_cache
    assert depth(queue_redis.url) == 0
    assert (await runner.result(record.handle, None))[1] == entry
    await runner.close()


async def test_results_expire(
    queue_redis: RedisProcess, worker_context: WorkerContext, face_jpeg: bytes
) -> None:
    settings = job_settings(queue_redis.url, result_ttl_s=3)
    runner = runner_for(settings)
    record = await runner.submit(prepare("detect", variant(face_jpeg), {}, settings), None)
    work(settings, worker_context)
    assert (await runner.status(record.handle, None)).status is JobStatus.FINISHED
    await asyncio.sleep(3.5)
    with pytest.raises(NotFound):
        await runner.status(record.handle, None)
    await runner.close()


async def test_bad_input_fails_once_with_the_sync_error_code(
    runner: RqRunner, queue_redis: RedisProcess, worker_context: WorkerContext
) -> None:
    settings = job_settings(queue_redis.url)
    record = await runner.submit(prepare("detect", b"this is not an image", {}, settings), None)
    work(settings, worker_context)
    failed = await runner.status(record.handle, None)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None
    assert failed.error.code == "unsupported_format"
    assert failed.attempts == 1
    with pytest.raises(UnsupportedFormat):
        await runner.result(record.handle, None)


async def test_the_worker_fills_the_shared_cache(
    queue_redis: RedisProcess,
    redis_url: str,
    worker_context: WorkerContext,
    face_jpeg: bytes,
) -> None:
    settings = job_settings(queue_redis.url).model_copy(
        update={"cache": CacheSettings(redis_url=redis_url)}
    )
    runner = RqRunner(settings, runner_for(settings)._cache)
    submission = prepare("detect", variant(face_jpeg), {}, settings)
    await runner.submit(submission, None)
    work(settings, worker_context)
    cache = RedisCache.from_settings(settings.cache)
    assert cache is not None
    assert cache.data_key(submission.key) == cache_data_key(submission.key)
    connection = Redis.from_url(redis_url)
    raw = connection.get(cache_data_key(submission.key))
    connection.close()
    assert isinstance(raw, bytes)
    cached = decode_entry(raw)
    assert cached is not None
    assert json.loads(cached.body)["face_count"] == 1
    await runner.close()


def test_job_function_resolves() -> None:
    from rq.utils import import_attribute

    from faceflow.jobs.redis_store import JOB_FUNCTION
    from faceflow.jobs.worker import run_job

    assert import_attribute(JOB_FUNCTION) is run_job


async def test_id_photo_job_runs_matte_and_render_in_the_worker(
    runner: RqRunner, queue_redis: RedisProcess, worker_context: WorkerContext, face_jpeg: bytes
) -> None:
    settings = job_settings(queue_redis.url)
    submission = prepare("id-photo", face_jpeg, {"spec": "us-passport", "format": "png"}, settings)
    record = await runner.submit(submission, None)
    work(settings, worker_context)
    done = await runner.status(record.handle, None)
    assert done.status is JobStatus.FINISHED, done
    assert done.media_type == "image/png"
    _, entry = await runner.result(record.handle, None)
    assert entry.body.startswith(b"\x89PNG")
    assert entry.meta["compliance"] in {"pass", "warn", "fail"}


async def test_requeue_after_the_image_expired_fails_fast_and_poisons_nothing(
    runner: RqRunner, queue_redis: RedisProcess, worker_context: WorkerContext, face_jpeg: bytes
) -> None:
    settings = job_settings(queue_redis.url)
    data = variant(face_jpeg)
    first = await runner.submit(prepare("detect", data, {}, settings), None)
    job_id = prepare("detect", data, {}, settings).job_id
    connection = Redis.from_url(queue_redis.url)
    connection.delete(JobKeys(QUEUE).data(job_id))  # its retention ran out while it waited

    work(settings, worker_context)

    ended = await runner.status(first.handle, None)
    assert ended.status is JobStatus.FAILED
    assert ended.error is not None
    assert ended.error.code == "expired"
    assert ended.ended_at is not None
    assert ended.attempts == 1  # no retry: another attempt cannot bring the image back
    with pytest.raises(Expired):
        await runner.result(first.handle, None)
    assert not connection.exists(JobKeys(QUEUE).result(job_id))

    # The same image submitted again runs: the content key's entry was not poisoned.
    again = await runner.submit(prepare("detect", data, {}, settings), None)
    assert again.status is JobStatus.QUEUED
    work(settings, worker_context)
    done = await runner.status(again.handle, None)
    assert done.status is JobStatus.FINISHED
    assert json.loads((await runner.result(again.handle, None))[1].body)["face_count"] == 1
    connection.close()


async def test_payload_is_kept_as_long_as_the_dead_letter_entry(
    queue_redis: RedisProcess, face_jpeg: bytes
) -> None:
    settings = job_settings(queue_redis.url, result_ttl_s=3600, failure_ttl_s=7200)
    runner = runner_for(settings)
    data = variant(face_jpeg)
    await runner.submit(prepare("detect", data, {}, settings), None)
    connection = Redis.from_url(queue_redis.url)
    ttl = connection.ttl(JobKeys(QUEUE).data(prepare("detect", data, {}, settings).job_id))
    assert 7200 - 60 < ttl <= 7200
    connection.close()
    await runner.close()


async def test_ended_at_is_set_as_soon_as_the_outcome_is(
    runner: RqRunner, queue_redis: RedisProcess, face_jpeg: bytes
) -> None:
    """A worker stores the outcome before RQ records the job's end; a poll in between still
    sees a finished job with an end time."""
    settings = job_settings(queue_redis.url)
    data = variant(face_jpeg)
    record = await runner.submit(prepare("detect", data, {}, settings), None)
    job_id = prepare("detect", data, {}, settings).job_id
    connection = Redis.from_url(queue_redis.url)
    outcome = JobOutcome(entry=CacheEntry("application/json", b"{}", {}))
    connection.set(JobKeys(QUEUE).result(job_id), encode_outcome(outcome))

    view = await runner.status(record.handle, None)

    assert view.status is JobStatus.FINISHED
    assert view.ended_at is not None
    connection.close()


async def test_a_job_delivered_again_after_its_outcome_is_stored_is_not_run_again(
    runner: RqRunner, queue_redis: RedisProcess, worker_context: WorkerContext, face_jpeg: bytes
) -> None:
    """A retry of a job whose first attempt stored its outcome (its lease was judged expired
    while its worker was cut off from Redis) leaves that outcome as it is."""
    settings = job_settings(queue_redis.url)
    data = variant(face_jpeg)
    record = await runner.submit(prepare("detect", data, {}, settings), None)
    job_id = prepare("detect", data, {}, settings).job_id
    connection = Redis.from_url(queue_redis.url)
    first = JobOutcome(entry=CacheEntry("application/json", b'{"first": true}', {}))
    connection.set(JobKeys(QUEUE).result(job_id), encode_outcome(first))

    work(settings, worker_context)

    done = await runner.status(record.handle, None)
    assert done.status is JobStatus.FINISHED
    assert done.attempts == 0  # the task never ran
    assert (await runner.result(record.handle, None))[1].body == b'{"first": true}'
    connection.close()


def test_no_abandoned_job_pass_until_workers_could_renew_after_a_restart(
    queue_redis: RedisProcess,
) -> None:
    settings = job_settings(queue_redis.url)
    grace = restart_grace_s(settings.jobs.lease_s)
    assert grace >= settings.jobs.lease_s + settings.jobs.lease_s / 3
    queue_redis.kill()
    queue_redis.start()
    connection = Redis.from_url(queue_redis.url)
    queue = open_queue(settings, connection)
    try:
        # Just restarted: every lease looks expired, so no maintenance pass may judge them.
        assert queue.acquire_maintenance_lock() is False
        queue.restart_grace_s = 0.0
        assert queue.acquire_maintenance_lock() is True
        queue.release_maintenance_lock()  # type: ignore[no-untyped-call]
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("max_retries", "backoff", "expected"),
    [
        (3, [0, 5, 15], [0, 5, 15]),
        (5, [0, 5], [0, 5, 5, 5, 5]),
        (2, [0, 5, 15], [0, 5]),
        (1, [], [0]),
    ],
)
def test_retry_intervals_repeat_the_last_wait(
    max_retries: int, backoff: list[int], expected: list[int]
) -> None:
    intervals = retry_intervals(max_retries, backoff)
    assert intervals == expected
    # RQ's own reading of the list gives retry k the k-th wait.
    for k in range(1, max_retries + 1):
        retries_left = max_retries - k + 1
        index = max(len(intervals) - retries_left, 0)
        assert intervals[index] == (backoff or [0])[min(k - 1, len(backoff or [0]) - 1)]


async def test_a_queue_redis_out_of_memory_answers_queue_full(
    runner: RqRunner, queue_redis: RedisProcess, face_jpeg: bytes
) -> None:
    """noeviction at maxmemory: the submission is refused as queue_full (503, Retry-After), not
    as an unavailable queue."""
    settings = job_settings(queue_redis.url)
    connection = Redis.from_url(queue_redis.url)
    used = int(connection.info("memory")["used_memory"])
    connection.config_set("maxmemory-policy", "noeviction")
    connection.config_set("maxmemory", str(used + 256 * 1024))
    try:
        big = variant(face_jpeg) + b"\0" * (1024 * 1024)  # 1 MiB more than Redis has room for
        with pytest.raises(QueueFull):
            await runner.submit(prepare("detect", big, {}, settings), None)
    finally:
        connection.config_set("maxmemory", "0")
        connection.close()


def test_a_worker_that_stops_on_its_own_exits_non_zero(
    queue_redis: RedisProcess, worker_context: WorkerContext
) -> None:
    """RQ returns from work() on a Redis timeout as it does on a requested stop; only the
    requested stop is a clean exit."""
    worker = build_worker(job_settings(queue_redis.url), worker_context)
    assert exit_code(worker) == EXIT_QUEUE_LOST != 0
    with pytest.raises(StopRequested):  # idle: RQ leaves its loop at once by raising this
        worker.request_stop(signal.SIGTERM, None)
    assert exit_code(worker) == 0


async def test_dedup_scoped_per_api_key(
    queue_redis: RedisProcess, worker_context: WorkerContext, face_jpeg: bytes
) -> None:
    """With jobs.dedup_scope=api_key, one key's submission neither joins another key's job nor
    finishes from a result cached for it: nothing tells it the image was seen before."""
    settings = job_settings(queue_redis.url, dedup_scope="api_key")
    cache = ResultCache.from_settings(CacheSettings(memory_bytes=1 << 20))
    runner = RqRunner(settings, cache)
    data = variant(face_jpeg)
    mine = [await runner.submit(prepare("detect", data, {}, settings), MINE) for _ in range(2)]
    theirs = await runner.submit(prepare("detect", data, {}, settings), THEIRS)
    assert depth(queue_redis.url) == 2  # my two submissions share one job; theirs is its own
    work(settings, worker_context)
    assert (await runner.status(theirs.handle, THEIRS)).status is JobStatus.FINISHED
    assert {(await runner.status(r.handle, MINE)).status for r in mine} == {JobStatus.FINISHED}

    # A result cached for the same work (e.g. by the sync endpoint): a third key still runs.
    entry = CacheEntry("application/json", b'{"face_count": 1}', {})
    await cache.put(prepare("detect", data, {}, settings).key, entry)
    third = await runner.submit(prepare("detect", data, {}, settings), "c" * 64)
    assert third.status is JobStatus.QUEUED
    assert not third.from_cache
    await runner.close()
