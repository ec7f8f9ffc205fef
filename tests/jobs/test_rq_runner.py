"""What only the RQ runner has (its keys in the queue Redis, the shared cache its workers fill,
redeliveries, maintenance), on a real queue Redis; jobs are worked by an in-process
FaceflowWorker (burst mode, the models of this test process). The contract both runners keep is
tests/jobs/test_contract.py."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import io
import json
import logging
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import cv2
import msgpack
import numpy as np
import pytest
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from rq import Queue, get_current_job
from rq import registry as rq_registry
from rq import utils as rq_utils
from rq.exceptions import StopRequested
from rq.job import Job
from rq.job import JobStatus as RqJobStatus
from rq.registry import FinishedJobRegistry, StartedJobRegistry
from rq.results import Result
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer
from rq.suspension import WORKERS_SUSPENDED, resume, suspend
from rq.utils import current_timestamp
from rq.worker import Worker

from faceflow.cache.entry import CacheEntry, failure_of
from faceflow.cache.keys import cache_key
from faceflow.cache.redis_cache import LockResult, RedisCache
from faceflow.cache.tiered import CacheStatus, ResultCache
from faceflow.config import CacheSettings, ModelSettings, Settings
from faceflow.errors import (
    Expired,
    JobFailed,
    NotFound,
    QueueFull,
    RateLimited,
    TooLarge,
    Unavailable,
)
from faceflow.jobs import worker as worker_module
from faceflow.jobs.handles import unknown_handle
from faceflow.jobs.records import (
    HandleRecord,
    JobOutcome,
    JobPayload,
    JobRecord,
    JobStatus,
    encode_handle,
    encode_outcome,
    encode_payload,
)
from faceflow.jobs.redis_store import JOB_FUNCTION, JobKeys
from faceflow.jobs.rq_runner import (
    HANDLE_RECORD_BYTES,
    REDIS_FAILURES,
    REDIS_THREADS,
    RQ_JOB_BYTES,
    RqRunner,
)
from faceflow.jobs.supervisor import EXIT_QUEUE_LOST, Supervisor, exit_code
from faceflow.jobs.worker import (
    FaceflowJob,
    FaceflowQueue,
    FaceflowWorker,
    build_worker,
    open_queue,
    restart_grace_s,
)
from faceflow.operations.registry import Submission, prepare, scoped_job_id
from faceflow.runtime.context import WorkerContext, load_context
from tests.fixtures.images import truncated
from tests.fixtures.redis_monitor import commands_during
from tests.fixtures.redis_server import RedisProcess, RedisServerFactory
from tests.jobs.support import QUEUE, job_settings, runner_for, submit, variant, work_burst

pytestmark = pytest.mark.redis


@pytest.fixture
async def runner(queue_redis: RedisProcess) -> AsyncIterator[RqRunner]:
    r = runner_for(job_settings(queue_redis.url))
    await r.start()
    yield r
    await r.close()


async def test_a_finished_job_keeps_its_outcome_not_its_image(
    runner: RqRunner, queue_redis: RedisProcess, worker_context: WorkerContext, face_jpeg: bytes
) -> None:
    settings = job_settings(queue_redis.url)
    submission = prepare("detect", variant(face_jpeg), {}, settings)
    record = await runner.submit(submission, None)
    keys = JobKeys(QUEUE)
    connection = Redis.from_url(queue_redis.url)
    assert connection.exists(keys.data(submission.job_id))
    work_burst(settings, worker_context)
    assert (await runner.status(record.handle, None)).status is JobStatus.FINISHED
    assert not connection.exists(keys.data(submission.job_id))
    assert connection.exists(keys.result(submission.job_id))
    connection.close()


async def test_one_client_cannot_take_the_whole_queue_past_its_share(
    queue_redis: RedisProcess, worker_context: WorkerContext, face_jpeg: bytes
) -> None:
    """jobs.max_queued_per_client: one API key with its share of jobs queued is refused (429
    with Retry-After) while another key's submission is taken; without it, the key took the
    whole of max_queued and the other key's job was 503 queue_full. Joining identical queued
    work is not counted; jobs that ended give their place back."""
    settings = job_settings(queue_redis.url, max_queued=3, max_queued_per_client=2)
    runner = runner_for(settings)
    greedy, other = "a" * 64, "b" * 64
    try:
        first = prepare("detect", variant(face_jpeg), {}, settings)
        await runner.submit(first, greedy)
        await runner.submit(prepare("detect", variant(face_jpeg), {}, settings), greedy)
        with pytest.raises(RateLimited) as refused:
            await runner.submit(prepare("detect", variant(face_jpeg), {}, settings), greedy)
        assert refused.value.retry_after_s >= 1
        await runner.submit(first, greedy)  # the same work again: joins its queued job
        await runner.submit(prepare("detect", variant(face_jpeg), {}, settings), other)
        work_burst(settings, worker_context)
        await runner.submit(prepare("detect", variant(face_jpeg), {}, settings), greedy)
    finally:
        await runner.close()


async def test_the_queue_bound_holds_exactly_under_a_burst_on_two_api_nodes(
    queue_redis: RedisProcess, face_jpeg: bytes
) -> None:
    """jobs.max_queued is exact across API nodes: 60 distinct submissions at once, through two
    runners (two API nodes, four queue Redis threads each), queue exactly the bound and refuse
    the rest 503 ``queue_full`` with Retry-After, leaving no job or image behind. Checked in
    one call and enqueued in another, the bound was passed by the submissions under way
    between the two (6 to 8 queued of 5; 8 in each of 3 runs here)."""
    settings = job_settings(queue_redis.url, max_queued=5)
    nodes = [runner_for(settings), runner_for(settings)]
    connection = Redis.from_url(queue_redis.url)
    try:
        for node in nodes:
            await node.start()
        submissions = [prepare("detect", variant(face_jpeg), {}, settings) for _ in range(60)]
        answers = await asyncio.gather(
            *(nodes[i % 2].submit(s, None) for i, s in enumerate(submissions)),
            return_exceptions=True,
        )
        refused = [a for a in answers if isinstance(a, QueueFull)]
        assert connection.llen(f"rq:queue:{QUEUE}") == 5
        assert (len(answers) - len(refused), len(refused)) == (5, 55)
        assert all(r.retry_after_s >= 1 for r in refused)
        queued = set(Queue(QUEUE, connection=connection).get_job_ids())
        images = {s.job_id for s in submissions if connection.exists(JobKeys(QUEUE).data(s.job_id))}
        jobs = {s.job_id for s in submissions if connection.exists(Job.key_for(s.job_id))}
        assert images == jobs == queued
    finally:
        connection.close()
        for node in nodes:
            await node.close()


async def test_a_clients_share_holds_exactly_under_a_burst_on_two_api_nodes(
    queue_redis: RedisProcess, face_jpeg: bytes
) -> None:
    """jobs.max_queued_per_client is exact across API nodes: one key's 40 distinct works, each
    submitted on both of two runners (two API nodes) at once, queue exactly its share of jobs,
    each shared by both of its submissions, and refuse the rest 429 with Retry-After, leaving
    no job, image or pending entry behind. Checked in one call and counted in another, the
    share was passed by the submissions under way between the two (7 or 8 queued of 5 in 3 of
    4 runs; the next test makes that interleaving happen every time)."""
    settings = job_settings(queue_redis.url, max_queued=100, max_queued_per_client=5)
    nodes = [runner_for(settings), runner_for(settings)]
    connection = Redis.from_url(queue_redis.url)
    keys, owner = JobKeys(QUEUE), "a" * 64
    try:
        for node in nodes:
            await node.start()
        works = [prepare("detect", variant(face_jpeg), {}, settings) for _ in range(40)]
        answers = await asyncio.gather(
            *(node.submit(work, owner) for work in works for node in nodes),
            return_exceptions=True,
        )
        refused = [a for a in answers if isinstance(a, RateLimited)]
        assert connection.llen(f"rq:queue:{QUEUE}") == 5
        assert (len(answers) - len(refused), len(refused)) == (10, 70)
        assert all(r.retry_after_s >= 1 for r in refused)
        job_ids = [scoped_job_id(w, owner, settings.jobs.dedup_scope) for w in works]
        queued = set(Queue(QUEUE, connection=connection).get_job_ids())
        images = {i for i in job_ids if connection.exists(keys.data(i))}
        jobs = {i for i in job_ids if connection.exists(Job.key_for(i))}
        pending = {i for i in job_ids if connection.zscore(keys.pending(owner), i) is not None}
        assert images == jobs == queued == pending
        assert connection.zcard(keys.pending(owner)) == 5
        assert all(connection.scard(keys.refs(i)) == 2 for i in queued)  # both share it
    finally:
        connection.close()
        for node in nodes:
            await node.close()


async def test_a_clients_share_filled_on_another_node_after_the_check_refuses_the_enqueue(
    queue_redis: RedisProcess, face_jpeg: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The burst above, one interleaving made to happen: one key's submission passes the check
    of its share (2) on one API node, then the key's two other submissions fill the share on
    another node before it enqueues. It is refused 429 with Retry-After, leaving no job, image
    or pending entry; checked apart from the enqueue, it was queued as the key's third job."""
    settings = job_settings(queue_redis.url, max_queued_per_client=2)
    nodes = [runner_for(settings), runner_for(settings)]
    owner, keys = "a" * 64, JobKeys(QUEUE)
    late, *others = [prepare("detect", variant(face_jpeg), {}, settings) for _ in range(3)]
    try:
        for node in nodes:
            await node.start()
        check_share = nodes[0]._check_share

        def others_after(*args: Any) -> None:
            check_share(*args)
            for work in others:
                nodes[1]._submit(work, owner, None)

        monkeypatch.setattr(nodes[0], "_check_share", others_after)
        with pytest.raises(RateLimited) as refused:
            await nodes[0].submit(late, owner)
        assert refused.value.retry_after_s >= 1
        connection = nodes[0]._conn
        job_id = scoped_job_id(late, owner, settings.jobs.dedup_scope)
        assert connection.llen(f"rq:queue:{QUEUE}") == 2
        assert connection.zcard(keys.pending(owner)) == 2
        assert connection.zscore(keys.pending(owner), job_id) is None
        assert not connection.exists(Job.key_for(job_id))
        assert not connection.exists(keys.data(job_id))
    finally:
        for node in nodes:
            await node.close()


async def test_a_submission_refused_its_share_by_its_identical_twins_job_shares_that_job(
    queue_redis: RedisProcess, face_jpeg: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two identical submissions of one key on two API nodes, the key's share one job: the one
    that found no job, then its share full with the job the other had just enqueued, shares
    that job. Refused, it was 429 for the very work the key had queued (seen in 1 of 4
    runs of a burst of one key's identical pairs on two nodes)."""
    settings = job_settings(queue_redis.url, max_queued_per_client=1)
    nodes = [runner_for(settings), runner_for(settings)]
    owner = "a" * 64
    work = prepare("detect", variant(face_jpeg), {}, settings)
    try:
        for node in nodes:
            await node.start()
        check_share = nodes[0]._check_share
        twins: list[JobRecord] = []

        def twin_first(*args: Any) -> None:
            if not twins:  # the twin's whole submission, between this one's read and check
                twins.append(nodes[1]._submit(work, owner, None))
            check_share(*args)

        monkeypatch.setattr(nodes[0], "_check_share", twin_first)
        mine = await nodes[0].submit(work, owner)
        assert (mine.status, twins[0].status) == (JobStatus.QUEUED, JobStatus.QUEUED)
        connection = nodes[0]._conn
        job_id = scoped_job_id(work, owner, settings.jobs.dedup_scope)
        assert connection.smembers(JobKeys(QUEUE).refs(job_id)) == {
            mine.handle.encode(),
            twins[0].handle.encode(),
        }
        assert connection.llen(f"rq:queue:{QUEUE}") == 1
    finally:
        for node in nodes:
            await node.close()


async def test_one_client_cannot_fill_the_queue_redis_with_its_results(
    queue_redis: RedisProcess, worker_context: WorkerContext, face_jpeg: bytes
) -> None:
    """jobs.max_result_bytes_per_client: a key whose stored results hold its share is refused
    (429, Retry-After until its soonest result expires) before anything is computed, while
    another key's jobs are taken and finish; the key's results deleted, it is taken again.
    Without it, one key's day of results filled the queue Redis and other keys' jobs ran and
    then ended failed queue_full."""
    share = 1024
    settings = job_settings(queue_redis.url, max_result_bytes_per_client=share)
    runner = runner_for(settings)
    keys = JobKeys(QUEUE)
    connection = Redis.from_url(queue_redis.url)
    greedy, other = "a" * 64, "b" * 64
    try:
        mine = [prepare("detect", variant(face_jpeg), {}, settings) for _ in range(3)]
        for submission in mine:
            await runner.submit(submission, greedy)
        work_burst(settings, worker_context)
        stored = sum(int(connection.strlen(keys.result(s.job_id))) for s in mine)
        assert stored >= share  # what the refusal below is about
        refused_work = prepare("detect", variant(face_jpeg), {}, settings)
        with pytest.raises(RateLimited) as refused:
            await runner.submit(refused_work, greedy)
        assert 1 <= refused.value.retry_after_s <= settings.jobs.result_ttl_s
        assert not connection.exists(Job.key_for(refused_work.job_id))  # nothing to compute
        assert not connection.exists(keys.data(refused_work.job_id))
        theirs = await runner.submit(prepare("detect", variant(face_jpeg), {}, settings), other)
        work_burst(settings, worker_context)
        assert (await runner.status(theirs.handle, other)).status is JobStatus.FINISHED
        with pytest.raises(RateLimited):
            await runner.submit(refused_work, greedy)
        connection.delete(*(keys.result(s.job_id) for s in mine))
        taken = await runner.submit(refused_work, greedy)
        assert taken.status is JobStatus.QUEUED
    finally:
        connection.close()
        await runner.close()


async def test_a_clients_share_counts_the_records_each_result_keeps_beside_it(
    queue_redis: RedisProcess, worker_context: WorkerContext, face_jpeg: bytes
) -> None:
    """A computed job keeps RQ's job hash and results stream and its handle's records for as
    long as its outcome, about 10 KB of the queue Redis for a detect result of a few hundred
    bytes: counted at the outcome's bytes alone, a key's share let it keep 30 times as much.
    One detect job now fills a share of half what it keeps."""
    settings = job_settings(
        queue_redis.url, max_result_bytes_per_client=(HANDLE_RECORD_BYTES + RQ_JOB_BYTES) // 2
    )
    runner = runner_for(settings)
    keys = JobKeys(QUEUE)
    connection = Redis.from_url(queue_redis.url)
    greedy = "a" * 64
    try:
        first = prepare("detect", variant(face_jpeg), {}, settings)
        await runner.submit(first, greedy)
        work_burst(settings, worker_context)
        assert 0 < int(connection.strlen(keys.result(first.job_id))) < 1000
        with pytest.raises(RateLimited):
            await runner.submit(prepare("detect", variant(face_jpeg), {}, settings), greedy)
    finally:
        connection.close()
        await runner.close()


async def test_a_clients_results_leave_its_share_when_they_expire(
    queue_redis: RedisProcess, worker_context: WorkerContext, face_jpeg: bytes
) -> None:
    """Results that expired by their TTL, seen by no one, are no longer counted: the key over
    its share is taken again once they have gone."""
    # Results kept 5 s: far longer than the burst that makes them takes (well under a second).
    settings = job_settings(queue_redis.url, max_result_bytes_per_client=1024, result_ttl_s=5)
    runner = runner_for(settings)
    keys = JobKeys(QUEUE)
    connection = Redis.from_url(queue_redis.url)
    greedy = "a" * 64
    try:
        mine = [prepare("detect", variant(face_jpeg), {}, settings) for _ in range(3)]
        for submission in mine:
            await runner.submit(submission, greedy)
        work_burst(settings, worker_context)
        later = prepare("detect", variant(face_jpeg), {}, settings)
        with pytest.raises(RateLimited) as refused:
            await runner.submit(later, greedy)
        assert 1 <= refused.value.retry_after_s <= 5
        deadline = time.monotonic() + 60  # a bound: they expire within 5 s
        while any(connection.exists(keys.result(s.job_id)) for s in mine):
            assert time.monotonic() < deadline, "the results did not expire"
            await asyncio.sleep(0.1)
        assert (await runner.submit(later, greedy)).status is JobStatus.QUEUED
        assert connection.hget(keys.result_bytes(greedy), "total") == b"0"
    finally:
        connection.close()
        await runner.close()


async def test_results_the_cache_answers_count_against_the_share_too(
    queue_redis: RedisProcess, face_jpeg: bytes
) -> None:
    """A result the shared cache answers is stored in the queue Redis for the day as a
    computed one is: it counts against the key's share, and past it the key's next one is
    refused (another key's is taken)."""
    # Two such results with their handles' records (2 × 2,200 bytes) hold it; one does not.
    share = 2 * HANDLE_RECORD_BYTES + 1000
    settings = job_settings(queue_redis.url, max_result_bytes_per_client=share)
    cache = ResultCache.from_settings(CacheSettings(memory_bytes=1 << 20))
    runner = RqRunner(settings, cache)
    greedy, other = "a" * 64, "b" * 64

    async def known() -> Submission:
        submission = prepare("detect", variant(face_jpeg), {}, settings)
        await cache.put(
            submission.key, CacheEntry("application/json", b"[" + b" " * 700 + b"]", {})
        )
        return submission

    try:
        for _ in range(2):
            assert (await runner.submit(await known(), greedy)).from_cache
        with pytest.raises(RateLimited):
            await runner.submit(await known(), greedy)
        assert (await runner.submit(await known(), other)).from_cache
    finally:
        await runner.close()


async def test_the_worker_fills_the_shared_cache_as_the_api_reads_it(
    queue_redis: RedisProcess,
    redis_url: str,
    worker_context: WorkerContext,
    face_jpeg: bytes,
) -> None:
    # A generous per-call timeout (the default is 50 ms): a busy machine stalling the worker's
    # write or the API's read that long left the cache looking empty (seen once in ~20 runs).
    cache_settings = CacheSettings(
        redis_url=redis_url, ttl_s=600, ttl_jitter=0.1, redis_timeout_ms=5000
    )
    settings = job_settings(queue_redis.url).model_copy(update={"cache": cache_settings})
    runner = runner_for(settings)
    submission = prepare("detect", variant(face_jpeg), {}, settings)
    await runner.submit(submission, None)
    work_burst(settings, worker_context)
    api_cache = RedisCache.from_settings(settings.cache)
    assert api_cache is not None
    cached = await api_cache.get(submission.key)
    assert cached is not None
    assert json.loads(cached.body)["face_count"] == 1
    connection = Redis.from_url(redis_url)
    ttl_ms = connection.pttl(api_cache.data_key(submission.key))
    connection.close()
    assert 600_000 * 0.9 - 60_000 < ttl_ms <= 600_000 * 1.1  # the cache's TTL with its jitter
    await api_cache.close()
    await runner.close()


async def test_an_api_node_computes_at_once_what_a_worker_found_too_large_to_share(
    queue_redis: RedisProcess,
    redis_url: str,
    worker_context: WorkerContext,
    face_jpeg: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An answer over cache.redis_max_entry_bytes is not stored in the shared cache. A worker
    that computed one left no mark of it there (the API nodes leave one): an API node waiting
    on another node's lock for the same work found nothing at each poll and computed it only
    after the other node had (or, as here, once it had waited out lock_ttl_ms, 30 s by
    default). Marked by the worker, it computes at once, the other node's lock still held."""
    cache_settings = CacheSettings(
        redis_url=redis_url,
        ttl_s=600,
        redis_timeout_ms=5000,
        redis_max_entry_bytes=16,
        lock_ttl_ms=2000,  # what the test waits out when the mark is missing
    )
    settings = job_settings(queue_redis.url).model_copy(update={"cache": cache_settings})
    runner = runner_for(settings)
    submission = prepare("detect", variant(face_jpeg), {}, settings)
    await runner.submit(submission, None)
    work_burst(settings, worker_context)
    other_node = RedisCache.from_settings(settings.cache)
    api_node = ResultCache.from_settings(settings.cache)
    assert other_node is not None
    ours = CacheEntry("application/json", b'{"face_count": 1}')

    async def compute() -> CacheEntry:
        return ours

    try:
        assert await other_node.get(submission.key) is None  # too large: not stored
        lock = await other_node.acquire_lock(submission.key, "other-node", 60_000)
        assert lock is LockResult.ACQUIRED  # another node computes the same work meanwhile
        with caplog.at_level(logging.WARNING, logger="faceflow.cache.singleflight"):
            entry, status = await api_node.get_or_compute(submission.key, compute)
        assert (entry, status) == (ours, CacheStatus.MISS)
        assert "gave up waiting" not in caplog.text
        assert await other_node.release_lock(submission.key, "other-node")  # still held
    finally:
        await api_node.close()
        await other_node.close()
        await runner.close()


async def test_the_worker_caches_a_deterministic_failure_as_the_api_nodes_do(
    queue_redis: RedisProcess,
    redis_url: str,
    worker_context: WorkerContext,
    face_jpeg: bytes,
) -> None:
    """An image that cannot be decoded fails every time: the sync route's repeat of the job's
    work finds the failure in the shared cache (cache/compute.py caches it the same way)."""
    cache_settings = CacheSettings(
        redis_url=redis_url, ttl_s=600, ttl_jitter=0.1, redis_timeout_ms=5000
    )
    settings = job_settings(queue_redis.url).model_copy(update={"cache": cache_settings})
    runner = runner_for(settings)
    submission = prepare("detect", truncated(variant(face_jpeg), 0.5), {}, settings)
    record = await runner.submit(submission, None)
    work_burst(settings, worker_context)
    assert (await runner.status(record.handle, None)).status is JobStatus.FAILED
    api_cache = RedisCache.from_settings(settings.cache)
    assert api_cache is not None
    cached = await api_cache.get(submission.key)
    failure = failure_of(cached) if cached is not None else None
    assert failure is not None
    assert failure.code == "undecodable"
    await api_cache.close()
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
    work_burst(settings, worker_context)
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

    work_burst(settings, worker_context)

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
    work_burst(settings, worker_context)
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

    work_burst(settings, worker_context)

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


def test_no_abandoned_job_pass_until_workers_could_renew_after_a_hang(
    queue_redis: RedisProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A queue Redis that hung (SIGSTOP, a stalled disk or VM) past a lease, without restarting:
    its uptime ran on, so the restart grace did not apply, and the first pass after it retried
    every running job, each run again beside itself. The gap between passes, on the queue
    Redis's clock, now starts the same grace."""
    monkeypatch.setattr(worker_module, "_up_for_s", lambda connection: 1e9)  # long up
    settings = job_settings(queue_redis.url)
    connection = Redis.from_url(queue_redis.url)
    queue = open_queue(settings, connection)
    keys = JobKeys(QUEUE)
    try:
        for _ in range(2):  # passes at their usual pace
            assert queue.acquire_maintenance_lock() is True
            queue.release_maintenance_lock()  # type: ignore[no-untyped-call]
        now_s = connection.time()[0]
        connection.set(keys.last_pass, now_s - 60)  # nobody reached it for a minute
        assert queue.acquire_maintenance_lock() is False
        grace_s = connection.ttl(keys.lease_grace)
        assert 0 < grace_s <= restart_grace_s(settings.jobs.lease_s) + 1
        assert queue.acquire_maintenance_lock() is False  # passes in the grace judge nothing
        connection.delete(keys.lease_grace)  # the grace over
        assert queue.acquire_maintenance_lock() is True
        queue.release_maintenance_lock()  # type: ignore[no-untyped-call]
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("lease_s", "interval_s", "hang_s"),
    [
        (10, 30, 8.0),  # passes 30 s apart: only gaps of 61 s or more were seen
        (10, 3, 7.0),
        (3, 2, 2.5),
        (7, 1, 4.8),  # in whole seconds, some leases under 8 s had it at any interval
        (2, 1, 1.5),  # the suite's
        (600, 3600, 401.0),
    ],
)
def test_a_hang_that_can_let_a_lease_lapse_is_seen_whatever_the_maintenance_interval(
    queue_redis: RedisProcess,
    monkeypatch: pytest.MonkeyPatch,
    lease_s: int,
    interval_s: int,
    hang_s: float,
) -> None:
    """The passes alone fed the hang check, read in whole seconds: it saw a gap over
    max(lease / 2, 2 intervals), plus a second. A live worker's lease can lapse in a hang of two
    thirds of one: with a 10 s lease and passes every 30 s, a queue Redis hung 8 s let the
    running job's lease lapse unseen, and the next pass ran the job again beside itself. The
    supervisors now tick every quarter lease, read in microseconds: a gap over half a lease
    is a hang. The clock is set back here as the hang would have: the last tick a hang ago, the
    last pass an ordinary interval ago."""
    monkeypatch.setattr(worker_module, "_up_for_s", lambda connection: 1e9)  # long up
    assert hang_s > 2 * lease_s / 3  # long enough to let a live worker's lease lapse
    settings = job_settings(queue_redis.url, lease_s=lease_s, maintenance_interval_s=interval_s)
    connection = Redis.from_url(queue_redis.url)
    queue = open_queue(settings, connection)
    keys = JobKeys(QUEUE)

    def clock_set_back(tick_s: float) -> None:
        now_s, now_us = connection.time()
        connection.set(keys.last_pass, now_s - interval_s)
        connection.set(keys.last_tick, now_s * 1_000_000 + now_us - round(tick_s * 1_000_000))

    try:
        clock_set_back(lease_s / 4)  # the ticks at their usual pace
        assert queue.acquire_maintenance_lock() is True
        queue.release_maintenance_lock()  # type: ignore[no-untyped-call]
        clock_set_back(hang_s)  # then nobody reached it for the hang
        assert queue.acquire_maintenance_lock() is False
        assert 0 < connection.ttl(keys.lease_grace) <= restart_grace_s(lease_s) + 1
    finally:
        connection.close()


@pytest.mark.parametrize("by", ["supervisor", "worker"])
async def test_a_hang_after_the_hang_check_does_not_give_back_a_running_job(
    runner: RqRunner,
    queue_redis: RedisProcess,
    worker_context: WorkerContext,
    face_jpeg: bytes,
    monkeypatch: pytest.MonkeyPatch,
    by: str,
) -> None:
    """A pass runs the hang check, then RQ's clean-up judges leases by its clock some round
    trips later: a queue Redis that hung in between (the lock's SET or the finished registry's
    clean-up waiting it out) had the running job's lease judged expired by the hang's end,
    though its worker was alive and could not renew it, and the job given back to run again
    beside itself. Here the clean-up's clock moves five leases on right after the check, as
    that hang would have it; leases are judged as of the check."""
    monkeypatch.setattr(worker_module, "_up_for_s", lambda connection: 1e9)  # long up
    settings = job_settings(queue_redis.url)
    submission = prepare("detect", variant(face_jpeg), {}, settings)
    submitted = await runner.submit(submission, None)
    connection = Redis.from_url(queue_redis.url)
    registry = StartedJobRegistry(QUEUE, connection=connection)
    seen: dict[str, object] = {}

    def maintain(queue: FaceflowQueue) -> None:
        if by == "supervisor":
            Supervisor(settings, processes=1)._maintain(queue)
        else:
            state = worker_module.WorkerState(settings, worker_context, connection, None)
            FaceflowWorker(queue, state).clean_registries()

    def pass_with_a_hang_after_its_check(_: JobPayload) -> None:
        queue = open_queue(settings, connection)  # another process's pass, while the job runs

        def check_then_hang() -> bool:
            taken = FaceflowQueue.acquire_maintenance_lock(queue)
            seen["taken"] = taken
            hang_ends = current_timestamp() + 5 * settings.jobs.lease_s
            patch.setattr(rq_registry, "current_timestamp", lambda: hang_ends)
            return taken

        with monkeypatch.context() as patch:
            patch.setattr(queue, "acquire_maintenance_lock", check_then_hang)
            maintain(queue)
        seen["queued"] = queue.get_job_ids()
        seen["running"] = registry.get_job_ids(cleanup=False)

    work_burst(settings, worker_context, pass_with_a_hang_after_its_check)
    assert seen == {"taken": True, "queued": [], "running": [submission.job_id]}
    record = await runner.status(submitted.handle, None)
    assert (record.status, record.attempts) == (JobStatus.FINISHED, 1), record
    connection.close()


async def test_a_lease_that_lapsed_before_the_hang_check_is_judged_at_the_next_pass(
    runner: RqRunner,
    queue_redis: RedisProcess,
    face_jpeg: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Judging leases as of the check does not spare the job of a worker that died: its lease
    lapsed before the check, so the pass gives the job back to run elsewhere."""
    monkeypatch.setattr(worker_module, "_up_for_s", lambda connection: 1e9)  # long up
    settings = job_settings(queue_redis.url)
    submission = prepare("detect", variant(face_jpeg), {}, settings)
    await runner.submit(submission, None)
    connection = Redis.from_url(queue_redis.url)
    queue = open_queue(settings, connection)
    registry = StartedJobRegistry(QUEUE, connection=connection)
    # Taken and started by a worker that then died: its lease lapsed a second ago.
    assert connection.lrem(queue.key, 1, submission.job_id) == 1
    Job.fetch(submission.job_id, connection=connection, serializer=JSONSerializer).set_status(
        RqJobStatus.STARTED
    )
    connection.zadd(registry.key, {f"{submission.job_id}:dead": current_timestamp() - 1})

    Supervisor(settings, processes=1)._maintain(queue)

    assert queue.get_job_ids() == [submission.job_id]
    assert registry.get_job_ids(cleanup=False) == []
    connection.close()


def host_clock(patch: pytest.MonkeyPatch, offset_s: float) -> None:
    """This process's clock as RQ and the worker read it (``current_timestamp``, ``now``), set
    ``offset_s`` away from the true one: another host's, whose clock is off."""
    true_timestamp, true_now = rq_utils.current_timestamp, rq_utils.now
    skewed = {
        true_timestamp: lambda: true_timestamp() + int(offset_s),
        true_now: lambda: true_now() + timedelta(seconds=offset_s),
    }
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "rq" or name.startswith(("rq.", "faceflow.jobs."))):
            continue
        for attribute in ("current_timestamp", "now"):
            clock = getattr(module, attribute, None)
            if clock in skewed:
                patch.setattr(module, attribute, skewed[clock])


@pytest.mark.parametrize("skewed", ["worker_behind", "judge_ahead"])
async def test_a_running_job_is_not_run_again_when_host_clocks_differ_by_more_than_a_lease(
    runner: RqRunner,
    queue_redis: RedisProcess,
    worker_context: WorkerContext,
    face_jpeg: bytes,
    monkeypatch: pytest.MonkeyPatch,
    skewed: str,
) -> None:
    """Leases are scored and judged on the queue Redis's clock, not the hosts': a worker whose
    host clock is an hour behind (its lease written and renewed on it), or a maintenance pass
    on a host an hour ahead, does not see a live worker's lease as expired. Scored on the
    worker's clock and judged on the pass's, the job was given back to run a second time
    beside itself."""
    monkeypatch.setattr(worker_module, "_up_for_s", lambda connection: 1e9)  # long up
    settings = job_settings(queue_redis.url)
    submission = prepare("detect", variant(face_jpeg), {}, settings)
    submitted = await runner.submit(submission, None)
    connection = Redis.from_url(queue_redis.url)
    registry = StartedJobRegistry(QUEUE, connection=connection)
    hour = 3600.0
    worker_host, judge_host = pytest.MonkeyPatch(), pytest.MonkeyPatch()
    seen: dict[str, object] = {}

    def renew_then_judge(_: JobPayload) -> None:
        [execution] = worker.executions.values()
        job = get_current_job()
        assert job is not None
        worker.maintain_heartbeats(job, execution)  # a renewal, on the worker host's clock
        worker_host.undo()
        if skewed == "judge_ahead":
            host_clock(judge_host, hour)
        try:
            queue = open_queue(settings, connection)  # another host's pass, while the job runs
            Supervisor(settings, processes=1)._maintain(queue)
        finally:
            judge_host.undo()
        seen["queued"] = queue.get_job_ids()
        seen["running"] = registry.get_job_ids(cleanup=False)

    worker = build_worker(settings, worker_context, renew_then_judge)
    if skewed == "worker_behind":
        host_clock(worker_host, -hour)
    try:
        worker.work(burst=True, logging_level="WARNING")
    finally:
        worker_host.undo()
    assert seen == {"queued": [], "running": [submission.job_id]}
    record = await runner.status(submitted.handle, None)
    assert (record.status, record.attempts) == (JobStatus.FINISHED, 1), record
    connection.close()


async def test_a_taken_jobs_sighting_is_timed_on_the_queue_redis_clock(
    runner: RqRunner,
    queue_redis: RedisProcess,
    worker_context: WorkerContext,
    face_jpeg: bytes,
) -> None:
    """A job taken and not started (its taker stopped) is given back once it has been seen in
    RQ's intermediate queue for ``stuck_after_s``, by the queue Redis's clock: first seen by a
    pass on a host an hour behind, it is not given back by the next pass on a true clock, a
    moment later. On the hosts' clocks it was, at once (and a judge an hour slow would have
    left a dead taker's job there an hour more)."""
    settings = job_settings(queue_redis.url)
    submission = prepare("detect", variant(face_jpeg), {}, settings)
    await runner.submit(submission, None)
    connection = Redis.from_url(queue_redis.url)
    queue = open_queue(settings, connection)
    taken = connection.lmove(queue.key, queue.intermediate_queue_key)  # as RQ's dequeue takes it
    assert taken == submission.job_id.encode()
    state = worker_module.WorkerState(settings, worker_context, connection, None)
    worker = FaceflowWorker(queue, state)
    with pytest.MonkeyPatch.context() as behind:
        host_clock(behind, -3600.0)
        queue.intermediate_queue.cleanup(worker, queue)  # first seen there
    queue.intermediate_queue.cleanup(worker, queue)
    assert queue.intermediate_queue.get_job_ids() == [submission.job_id]
    assert queue.get_job_ids() == []
    connection.close()


async def test_a_queue_redis_out_of_memory_answers_queue_full(
    runner: RqRunner, queue_redis: RedisProcess, face_jpeg: bytes
) -> None:
    """noeviction at maxmemory: the submission is refused as queue_full (503, Retry-After), not
    as an unavailable queue. Its image, stored first (Redis refuses a write only once it is
    over the limit), is not left behind for the payload's TTL (a day) to hold the room."""
    settings = job_settings(queue_redis.url)
    connection = Redis.from_url(queue_redis.url)
    used = int(connection.info("memory")["used_memory"])
    connection.config_set("maxmemory-policy", "noeviction")
    connection.config_set("maxmemory", str(used + 256 * 1024))
    try:
        big = variant(face_jpeg) + b"\0" * (1024 * 1024)  # 1 MiB more than Redis has room for
        submission = prepare("detect", big, {}, settings)
        with pytest.raises(QueueFull):
            await runner.submit(submission, None)
        assert not connection.exists(JobKeys(QUEUE).data(submission.job_id))
    finally:
        connection.config_set("maxmemory", "0")
        connection.close()


async def test_a_queue_redis_that_stays_out_of_memory_answers_queue_full_and_stays_readable(
    queue_redis: RedisProcess, face_jpeg: bytes
) -> None:
    """Over maxmemory (noeviction) every write is refused, whichever a submission makes first.
    One the shared cache answers (its outcome's write) got 503 ``unavailable`` and counted as a
    queue Redis failure: after three, the breaker refused every call, status polls too, as if
    the queue Redis were down. Each is now 503 ``queue_full`` with Retry-After; reads go on."""
    settings = job_settings(queue_redis.url)
    cache = ResultCache.from_settings(CacheSettings(memory_bytes=1 << 20))
    runner = RqRunner(settings, cache)
    queued = await runner.submit(prepare("detect", variant(face_jpeg), {}, settings), None)
    connection = Redis.from_url(queue_redis.url)
    connection.config_set("maxmemory-policy", "noeviction")
    connection.config_set("maxmemory", "1")
    try:
        for _ in range(REDIS_FAILURES + 1):
            known = prepare("detect", variant(face_jpeg), {}, settings)
            await cache.put(known.key, CacheEntry("application/json", b"{}", {}))
            with pytest.raises(QueueFull) as full:  # answered from the cache: its outcome
                await runner.submit(known, None)
            assert full.value.retry_after_s >= 1
            with pytest.raises(QueueFull):  # a new job: its image
                await runner.submit(prepare("detect", variant(face_jpeg), {}, settings), None)
        assert (await runner.status(queued.handle, None)).status is JobStatus.QUEUED
    finally:
        connection.config_set("maxmemory", "0")
        connection.close()
        await runner.close()


def served_by_a_blocking_dequeue(worker: FaceflowWorker, connection: Redis) -> Job:
    """What a served BLMOVE did: the first job of ``worker``'s queue moved to its intermediate
    queue, not started; the job, as the worker would read it."""
    queue = worker.queues[0]
    job_id = queue.get_job_ids()[0]
    assert connection.lmove(queue.key, queue.intermediate_queue_key, "LEFT", "RIGHT")
    return FaceflowJob.fetch(job_id, connection=worker.connection, serializer=worker.serializer)


async def test_a_job_taken_whose_start_finds_no_room_goes_back_to_the_front_of_its_queue(
    runner: RqRunner, queue_redis: RedisProcess, worker_context: WorkerContext, face_jpeg: bytes
) -> None:
    """RQ's blocking dequeue, sent while the queue Redis had room, can be served a job once it
    has none: the job's start is then refused. It is not run (its end could not be stored) and
    not left in RQ's intermediate queue: it goes back to the front of its queue, uncounted."""
    settings = job_settings(queue_redis.url)
    first = await runner.submit(prepare("detect", variant(face_jpeg), {}, settings), None)
    second = await runner.submit(prepare("detect", variant(face_jpeg), {}, settings), None)
    worker = build_worker(settings, worker_context)
    queue, connection = worker.queues[0], Redis.from_url(queue_redis.url)
    waiting = queue.get_job_ids()
    job = served_by_a_blocking_dequeue(worker, connection)
    connection.config_set("maxmemory-policy", "noeviction")
    connection.config_set("maxmemory", "1")
    try:
        worker.execute_job(job, queue)
    finally:
        connection.config_set("maxmemory", "0")

    assert queue.get_job_ids() == waiting
    assert queue.intermediate_queue.get_job_ids() == []
    record = await runner.status(first.handle, None)
    assert (record.status, record.attempts) == (JobStatus.QUEUED, 0)
    work_burst(settings, worker_context)
    for handle in (first.handle, second.handle):
        record = await runner.status(handle, None)
        assert (record.status, record.attempts) == (JobStatus.FINISHED, 1), record
    connection.close()


async def test_a_job_given_back_while_its_blocked_taker_was_stopped_is_not_started_by_it(
    runner: RqRunner, queue_redis: RedisProcess, worker_context: WorkerContext, face_jpeg: bytes
) -> None:
    """A worker stopped (SIGSTOP, a frozen host) while blocked in RQ's BLMOVE is served a job it
    cannot start; after ``stuck_after_s`` a maintenance pass gives the job back to its queue and
    another worker takes it. The stopped worker, resumed, read its BLMOVE's reply and started the
    job too: two runs at once (seen live: both "Job OK", the job's attempts 2). It now leaves
    the job to the worker that has it."""
    settings = job_settings(queue_redis.url)
    submitted = await runner.submit(prepare("detect", variant(face_jpeg), {}, settings), None)
    worker = build_worker(settings, worker_context)
    queue, connection = worker.queues[0], Redis.from_url(queue_redis.url)
    waiting = queue.get_job_ids()
    job = served_by_a_blocking_dequeue(worker, connection)
    # Then what the maintenance pass did while that worker was stopped.
    assert connection.lmove(queue.intermediate_queue_key, queue.key, "RIGHT", "LEFT")

    worker.execute_job(job, queue)  # the stopped worker resumes with the job it was served

    assert queue.get_job_ids() == waiting
    record = await runner.status(submitted.handle, None)
    assert (record.status, record.attempts) == (JobStatus.QUEUED, 0)
    work_burst(settings, worker_context)
    record = await runner.status(submitted.handle, None)
    assert (record.status, record.attempts) == (JobStatus.FINISHED, 1), record
    connection.close()


async def test_a_running_jobs_lease_is_renewed_while_the_queue_redis_is_out_of_memory(
    runner: RqRunner, queue_redis: RedisProcess, worker_context: WorkerContext, face_jpeg: bytes
) -> None:
    """RQ's lease renewal is a transaction of writes Redis refuses at maxmemory (noeviction), so
    a job running while the queue Redis was full kept its first lease, and once it expired the
    next maintenance pass would run the job a second time beside the first. The lease (its
    score in the started registry) moves on all the same."""
    settings = job_settings(queue_redis.url)
    submission = prepare("detect", variant(face_jpeg), {}, settings)
    submitted = await runner.submit(submission, None)
    connection = Redis.from_url(queue_redis.url)
    registry = StartedJobRegistry(QUEUE, connection=connection)
    leases: list[float] = []

    def renewed_while_full(_: JobPayload) -> None:
        [member] = registry.get_job_and_execution_ids()
        composite = f"{member[0]}:{member[1]}"
        first = connection.zscore(registry.key, composite)
        assert first is not None
        connection.config_set("maxmemory-policy", "noeviction")
        connection.config_set("maxmemory", "1")
        try:
            # Renewed every lease_s / 3 (under a second here); whole-second scores move within
            # two renewals. Four leases is ample and still fails in seconds without the fix.
            deadline = time.monotonic() + 4 * settings.jobs.lease_s
            while time.monotonic() < deadline:
                score = connection.zscore(registry.key, composite)
                if score is not None and score > first:
                    leases.append(score)
                    return
                time.sleep(0.1)
        finally:
            connection.config_set("maxmemory", "0")

    work_burst(settings, worker_context, renewed_while_full)
    assert leases, "the lease was not renewed while the queue Redis was full"
    record = await runner.status(submitted.handle, None)
    assert (record.status, record.attempts) == (JobStatus.FINISHED, 1)
    connection.close()


class _OnLog(logging.Handler):
    """Calls ``action`` on each record its logger emits at WARNING and above."""

    def __init__(self, action: Callable[[logging.LogRecord], None]) -> None:
        super().__init__(logging.WARNING)
        self.action = action

    def emit(self, record: logging.LogRecord) -> None:
        self.action(record)


@pytest.mark.parametrize(
    ("operation", "options", "room"),
    [
        # A detect result (about 1 KB) fits in the room left, an ID photo's PNG (212 KB here)
        # does not, whatever the server's own buffers add to its used memory
        # meanwhile (with 128 KB the PNG once fitted, in a run of many modules in 2 workers).
        pytest.param(
            "id-photo", {"spec": "us-passport", "format": "png"}, 32 * 1024, id="result-too-large"
        ),
        # Not even a job's small end fits: the queue Redis stays over maxmemory until the worker
        # says it ended the job.
        pytest.param("detect", {}, None, id="no-room-at-all"),
    ],
)
async def test_a_job_whose_end_does_not_fit_in_the_queue_redis_ends_once_as_queue_full(
    runner: RqRunner,
    queue_redis: RedisProcess,
    worker_context: WorkerContext,
    face_jpeg: bytes,
    caplog: pytest.LogCaptureFixture,
    operation: str,
    options: dict[str, Any],
    room: int | None,
) -> None:
    """noeviction at maxmemory: storing a job's end was refused, RQ took that for the job's own
    error and ran it 4 times (computing it each time, a traceback at ERROR each time), and it
    ended as ``internal``. It now ends once, failed as queue_full, with nothing stored under its
    content key, and the worker goes on to the next job."""
    settings = job_settings(queue_redis.url)
    submission = prepare(operation, variant(face_jpeg), options, settings)
    first = await runner.submit(submission, None)
    second = await runner.submit(prepare("detect", variant(face_jpeg), {}, settings), None)
    connection = Redis.from_url(queue_redis.url)
    connection.config_set("maxmemory-policy", "noeviction")

    def squeeze(payload: JobPayload) -> None:
        # From within the attempt, after its start: only the job's end meets the limit.
        if payload.data == submission.data:
            used = int(connection.info("memory")["used_memory"])
            connection.config_set("maxmemory", str(used + room) if room is not None else "1")

    def make_room(record: logging.LogRecord) -> None:
        if room is None and "out of memory" in record.getMessage():
            connection.config_set("maxmemory", "0")

    keys = JobKeys(QUEUE)
    said = _OnLog(make_room)
    worker_log = logging.getLogger("faceflow.jobs.worker")
    worker_log.addHandler(said)
    try:
        with caplog.at_level(logging.WARNING):
            work_burst(settings, worker_context, squeeze)
    finally:
        worker_log.removeHandler(said)
        connection.config_set("maxmemory", "0")

    ended = await runner.status(first.handle, None)
    assert ended.status is JobStatus.FAILED, ended
    assert ended.attempts == 1
    assert ended.ended_at is not None
    assert ended.error is not None
    assert (ended.error.code, ended.error.status) == ("queue_full", 503)
    assert "send it again later" in ended.error.message
    with pytest.raises(JobFailed) as failed:
        await runner.result(first.handle, None)
    assert failed.value.details["failure"] == "queue_full"
    assert not connection.exists(keys.result(submission.job_id))
    assert not connection.exists(keys.data(submission.job_id))  # its image freed
    # One warning for it, no traceback.
    said_so = [r for r in caplog.records if "out of memory" in r.getMessage()]
    assert [(r.levelno, submission.job_id in r.getMessage()) for r in said_so] == [
        (logging.WARNING, True)
    ]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

    # The worker went on to the next job.
    assert (await runner.status(second.handle, None)).status is JobStatus.FINISHED
    # The same work submitted again runs again: the failure was not stored under its key.
    again = await runner.submit(submission, None)
    assert again.status is JobStatus.QUEUED
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


class _StopInLine(io.StringIO):
    """A log stream whose write of a line containing ``text`` calls ``stop`` (as a signal
    handler run there would)."""

    def __init__(self, text: str, stop: Callable[[], None]) -> None:
        super().__init__()
        self.text, self.stop = text, stop
        self.stopped = False

    def write(self, line: str) -> int:
        if self.text in line and not self.stopped:
            self.stopped = True
            self.stop()
        return super().write(line)


def test_an_idle_worker_whose_stop_raise_is_lost_stops_all_the_same(
    queue_redis: RedisProcess, worker_context: WorkerContext
) -> None:
    """RQ's handler raises StopRequested wherever the idle worker is. Raised inside a log line's
    write, logging took it for a failure of its own (``handleError``, "--- Logging error ---")
    and the worker went on waiting for jobs, taking them, until the supervisor's SIGKILL
    ``job_timeout_s`` + 10 s later. Here the stop comes in the write of RQ's "Listening on"."""
    worker = build_worker(job_settings(queue_redis.url), worker_context)
    stream = _StopInLine("Listening on", lambda: worker.request_stop(signal.SIGTERM, None))
    handler = logging.StreamHandler(stream)
    rq_log = logging.getLogger("rq.worker")
    rq_log.addHandler(handler)
    went_on = threading.Event()

    def stop_again() -> None:
        went_on.set()
        os.kill(os.getpid(), signal.SIGTERM)  # RQ's handler again: the loop ends

    # A bound on a worker that went on, not a measure: it stops at its next dequeue (1 s).
    guard = threading.Timer(30.0, stop_again)
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    guard.start()
    try:
        worker.work(logging_level="INFO")
    finally:
        guard.cancel()
        rq_log.removeHandler(handler)
        for sig, previous in before.items():
            signal.signal(sig, previous)
    assert stream.stopped  # the stop came, and its raise went to logging's handleError
    assert not went_on.is_set(), "the worker went on after its stop"
    assert exit_code(worker) == 0


async def test_rq_sees_a_finished_job_as_its_own_worker_would_leave_it(
    runner: RqRunner, queue_redis: RedisProcess, worker_context: WorkerContext, face_jpeg: bytes
) -> None:
    """The end writes only the job hash's fields that changed since the start: RQ's own tools
    (``rq info``, ``Job.fetch``) still read a whole finished job, with its result record."""
    settings = job_settings(queue_redis.url)
    submission = prepare("detect", variant(face_jpeg), {}, settings)
    await runner.submit(submission, None)
    work_burst(settings, worker_context)
    connection = Redis.from_url(queue_redis.url)
    job = Job.fetch(submission.job_id, connection=connection, serializer=JSONSerializer)
    assert job.get_status() == RqJobStatus.FINISHED
    assert job.func_name == JOB_FUNCTION
    assert job.started_at is not None
    assert job.ended_at is not None
    assert job.started_at <= job.ended_at
    result = job.latest_result()
    assert result is not None
    assert result.type == Result.Type.SUCCESSFUL
    assert result.return_value == {"ok": True, "media_type": "application/json", "bytes": ANY}
    assert job.id in FinishedJobRegistry(QUEUE, connection=connection)
    assert job.id not in StartedJobRegistry(QUEUE, connection=connection)
    connection.close()


async def test_rq_sees_a_running_job_as_its_own_worker_would_leave_it(
    runner: RqRunner, queue_redis: RedisProcess, worker_context: WorkerContext, face_jpeg: bytes
) -> None:
    """The start is one script of faceflow's writing RQ's keys: RQ's own readers see the running
    job started, its execution leased in the started registry and in the worker's executions,
    the worker busy, the attempt counted; and the end leaves none of it behind."""
    settings = job_settings(queue_redis.url)
    submission = prepare("detect", variant(face_jpeg), {}, settings)
    await runner.submit(submission, None)
    connection = Redis.from_url(queue_redis.url)
    seen: dict[str, Any] = {}

    def look(_: JobPayload) -> None:
        job = Job.fetch(submission.job_id, connection=connection, serializer=JSONSerializer)
        [execution] = job.get_executions()
        [worker] = Worker.all(connection=connection, serializer=JSONSerializer)
        registry = StartedJobRegistry(QUEUE, connection=connection, serializer=JSONSerializer)
        seen.update(
            status=job.get_status(),
            started=job.started_at is not None,
            worker_name=job.worker_name,
            attempts=job.get_meta()["attempts"],
            execution_worker=execution.worker_name,
            started_ids=registry.get_job_ids(),
            worker=worker.name,
            worker_state=worker.get_state(),
            worker_executions=connection.smembers(worker.executions_key),
            composite=execution.composite_key.encode(),
        )

    work_burst(settings, worker_context, look)
    assert seen["status"] == RqJobStatus.STARTED
    assert seen["started"]
    assert seen["worker_name"] == seen["execution_worker"] == seen["worker"]
    assert seen["attempts"] == 1
    assert seen["started_ids"] == [submission.job_id]
    assert seen["worker_state"] == "busy"
    assert seen["worker_executions"] == {seen["composite"]}
    job = Job.fetch(submission.job_id, connection=connection, serializer=JSONSerializer)
    assert job.get_executions() == []
    assert StartedJobRegistry(QUEUE, connection=connection).get_job_ids() == []
    assert connection.scard(f"rq:worker:{seen['worker']}:executions") == 0
    connection.close()


@pytest.mark.parametrize(("then", "jobs"), [("empty", 2), ("suspended", 3)])
async def test_a_worker_reads_idle_from_the_end_that_finds_no_next_job(
    runner: RqRunner,
    queue_redis: RedisProcess,
    worker_context: WorkerContext,
    face_jpeg: bytes,
    monkeypatch: pytest.MonkeyPatch,
    then: str,
    jobs: int,
) -> None:
    """A job's end takes the next job in the same script. When that found none to start (the
    queue empty, or the workers suspended with jobs queued), the worker read busy in RQ's view
    until its next round trip wrote it idle: ``rq info`` and ``Worker.all`` saw a worker with no
    job busy (on a busy machine for long; a scale-out test was misled by it). Here each end is
    read right after its script: busy while the next job is started, idle once none is."""
    settings = job_settings(queue_redis.url)
    submissions = [prepare("detect", variant(face_jpeg), {}, settings) for _ in range(jobs)]
    handles = [(await runner.submit(submission, None)).handle for submission in submissions]
    connection = Redis.from_url(queue_redis.url)
    seen: list[tuple[str, str, str]] = []

    def suspend_in_second(payload: JobPayload) -> None:
        if then == "suspended" and payload.data == submissions[1].data:
            suspend(connection)

    worker = build_worker(settings, worker_context, suspend_in_second)
    end = worker.handle_job_success

    def end_then_look(
        job: Job, queue: Any, started_job_registry: StartedJobRegistry, execution: Any
    ) -> None:
        end(job, queue, started_job_registry, execution)
        [stored] = Worker.all(connection=connection, serializer=JSONSerializer)
        seen.append((job.id, stored.get_state(), worker.get_state()))

    monkeypatch.setattr(worker, "handle_job_success", end_then_look)
    try:
        worker.work(burst=True, logging_level="WARNING")  # suspended: stops after the second
    finally:
        resume(connection)

    first, second = submissions[0].job_id, submissions[1].job_id
    assert seen == [(first, "busy", "busy"), (second, "idle", "idle")]
    for handle in handles[2:]:  # left queued by the suspension
        assert (await runner.status(handle, None)).status is JobStatus.QUEUED
    connection.close()


async def test_a_worker_reads_idle_from_the_end_of_a_failed_attempt(
    runner: RqRunner,
    queue_redis: RedisProcess,
    worker_context: WorkerContext,
    face_jpeg: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An attempt that fails is ended by RQ's own failure path (here a retryable error, retried
    at once): the worker read busy in RQ's view after it until the worker wrote it idle in a
    round trip of its own. It reads idle as soon as the failure is stored."""
    settings = job_settings(queue_redis.url)
    submitted = await runner.submit(prepare("detect", variant(face_jpeg), {}, settings), None)
    connection = Redis.from_url(queue_redis.url)
    seen: list[str] = []

    def fail_first(_: JobPayload) -> None:
        if not seen:
            raise Unavailable("not now")

    worker = build_worker(settings, worker_context, fail_first)
    end = worker.handle_job_failure

    def end_then_look(**ended: Any) -> None:
        end(**ended)
        [stored] = Worker.all(connection=connection, serializer=JSONSerializer)
        seen.append(stored.get_state())

    monkeypatch.setattr(worker, "handle_job_failure", end_then_look)
    worker.work(burst=True, logging_level="WARNING")

    assert seen == ["idle"]
    record = await runner.status(submitted.handle, None)
    assert (record.status, record.attempts) == (JobStatus.FINISHED, 2)
    connection.close()


async def test_a_job_taken_with_the_last_ones_end_goes_back_when_the_worker_stops(
    runner: RqRunner, queue_redis: RedisProcess, worker_context: WorkerContext, face_jpeg: bytes
) -> None:
    """The end of a job takes and starts the next one; a worker that stops there (here
    ``max_jobs``; a SIGTERM alike) puts it back at the front of the queue as it was, its start
    undone and its attempt uncounted, instead of leaving it started until its lease runs out."""
    settings = job_settings(queue_redis.url)
    submissions = [prepare("detect", variant(face_jpeg), {}, settings) for _ in range(2)]
    first, second = [await runner.submit(submission, None) for submission in submissions]
    build_worker(settings, worker_context).work(burst=True, max_jobs=1, logging_level="WARNING")
    assert (await runner.status(first.handle, None)).status is JobStatus.FINISHED
    status = await runner.status(second.handle, None)
    assert status.status is JobStatus.QUEUED
    assert status.attempts == 0
    connection = Redis.from_url(queue_redis.url)
    queue = open_queue(settings, connection)
    assert queue.intermediate_queue.get_job_ids() == []
    assert queue.count == 1
    job = Job.fetch(submissions[1].job_id, connection=connection, serializer=JSONSerializer)
    assert job.get_status() == RqJobStatus.QUEUED
    assert job.started_at is None
    assert job.get_executions() == []
    assert StartedJobRegistry(QUEUE, connection=connection).get_job_ids() == []
    work_burst(settings, worker_context)
    status = await runner.status(second.handle, None)
    assert status.status is JobStatus.FINISHED
    assert status.attempts == 1
    connection.close()


async def test_the_worker_runs_each_job_as_it_is_stored(
    runner: RqRunner, queue_redis: RedisProcess, worker_context: WorkerContext, face_jpeg: bytes
) -> None:
    """The scripts that take a job get their arguments as one msgpack string and answer the
    job's hash as another: the job a worker runs (the first, taken by the take's script, and the
    next, taken by the end's) is the stored one, byte for byte (RQ's zlib-compressed call, the
    meta with a non-ASCII value), with RQ's own reading of its dates."""
    settings = job_settings(queue_redis.url)
    submissions = [prepare("detect", variant(face_jpeg), {}, settings) for _ in range(2)]
    for submission in submissions:
        await runner.submit(submission, None)
    connection = Redis.from_url(queue_redis.url)
    for submission in submissions:
        connection.hset(
            f"rq:job:{submission.job_id}", "meta", json.dumps({"note": "été \u2713", "attempts": 0})
        )
    stored = {
        s.job_id: Job.fetch(s.job_id, connection=connection, serializer=JSONSerializer)
        for s in submissions
    }
    seen: list[Any] = []

    def look(_: JobPayload) -> None:
        seen.append(get_current_job())

    work_burst(settings, worker_context, look)
    assert [job.id for job in seen] == [s.job_id for s in submissions]
    for job in seen:
        before = stored[job.id]
        assert isinstance(job, FaceflowJob)
        assert job.data == before.data
        assert (job.func_name, job.args, job.kwargs) == (before.func_name, before.args, {})
        assert job.meta["note"] == "été \u2713"
        assert job.meta["attempts"] == 1
        assert (job.origin, job.description) == (before.origin, before.description)
        assert (job.timeout, job.result_ttl, job.failure_ttl) == (
            before.timeout,
            before.result_ttl,
            before.failure_ttl,
        )
        assert (job.retries_left, job.retry_intervals) == (
            before.retries_left,
            before.retry_intervals,
        )
        assert job.created_at == before.created_at
        assert job.enqueued_at == before.enqueued_at
        assert job.enqueued_at is not None
        assert job.enqueued_at.tzinfo is not None
    connection.close()


async def test_a_suspended_worker_takes_no_job_until_resumed(
    runner: RqRunner, queue_redis: RedisProcess, worker_context: WorkerContext, face_jpeg: bytes
) -> None:
    """``rq suspend`` is checked in the round trip that takes a job (not in one before it), so a
    worker takes none while suspended: a burst worker leaves the job queued and stops, as RQ's
    burst workers do; once resumed, the job runs."""
    settings = job_settings(queue_redis.url)
    record = await runner.submit(prepare("detect", variant(face_jpeg), {}, settings), None)
    connection = Redis.from_url(queue_redis.url)
    suspend(connection)
    work_burst(settings, worker_context)
    assert (await runner.status(record.handle, None)).status is JobStatus.QUEUED
    resume(connection)
    work_burst(settings, worker_context)
    assert (await runner.status(record.handle, None)).status is JobStatus.FINISHED
    connection.close()


def _round_trips_per_job(url: str, jobs: int, work: Callable[[], None]) -> float:
    """Queue Redis round trips per job while ``work`` runs ``jobs`` jobs (MONITOR: a MULTI …
    EXEC block is one, every other command one), from the first dequeue to the last one (which
    finds the queue empty): the worker's own start, first maintenance pass and stop left out."""
    marker = "faceflow-test-monitor-end"
    seen: list[dict[str, Any]] = []
    ready = threading.Event()

    def watch() -> None:
        with Redis.from_url(url) as connection, connection.monitor() as monitor:
            ready.set()
            for command in monitor.listen():
                if marker in command["command"]:
                    return
                seen.append(command)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    assert ready.wait(10)
    work()
    with Redis.from_url(url) as connection:
        connection.echo(marker)
    watcher.join(30)
    # A script's own commands are listed after it (as "lua"): the script is the round trip.
    own = [c["command"] for c in seen if c["client_type"] != "lua"]
    names = [command.split(" ", 1)[0].upper() for command in own]
    # A take: RQ's moves, or one of the worker's scripts that takes a job (they check the
    # suspension flag; the script that starts a job does not).
    dequeues = [
        i
        for i, (name, command) in enumerate(zip(names, own, strict=True))
        if name in ("LMOVE", "BLMOVE") or (name == "EVALSHA" and WORKERS_SUSPENDED in command)
    ]
    # Each job's take, and the last one that finds the queue empty (here: a job's end finds it
    # so, then the worker's own take before it stops).
    assert len(dequeues) == jobs + 2, names
    trips, in_multi, previous = 0, False, ""
    for command in own[dequeues[0] : dequeues[-1]]:
        name = command.split(" ", 1)[0].upper()
        if name == "MULTI":
            in_multi = True
            trips += 1
        elif name == "EXEC":
            in_multi = False
        elif not in_multi and not _standalone_heartbeat(command):
            trips += not _read_behind_a_start(previous, command)
        previous = command
    return trips / jobs


def _read_behind_a_start(previous: str, command: str) -> bool:
    """The read of the payload a script's start left for its worker (``GETRANGE``) and its
    deletion once read whole (``EVAL``), which the worker sends in the same write as the script
    (one pipeline: one round trip)."""
    name, before = command.split(" ", 1)[0].upper(), previous.split(" ", 1)[0].upper()
    return ":takenpayload:" in command and (
        (before == "EVALSHA" and name == "GETRANGE") or (before == "GETRANGE" and name == "EVAL")
    )


def _standalone_heartbeat(command: str) -> bool:
    """A command of RQ's worker heartbeat sent on its own (``HSET <worker> last_heartbeat``,
    then the worker key's and its executions key's EXPIRE, one pipeline): the worker sends one
    when none went out in the last second, so it counts per second, not per job; on a machine
    slow enough for a job to take a second it would follow every job."""
    words = command.split(" ")
    if len(words) < 2 or not words[1].startswith(Worker.redis_worker_namespace_prefix):
        return False
    name = words[0].upper()
    return name == "EXPIRE" or (name == "HSET" and words[2:3] == ["last_heartbeat"])


async def test_a_job_costs_its_worker_one_queue_redis_round_trip(
    queue_redis: RedisProcess, worker_context: WorkerContext, face_jpeg: bytes
) -> None:
    """The end, which also takes and starts the next job (one script); once per burst, the first
    take (which starts the first job), RQ's read of the server version and the idle state
    written when the queue is empty. RQ and the job function apart made about 25. (The worker
    is the only client during its burst.)"""
    settings = job_settings(queue_redis.url, maintenance_interval_s=3600, lease_s=60)
    runner = runner_for(settings)
    jobs = 6
    for _ in range(jobs):
        await runner.submit(prepare("detect", variant(face_jpeg), {}, settings), None)
    await runner.close()
    per_job = _round_trips_per_job(
        queue_redis.url, jobs, lambda: work_burst(settings, worker_context)
    )
    # (6 + 3) / 6; a worker heartbeat sent on its own is not counted, one written inside a
    # start is.
    assert 8 / 6 <= per_job <= 10 / 6, per_job


async def test_each_job_reads_its_own_payload_and_leaves_no_copy_behind(
    queue_redis: RedisProcess, worker_context: WorkerContext, face_jpeg: bytes
) -> None:
    """A job's start copies its payload to its worker's key for the read sent behind it: each
    job of a burst reads its own image (the first taken by the worker's take, the others by the
    end of the job before), the copy goes with the read, and a queue Redis that lost the scripts
    meanwhile (restarted, flushed) has them loaded again."""
    settings = job_settings(queue_redis.url, maintenance_interval_s=3600, lease_s=60)
    runner = runner_for(settings)
    images = [variant(face_jpeg, str(i)) for i in range(3)]
    handles = [await submit(runner, settings, image) for image in images]
    connection = Redis.from_url(queue_redis.url)
    seen: list[bytes] = []

    def look(payload: JobPayload) -> None:
        seen.append(payload.data)
        if len(seen) == 1:
            connection.script_flush()

    work_burst(settings, worker_context, look)
    assert seen == images
    for handle in handles:
        assert (await runner.status(handle, None)).status is JobStatus.FINISHED
    assert connection.keys("*takenpayload*") == []
    connection.close()
    await runner.close()


async def test_a_hung_queue_redis_is_asked_no_more_after_a_few_failures_nor_in_the_loops_threads(
    queue_redis: RedisProcess, face_jpeg: bytes
) -> None:
    # With the queue Redis hung, every poll held one of the event loop's default threads for
    # its timeout: two dozen pollers stalled a one-image /v1/batch, which assembles its answer
    # in those threads, for 7 s.
    runner = runner_for(job_settings(queue_redis.url, redis_timeout_ms=200))
    await runner.start()
    try:
        handle = await submit(runner, job_settings(queue_redis.url), variant(face_jpeg))
        thread = await runner._call(lambda: threading.current_thread().name)
        assert thread.startswith("faceflow-jobs")
        queue_redis.pause()
        try:
            for _ in range(REDIS_FAILURES):
                with pytest.raises(Unavailable):
                    await runner.status(handle, None)
            asked: list[int] = []
            with pytest.raises(Unavailable) as refused:
                await runner._call(lambda: asked.append(1))
            assert asked == []  # refused without a call
            assert refused.value.retry_after_s >= 1
        finally:
            queue_redis.resume()
        async with asyncio.timeout(30):
            while True:  # a trial every couple of seconds finds it answering again
                try:
                    record = await runner.status(handle, None)
                    break
                except Unavailable:
                    await asyncio.sleep(0.2)
        assert record.handle == handle
    finally:
        await runner.close()


async def test_a_status_poll_reads_the_head_of_a_large_result_not_all_of_it(
    runner: RqRunner, queue_redis: RedisProcess, face_jpeg: bytes
) -> None:
    # Each poll of a job with a 3.8 MB result read and decoded all of it: 85 polls a second
    # kept Redis sending 340 MB/s.
    handle = await submit(runner, job_settings(queue_redis.url), variant(face_jpeg))
    job_id = (await runner._call(runner._handle, handle, None)).job_id
    body = bytes(4 * 1024 * 1024)
    connection = Redis.from_url(queue_redis.url)
    try:
        stored = encode_outcome(JobOutcome(entry=CacheEntry("image/png", body, {})))
        connection.set(JobKeys(QUEUE).result(job_id), stored)

        def sent() -> int:
            return int(connection.info("stats")["total_net_output_bytes"])

        before = sent()
        record = await runner.status(handle, None)
        status_bytes = sent() - before
        view, entry = await runner.result(handle, None)
    finally:
        connection.close()

    assert (record.status, record.media_type) == (JobStatus.FINISHED, "image/png")
    assert status_bytes < 64 * 1024
    assert (view.status, entry.body) == (JobStatus.FINISHED, body)


async def test_calls_waiting_for_a_thread_when_the_queue_redis_fails_are_not_sent(
    queue_redis: RedisProcess,
) -> None:
    # Calls queued behind the hung ones before the breaker opened each waited out their own
    # timeout after it had (requests up to 12 s).
    runner = runner_for(job_settings(queue_redis.url, redis_timeout_ms=500))
    await runner.start()
    sent: list[int] = []

    def ping() -> None:
        sent.append(1)
        runner._conn.ping()

    queue_redis.pause()
    try:
        outcomes = await asyncio.gather(
            *(runner._call(ping) for _ in range(3 * REDIS_THREADS)), return_exceptions=True
        )
    finally:
        queue_redis.resume()
        await runner.close()

    assert all(isinstance(outcome, Unavailable) for outcome in outcomes), outcomes
    # The first threads' calls fail and open the breaker; a second round may have begun before
    # it opened; the third is not sent.
    assert len(sent) <= 2 * REDIS_THREADS


async def test_a_submission_joining_a_job_as_its_last_handle_is_canceled_keeps_it(
    runner: RqRunner,
    queue_redis: RedisProcess,
    worker_context: WorkerContext,
    face_jpeg: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another client (another API node, maybe) joins a queued job while its only client cancels
    it: the cancel saw no other handle, the join saw a queued job, and the joiner's accepted job
    was canceled under it, never run (status canceled, though that client canceled nothing).
    The cancel here runs at the join's worst moment: after it read the job, before it joined."""
    settings = job_settings(queue_redis.url)
    submission = prepare("detect", variant(face_jpeg), {}, settings)
    mine = await runner.submit(submission, "a" * 64)
    connection = runner._conn
    lrange = connection.lrange
    canceled: list[JobStatus] = []

    def cancel_first(*args: Any) -> Any:
        if not canceled:
            canceled.append(runner._cancel(mine.handle, "a" * 64).status)
        return lrange(*args)

    monkeypatch.setattr(connection, "lrange", cancel_first)
    theirs = await runner.submit(submission, "b" * 64)
    monkeypatch.undo()
    assert canceled == [JobStatus.CANCELED]
    assert (await runner.status(theirs.handle, "b" * 64)).status is JobStatus.QUEUED
    work_burst(settings, worker_context)
    assert (await runner.status(theirs.handle, "b" * 64)).status is JobStatus.FINISHED
    assert (await runner.status(mine.handle, "a" * 64)).status is JobStatus.CANCELED


async def test_a_join_refused_its_share_as_the_job_is_canceled_leaves_the_client_no_handle(
    queue_redis: RedisProcess, face_jpeg: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A join is not counted against jobs.max_queued_per_client, but one whose job its last
    other handle canceled under it makes the job anew, and that is counted: refused then, the
    429 came after the client's handle of it was written (a handle of a canceled job, listed
    among the job's and the client's, which the client was never told of)."""
    settings = job_settings(queue_redis.url, max_queued_per_client=1)
    runner = runner_for(settings)
    mine, theirs = "a" * 64, "b" * 64
    try:
        await runner.submit(prepare("detect", variant(face_jpeg), {}, settings), theirs)
        shared = prepare("detect", variant(face_jpeg), {}, settings)
        first = await runner.submit(shared, mine)
        connection = runner._conn
        lrange = connection.lrange
        canceled: list[JobStatus] = []

        def cancel_first(*args: Any) -> Any:
            if not canceled:
                canceled.append(runner._cancel(first.handle, mine).status)
            return lrange(*args)

        monkeypatch.setattr(connection, "lrange", cancel_first)
        with pytest.raises(RateLimited):
            await runner.submit(shared, theirs)
        monkeypatch.undo()
        assert canceled == [JobStatus.CANCELED]
        job_id = scoped_job_id(shared, theirs, settings.jobs.dedup_scope)
        keys = JobKeys(settings.jobs.queue_name)
        assert connection.lrange(keys.owned(job_id, theirs), 0, -1) == []
        assert connection.smembers(keys.refs(job_id)) == set()  # the cancel took the first's
    finally:
        await runner.close()


async def test_a_cancel_seeing_no_other_handle_spares_a_job_joined_before_it_cancels(
    runner: RqRunner,
    queue_redis: RedisProcess,
    worker_context: WorkerContext,
    face_jpeg: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The other order: the cancel found no other handle, then another client joined the
    queued job (and read it queued), then the cancel canceled it: that client's accepted job
    was never run. The join here runs at the cancel's worst moment: between its check of the
    job's handles and its cancel."""
    settings = job_settings(queue_redis.url)
    submission = prepare("detect", variant(face_jpeg), {}, settings)
    mine = await runner.submit(submission, "a" * 64)
    fetch = runner._fetch
    calls: list[str] = []
    joined: list[str] = []

    def join_second(job_id: str) -> Job | None:
        calls.append(job_id)
        if len(calls) == 2:  # the cancel's: its view's read is the first
            joined.append(runner._submit(submission, "b" * 64, None).handle)
        return fetch(job_id)

    monkeypatch.setattr(runner, "_fetch", join_second)
    assert (await runner.cancel(mine.handle, "a" * 64)).status is JobStatus.CANCELED
    monkeypatch.undo()
    assert len(joined) == 1
    assert (await runner.status(joined[0], "b" * 64)).status is JobStatus.QUEUED
    work_burst(settings, worker_context)
    assert (await runner.status(joined[0], "b" * 64)).status is JobStatus.FINISHED


def _count_jobs_made(runner: RqRunner, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of the RQ jobs ``runner`` makes from now on (an enqueue refused as a duplicate
    makes none)."""
    made: list[str] = []
    enqueue_call = runner._queue.enqueue_call

    def counted(*args: Any, **kwargs: Any) -> Job:
        job = enqueue_call(*args, **kwargs)
        made.append(job.id)
        return job

    monkeypatch.setattr(runner._queue, "enqueue_call", counted)
    return made


async def test_two_submissions_finding_the_job_canceled_make_it_anew_once(
    runner: RqRunner,
    queue_redis: RedisProcess,
    worker_context: WorkerContext,
    face_jpeg: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two clients submit canceled work at once and both read the old job canceled: each
    deleted "the old job" and enqueued a new one, so the one enqueued second replaced the one
    the other client's handle had been given (deleted under it: made twice, and run twice had
    a worker taken the first meanwhile). The second submission here runs whole at the first's
    worst moment: after it read the old job, before it replaces it."""
    settings = job_settings(queue_redis.url)
    submission = prepare("detect", variant(face_jpeg), {}, settings)
    old = await runner.submit(submission, "a" * 64)
    await runner.cancel(old.handle, "a" * 64)
    made = _count_jobs_made(runner, monkeypatch)
    fetch = runner._fetch
    theirs: list[str] = []
    theirs_enqueued_at: list[float | None] = []

    def submit_second_between(job_id: str) -> Job | None:
        job = fetch(job_id)
        if not theirs:
            theirs.append("")  # before the second submission, whose own reads come here too
            theirs[0] = runner._submit(submission, "c" * 64, None).handle
            theirs_enqueued_at.append(runner._resolve(theirs[0], "c" * 64)[0].enqueued_at)
        return job

    monkeypatch.setattr(runner, "_fetch", submit_second_between)
    mine = await runner.submit(submission, "b" * 64)
    monkeypatch.undo()

    assert made == [submission.job_id]
    # Their handle still names the job made for it, not a replacement.
    assert (await runner.status(theirs[0], "c" * 64)).enqueued_at == theirs_enqueued_at[0]
    runs: list[JobPayload] = []
    work_burst(settings, worker_context, runs.append)
    assert len(runs) == 1
    for handle, owner in ((mine.handle, "b" * 64), (theirs[0], "c" * 64)):
        assert (await runner.status(handle, owner)).status is JobStatus.FINISHED


async def test_two_submissions_joining_a_job_as_it_is_canceled_make_it_anew_once(
    runner: RqRunner,
    queue_redis: RedisProcess,
    worker_context: WorkerContext,
    face_jpeg: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A submission that joined a queued job as its last other handle canceled it finds it
    canceled, and makes it anew (see the join-cancel tests above). Another submission making it
    anew meanwhile, having read it canceled, had its new job deleted by the first, which then
    made a third. The other submission here runs whole after the first found the job canceled,
    before it replaces it."""
    settings = job_settings(queue_redis.url)
    submission = prepare("detect", variant(face_jpeg), {}, settings)
    made = _count_jobs_made(runner, monkeypatch)
    old = await runner.submit(submission, "a" * 64)
    connection = runner._conn
    lrange = connection.lrange
    fetch = runner._fetch
    canceled: list[JobStatus] = []
    theirs: list[str] = []

    def cancel_first(*args: Any) -> Any:
        if not canceled:
            canceled.append(runner._cancel(old.handle, "a" * 64).status)
            monkeypatch.setattr(runner, "_fetch", submit_second_before)
        return lrange(*args)

    def submit_second_before(job_id: str) -> Job | None:
        if not theirs:
            theirs.append("")  # before the second submission, whose own reads come here too
            theirs[0] = runner._submit(submission, "c" * 64, None).handle
        return fetch(job_id)

    monkeypatch.setattr(connection, "lrange", cancel_first)
    mine = await runner.submit(submission, "b" * 64)
    monkeypatch.undo()

    assert canceled == [JobStatus.CANCELED]
    assert theirs[0]
    assert made == [submission.job_id] * 2  # the first job, and one made anew
    runs: list[JobPayload] = []
    work_burst(settings, worker_context, runs.append)
    assert len(runs) == 1
    for handle, owner in ((mine.handle, "b" * 64), (theirs[0], "c" * 64)):
        assert (await runner.status(handle, owner)).status is JobStatus.FINISHED


@pytest.mark.parametrize("skew", ["key", "options"])
async def test_a_worker_of_another_version_leaves_the_job_unanswered(
    queue_redis: RedisProcess, worker_context: WorkerContext, face_jpeg: bytes, skew: str
) -> None:
    """A rolling deploy: the API node that took the job keys it with other models or options
    than the worker reads from its payload ("key": a newer node's model versions), or stores an
    option the worker refuses ("options"). Run anyway, the worker's own answer was stored as
    the job's outcome under the API's key for the day (it only logged a warning), and a refused
    option failed the job as the client's 400 for the day. Now each attempt is refused before
    its task runs, retried (a matching worker may take it), and the job ends failed
    ``unavailable`` with nothing stored under its key, once ``other_version_wait_s`` is over
    (0 here: the next test has the wait)."""
    settings = job_settings(
        queue_redis.url, max_retries=1, retry_backoff_s=[0], other_version_wait_s=0
    )
    runner = runner_for(settings)
    data = variant(face_jpeg)
    submission = prepare("detect", data, {}, settings)
    if skew == "key":
        newer = cache_key(data, "detect", submission.params, versions="newer-models")
        submission = dataclasses.replace(submission, key=newer)
    record = await runner.submit(submission, None)
    keys = JobKeys(QUEUE)
    connection = Redis.from_url(queue_redis.url)
    if skew == "options":
        refused = JobPayload("detect", {**submission.payload, "max_faces": "all"}, data)
        connection.set(keys.data(submission.job_id), encode_payload(refused))
    work_burst(settings, worker_context)
    failed = await runner.status(record.handle, None)
    assert (failed.status, failed.attempts) == (JobStatus.FAILED, 2)
    assert failed.error is not None
    assert (failed.error.code, failed.error.status) == ("unavailable", 503)
    assert not connection.exists(keys.result(submission.job_id))
    with pytest.raises(JobFailed):
        await runner.result(record.handle, None)
    connection.close()
    await runner.close()


@pytest.mark.parametrize("skew", ["key", "payload"])
async def test_a_job_of_another_release_waits_for_a_worker_of_its_release(
    queue_redis: RedisProcess,
    worker_context: WorkerContext,
    face_jpeg: bytes,
    skew: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A rolling deploy, half the workers upgraded: a job the worker that took it cannot run
    (keyed by a newer node's models, "key"; its payload in a newer form, "payload") is given
    back without spending an attempt, and runs once a worker of its release takes it. Before,
    each refusal spent a retry (the first went to the queue's front, and the refusing worker,
    free again, took it at once): with one worker of each release, 1 of 10 jobs failed
    ``unavailable`` within 20 s, each refusal an ERROR with a traceback; and a payload this
    release could not read failed the job for good as 410 ``expired``, its image still
    there."""
    monkeypatch.setattr(worker_module, "OTHER_VERSION_RETRY_S", 0, raising=False)  # due now
    settings = job_settings(queue_redis.url, max_retries=1, retry_backoff_s=[0])
    runner = runner_for(settings)
    data = variant(face_jpeg)
    submission = prepare("detect", data, {}, settings)
    if skew == "key":
        newer = cache_key(data, "detect", submission.params, versions="newer-models")
        submission = dataclasses.replace(submission, key=newer)
    record = await runner.submit(submission, None)
    keys = JobKeys(QUEUE)
    connection = Redis.from_url(queue_redis.url)
    stored = connection.get(keys.data(submission.job_id))
    assert stored is not None
    if skew == "payload":
        newer_form = msgpack.packb([2, *msgpack.unpackb(stored)[1:], "a new field"])
        connection.set(keys.data(submission.job_id), newer_form)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):  # refused each time, never spending an attempt
            work_burst(settings, worker_context)
            queue = Queue(QUEUE, connection=connection)
            assert queue.scheduled_job_registry.get_job_ids() == [submission.job_id]
            scheduler = RQScheduler([queue], connection)  # as a supervisor's tick runs it
            scheduler.acquire_locks()  # type: ignore[no-untyped-call]
            scheduler.enqueue_scheduled_jobs()  # type: ignore[no-untyped-call]
            scheduler.release_locks()  # type: ignore[no-untyped-call]
    waiting = await runner.status(record.handle, None)
    assert (waiting.status, waiting.attempts, waiting.error) == (JobStatus.QUEUED, 0, None)
    assert waiting.ended_at is None
    assert Job.fetch(submission.job_id, connection=connection).retries_left == 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len([r for r in caplog.records if "not run here" in r.getMessage()]) == 3

    if skew == "key":  # a worker of the newer release
        monkeypatch.setattr(
            worker_module,
            "cache_key",
            lambda *args, **kwargs: cache_key(*args, **kwargs, versions="newer-models"),
        )
    else:
        connection.set(keys.data(submission.job_id), stored)
    work_burst(settings, worker_context)
    done = await runner.status(record.handle, None)
    assert (done.status, done.attempts) == (JobStatus.FINISHED, 1)
    connection.close()
    await runner.close()


@pytest.mark.parametrize("appendonly", [False, True])
async def test_a_queue_redis_that_came_back_empty_is_said_once(
    redis_server_factory: RedisServerFactory,
    face_jpeg: bytes,
    caplog: pytest.LogCaptureFixture,
    appendonly: bool,
) -> None:
    """The queue Redis restarted without ``appendonly yes``: every job accepted before is gone
    and its handle answers 404, and the API node logged only that the queue Redis answered
    again, as after any outage. The first submission after it now says, once, that it came
    back empty and what keeps jobs; restarted with its AOF, nothing is said."""
    server = redis_server_factory(appendonly=appendonly)
    settings = job_settings(server.url)
    runner = runner_for(settings)
    await runner.start()
    before = await submit(runner, settings, variant(face_jpeg))
    server.restart()
    with caplog.at_level(logging.WARNING, logger="faceflow.jobs.rq_runner"):
        for _ in range(2):
            with contextlib.suppress(Unavailable):  # the first call after may meet the restart
                await submit(runner, settings, variant(face_jpeg))
            await submit(runner, settings, variant(face_jpeg))
    said = [r.getMessage() for r in caplog.records if "came back empty" in r.getMessage()]
    if appendonly:
        assert said == []
        assert (await runner.status(before, None)).status is JobStatus.QUEUED
    else:
        assert len(said) == 1
        assert "appendonly yes" in said[0]
        with pytest.raises(NotFound):
            await runner.status(before, None)
    await runner.close()


async def test_a_worker_without_an_operations_models_leaves_its_jobs_to_others(
    queue_redis: RedisProcess, pulled_model_settings: ModelSettings, face_jpeg: bytes
) -> None:
    """A worker whose processes load only the detector (``runtime.operations: [detect]``, a
    config meant for another role) took analyze jobs and failed each for good, 404
    ``operation_disabled``: every resubmission of the same work was answered with that failure
    for failure_ttl_s, though other workers could run it. Now its attempts are refused before
    the task and retried (a worker with the models may take them); with none, the job ends
    ``unavailable`` once ``other_version_wait_s`` is over (0 here), a failure a resubmission
    does not share."""
    settings = job_settings(
        queue_redis.url, max_retries=1, retry_backoff_s=[0], other_version_wait_s=0
    )
    detect_only = load_context(
        Settings(models=pulled_model_settings, runtime={"operations": ["detect"]}).model_dump_json()
    )
    runner = runner_for(settings)
    data = variant(face_jpeg)
    submission = prepare("analyze", data, {}, settings)
    record = await runner.submit(submission, None)
    work_burst(settings, detect_only)
    failed = await runner.status(record.handle, None)
    assert (failed.status, failed.attempts) == (JobStatus.FAILED, 2)
    assert failed.error is not None
    assert (failed.error.code, failed.error.status) == ("unavailable", 503)
    again = await runner.submit(submission, None)
    assert again.status is JobStatus.QUEUED  # run again, not answered with that failure
    await runner.close()


def test_a_workers_pass_that_fails_half_way_releases_its_lock(
    queue_redis: RedisProcess, worker_context: WorkerContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # RQ's own pass leaves its lock when a Redis call fails half-way: every other process's
    # pass then waited MAINTENANCE_LOCK_S for it, abandoned jobs with them.
    monkeypatch.setattr(worker_module, "_up_for_s", lambda connection: 1e9)  # long up
    settings = job_settings(queue_redis.url)
    connection = Redis.from_url(queue_redis.url)
    queue = open_queue(settings, connection)

    def fails(*args: object) -> None:
        raise RedisConnectionError("the queue Redis went away half-way")

    monkeypatch.setattr(queue, "clean_registries", fails)
    state = worker_module.WorkerState(settings, worker_context, connection, None)
    with pytest.raises(RedisConnectionError):
        FaceflowWorker(queue, state).clean_registries()
    assert connection.exists(queue.registry_cleaning_key) == 0
    connection.close()


def _tampered(handle: str) -> str:
    """``handle`` with one bit of its tag flipped."""
    raw = bytearray(base64.urlsafe_b64decode(handle))
    raw[-1] ^= 1
    return base64.urlsafe_b64encode(bytes(raw)).decode()


async def test_a_forged_handle_is_404_without_a_queue_redis_command(
    runner: RqRunner, queue_redis: RedisProcess, face_jpeg: bytes
) -> None:
    """A handle of the right shape that no node minted, a real one with its tag tampered, and
    one of the shape handles had before they were signed, its record stored: each answered 404,
    as an unknown handle is, with no command sent to the queue Redis (each cost a round trip
    there, and a flood of them held its threads: docs/performance.md, round eleven)."""
    settings = job_settings(queue_redis.url)
    real = await runner.submit(prepare("detect", variant(face_jpeg), {}, settings), None)
    old = secrets.token_urlsafe(24)  # a handle of before: 32 characters, its record kept
    record = HandleRecord(
        scoped_job_id(prepare("detect", face_jpeg, {}, settings), None, "global"),
        "detect",
        None,
        time.time(),
    )
    connection = Redis.from_url(queue_redis.url)
    connection.set(JobKeys(QUEUE).handle(old), encode_handle(record))
    connection.close()
    forged = ["A" * 48, _tampered(real.handle), old]

    async def ask_each() -> list[str]:
        answers = []
        for handle in forged:
            for call in (runner.status, runner.result, runner.cancel):
                with pytest.raises(NotFound) as refused:
                    await call(handle, None)
                answers.append(refused.value.message)
        return answers

    answers, commands = await commands_during(queue_redis.url, ask_each)
    assert [c for c in commands if not c.startswith("HELLO")] == []  # but the monitor's own
    assert set(answers) == {unknown_handle().message}
    assert (await runner.status(real.handle, None)).handle == real.handle


async def test_two_api_nodes_on_one_queue_redis_share_the_handle_key(
    queue_redis: RedisProcess, face_jpeg: bytes
) -> None:
    """Two nodes starting at once mint one key between them (SET NX) without configuration:
    a handle one node minted is answered by the other. A queue Redis flushed under them gets
    the key back with the next submission, so a node started after it shares it too."""
    settings = job_settings(queue_redis.url)
    first, second = runner_for(settings), runner_for(settings)
    later = runner_for(settings)
    try:
        await asyncio.gather(first.start(), second.start())
        mine = await first.submit(prepare("detect", variant(face_jpeg), {}, settings), None)
        assert (await second.status(mine.handle, None)).status is JobStatus.QUEUED
        theirs = await second.submit(prepare("detect", variant(face_jpeg), {}, settings), None)
        assert (await first.status(theirs.handle, None)).status is JobStatus.QUEUED
        queue_redis.flushall()
        again = await first.submit(prepare("detect", variant(face_jpeg), {}, settings), None)
        await later.start()
        assert (await later.status(again.handle, None)).handle == again.handle
    finally:
        for runner in (first, second, later):
            await runner.close()


async def test_the_handle_key_is_read_at_the_first_call_when_the_queue_redis_was_down(
    queue_redis: RedisProcess, face_jpeg: bytes
) -> None:
    """A node whose queue Redis did not answer as it started reads the key at its first call
    (until then it has none to tell a handle with), and agrees with the nodes started before."""
    settings = job_settings(queue_redis.url)
    up = runner_for(settings)
    late = runner_for(settings)
    try:
        await up.start()
        queue_redis.pause()
        try:
            await late.start()
        finally:
            queue_redis.resume()
        mine = await up.submit(prepare("detect", variant(face_jpeg), {}, settings), None)
        assert (await late.status(mine.handle, None)).handle == mine.handle
    finally:
        await up.close()
        await late.close()


async def test_a_handle_expires_with_what_its_status_is_read_from(
    runner: RqRunner, queue_redis: RedisProcess, worker_context: WorkerContext, face_jpeg: bytes
) -> None:
    """A handle (its record, the job's set of handles, its owner's list of them) is written for
    as long as a failed job is kept (7 days), its job's end not known yet; the worker's end
    makes it expire with the job's result (1 day). A handle of work already ended is kept as
    long as its outcome, a canceled one as long as a result. Before, every handle stayed 7
    days, 6 after its finished job's result had gone."""
    settings = job_settings(queue_redis.url)
    day, week = settings.jobs.result_ttl_s, settings.jobs.failure_ttl_s
    assert week > day
    keys, connection = JobKeys(QUEUE), Redis.from_url(queue_redis.url)
    mine, theirs = "a" * 64, "b" * 64
    submission = prepare("detect", variant(face_jpeg), {}, settings)
    job_id = scoped_job_id(submission, mine, "global")
    first = await runner.submit(submission, mine)
    joined = await runner.submit(submission, theirs)
    canceled = await runner.submit(prepare("detect", variant(face_jpeg), {}, settings), mine)

    def ttls(handle: str, owner: str) -> list[int]:
        named = [keys.handle(handle), keys.owned(job_id, owner), keys.refs(job_id)]
        return [int(connection.ttl(name)) for name in named]

    try:
        assert all(day < ttl <= week for ttl in ttls(first.handle, mine))
        await runner.cancel(canceled.handle, mine)
        assert 0 < connection.ttl(keys.handle(canceled.handle)) <= day
        work_burst(settings, worker_context)
        assert (await runner.status(first.handle, mine)).status is JobStatus.FINISHED
        for handle, owner in ((first.handle, mine), (joined.handle, theirs)):
            assert all(0 < ttl <= day for ttl in ttls(handle, owner)), ttls(handle, owner)
        connection.expire(keys.result(job_id), 600)  # its outcome has 10 minutes left
        later = await runner.submit(submission, "c" * 64)
        assert 0 < connection.ttl(keys.handle(later.handle)) <= 600
        assert (await runner.status(later.handle, "c" * 64)).status is JobStatus.FINISHED
    finally:
        connection.close()


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-ttl"])
async def test_a_queue_redis_that_evicts_keys_is_named_at_start_by_api_nodes_and_workers(
    queue_redis: RedisProcess, caplog: pytest.LogCaptureFixture, policy: str
) -> None:
    """Under any policy but noeviction, a queue Redis at maxmemory deletes queued jobs: 19 of
    30 jobs answered 202 then 404 under allkeys-lru at 6 MB, and nothing said why. The API
    node and the worker supervisor now say so as they start; both run all the same."""
    connection = Redis.from_url(queue_redis.url)
    connection.config_set("maxmemory-policy", policy)
    try:
        runner = runner_for(job_settings(queue_redis.url))
        with caplog.at_level(logging.WARNING):
            await runner.start()
            Supervisor(job_settings(queue_redis.url), processes=1)._warn_if_evicting(connection)
        await runner.close()
    finally:
        connection.config_set("maxmemory-policy", "noeviction")
        connection.close()

    said = [m for m in warnings_of(caplog) if "maxmemory-policy" in m]
    assert [m.split(":")[0] for m in said] == ["jobs", "supervisor"]
    assert all(f"maxmemory-policy {policy}" in m and "noeviction" in m for m in said)


async def test_a_queue_redis_that_never_evicts_is_not_warned_about(
    queue_redis: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    runner = runner_for(job_settings(queue_redis.url))
    with caplog.at_level(logging.WARNING):
        await runner.start()
    await runner.close()

    assert [m for m in warnings_of(caplog) if ON_DISK not in m] == []


ON_DISK = "writes what it holds to its disk"


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


@contextlib.contextmanager
def persistence_of(queue_redis: RedisProcess, appendonly: str, save: str) -> Iterator[None]:
    """The queue Redis runs with ``appendonly`` and ``save`` as long as the block runs; as the
    fixture started it (AOF, no snapshots) again after."""
    connection = Redis.from_url(queue_redis.url)
    connection.config_set("appendonly", appendonly)
    connection.config_set("save", save)
    try:
        yield
    finally:
        connection.config_set("save", "")
        connection.config_set("appendonly", "yes")
        connection.close()


@pytest.mark.parametrize(
    ("appendonly", "save", "how"),
    [
        pytest.param("yes", "", "(appendonly yes)", id="aof"),
        pytest.param("no", "3600 1 300 100", '(save "3600 1 300 100")', id="rdb"),
        pytest.param("no", "", None, id="memory-only"),
    ],
)
async def test_a_queue_redis_that_writes_to_its_disk_is_named_at_start_by_api_nodes_and_workers(
    queue_redis: RedisProcess,
    caplog: pytest.LogCaptureFixture,
    appendonly: str,
    save: str,
    how: str | None,
) -> None:
    """The README promised images are never written to disk, while the queue Redis it told to
    run with appendonly yes kept every job's upload and result (ID photos, ages, genders) in
    its append-only file, on another machine perhaps, and nothing said so. The API node and
    the worker supervisor now say it as they start, in the Redis's own settings."""
    with persistence_of(queue_redis, appendonly, save):
        runner = runner_for(job_settings(queue_redis.url))
        connection = Redis.from_url(queue_redis.url)
        with caplog.at_level(logging.WARNING):
            await runner.start()
            Supervisor(job_settings(queue_redis.url), processes=1)._warn_if_on_disk(connection)
        await runner.close()
        connection.close()

    said = [m for m in warnings_of(caplog) if ON_DISK in m]
    if how is None:
        assert said == []
        return
    assert [m.split(":")[0] for m in said] == ["jobs", "supervisor"]
    assert all(how in m and "uploaded image" in m and "payload_key_file" in m for m in said)


async def test_a_queue_redis_that_writes_only_sealed_values_to_its_disk_is_not_warned_about(
    queue_redis: RedisProcess, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    key_file = tmp_path / "keys"
    key_file.write_text(base64.b64encode(bytes(32)).decode())
    settings = job_settings(queue_redis.url, payload_key_file=str(key_file))
    runner = runner_for(settings)
    connection = Redis.from_url(queue_redis.url)
    with caplog.at_level(logging.INFO):
        await runner.start()
        Supervisor(settings, processes=1)._warn_if_on_disk(connection)
    await runner.close()
    connection.close()
    assert [m for m in warnings_of(caplog) if ON_DISK in m] == []
    assert "stored encrypted in the queue Redis" in caplog.text


@contextlib.contextmanager
def bulk_limit_of(queue_redis: RedisProcess, limit: str) -> Iterator[None]:
    """The queue Redis takes no value over ``limit`` in one command (``proto-max-bulk-len``,
    at least 1 MB), as long as the block runs; its default (512 MB) again after."""
    connection = Redis.from_url(queue_redis.url)
    connection.config_set("proto-max-bulk-len", limit)
    try:
        yield
    finally:
        connection.config_set("proto-max-bulk-len", "512mb")
        connection.close()


async def test_an_upload_larger_than_the_queue_redis_takes_is_refused_not_taken_for_an_outage(
    queue_redis: RedisProcess, face_jpeg: bytes
) -> None:
    """A value over ``proto-max-bulk-len`` is not refused with an error: Redis closes the
    connection mid-command. Such an upload answered 503 ``unavailable`` and counted as an outage,
    so three of them had every client's job calls refused for 2 s. It is now 413 ``too_large``
    before anything is written, and the queue stays open to others."""
    settings = job_settings(queue_redis.url)
    with bulk_limit_of(queue_redis, "1mb"):
        runner = runner_for(settings)
        await runner.start()
        try:
            for _ in range(REDIS_FAILURES + 1):
                big = variant(face_jpeg) + b"\0" * (1 << 20)  # trailing bytes, as a JPEG allows
                with pytest.raises(TooLarge) as refused:
                    await runner.submit(prepare("detect", big, {}, settings), None)
                assert refused.value.details == {"limit_bytes": 1 << 20}
            # Another client's job is taken: the queue Redis was never judged unavailable.
            other = await runner.submit(prepare("detect", variant(face_jpeg), {}, settings), None)
            assert other.status is JobStatus.QUEUED
        finally:
            await runner.close()


async def test_a_result_larger_than_the_queue_redis_takes_ends_once_as_too_large(
    queue_redis: RedisProcess,
    worker_context: WorkerContext,
    face_jpeg: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A 2000 px PNG ID photo (1.7 MB) against a 1 MB ``proto-max-bulk-len``: the worker's end
    broke its connection (a broken pipe, an ERROR traceback), RQ failed the attempt and every
    retry computed the photo again. It now ends once, failed 413 ``too_large`` with the
    result's size, and the worker takes the next job."""
    settings = job_settings(queue_redis.url)
    options = {"width": "2000", "height": "2000", "unit": "px", "format": "png"}
    with bulk_limit_of(queue_redis, "1mb"):
        runner = runner_for(settings)
        await runner.start()
        try:
            large = await runner.submit(
                prepare("id-photo", variant(face_jpeg), options, settings), None
            )
            after = await runner.submit(prepare("detect", variant(face_jpeg), {}, settings), None)
            with caplog.at_level(logging.WARNING):
                work_burst(settings, worker_context)  # back when the queue is empty

            ended = await runner.status(large.handle, None)
            assert ended.status is JobStatus.FAILED, ended
            assert ended.attempts == 1
            assert ended.error is not None
            assert (ended.error.code, ended.error.status) == ("too_large", 413)
            assert ended.error.details["limit_bytes"] == 1 << 20
            result_bytes = ended.error.details["result_bytes"]
            assert isinstance(result_bytes, int)
            assert result_bytes > 1 << 20
            with pytest.raises(TooLarge):  # its result answers what its status says
                await runner.result(large.handle, None)
            assert (await runner.status(after.handle, None)).status is JobStatus.FINISHED
            assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        finally:
            await runner.close()


async def test_a_queue_redis_user_denied_info_and_config_runs_jobs(
    queue_redis: RedisProcess,
    worker_context: WorkerContext,
    face_jpeg: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Managed services hand out users without ``@dangerous`` (no INFO, no CONFIG). The API
    node said the queue Redis "did not answer" and that jobs would get 503 (they were taken);
    the worker's first maintenance pass read the uptime with INFO, raised, and the worker
    left its loop ("found an unhandled exception, quitting"), taking no job."""
    admin = Redis.from_url(queue_redis.url)
    password = secrets.token_hex(8)
    admin.acl_setuser(
        "limited",
        enabled=True,
        passwords=[f"+{password}"],
        keys=["~*"],
        channels=["*"],
        commands=["+@all", "-@dangerous"],
    )
    try:
        url = f"redis://limited:{password}@127.0.0.1:{queue_redis.port}/0"
        settings = job_settings(url)
        runner = runner_for(settings)
        with caplog.at_level(logging.WARNING, logger="faceflow.jobs.rq_runner"):
            await runner.start()
        assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        try:
            job = await runner.submit(prepare("detect", variant(face_jpeg), {}, settings), None)
            work_burst(settings, worker_context)
            assert (await runner.status(job.handle, None)).status is JobStatus.FINISHED
        finally:
            await runner.close()
    finally:
        admin.acl_deluser("limited")
        admin.close()


@pytest.mark.parametrize(
    ("cache_at", "info", "warned"),
    [
        pytest.param("{user}127.0.0.1:{port}/1", True, True, id="same-server-another-database"),
        # Compared as written, the two spellings were two servers: nothing was said.
        pytest.param("{user}localhost:{port}/1", True, True, id="same-server-as-localhost"),
        pytest.param("{user}localhost:{port}/1", False, True, id="info-denied-same-address"),
        pytest.param("127.0.0.1:{other}/0", True, False, id="another-server"),
        pytest.param("127.0.0.1:{other}/0", False, False, id="info-denied-another-port"),
        pytest.param(None, True, False, id="no-cache-redis"),
    ],
)
async def test_a_cache_sharing_the_queue_redis_server_is_warned_about(
    queue_redis: RedisProcess,
    redis_server: RedisProcess,
    caplog: pytest.LogCaptureFixture,
    cache_at: str | None,
    info: bool,
    warned: bool,
) -> None:
    """One server (whatever the database) has one maxmemory and one policy: the cache needs
    allkeys-lru, the queue noeviction. Shared, a day of cached results filled the memory the
    queue needed and every submission was 503 queue_full, and nothing said why. Judged by the
    server's run_id, else (INFO denied, as managed services may) by where the URLs lead."""
    admin = Redis.from_url(queue_redis.url)
    password = secrets.token_hex(8)
    admin.acl_setuser(
        "noinfo",
        enabled=True,
        passwords=[f"+{password}"],
        keys=["~*"],
        channels=["*"],
        commands=["+@all", "-info"],
    )
    user = "" if info else f"noinfo:{password}@"
    queue_url = f"redis://{user}127.0.0.1:{queue_redis.port}/0"
    cache_url = None
    if cache_at is not None:
        at = cache_at.format(user=user, port=queue_redis.port, other=redis_server.port)
        cache_url = f"redis://{at}"
    settings = job_settings(queue_url).model_copy(
        update={"cache": CacheSettings(memory_bytes=1 << 20, redis_url=cache_url)}
    )
    try:
        runner = runner_for(settings)
        with caplog.at_level(logging.WARNING, logger="faceflow.jobs.rq_runner"):
            await runner.start()
        await runner.close()
    finally:
        admin.acl_deluser("noinfo")
        admin.close()

    said = [m for m in warnings_of(caplog) if ON_DISK not in m]
    assert bool(said) is warned, said
    assert all("run them apart" in m for m in said)


async def test_a_result_over_the_queue_redis_output_buffer_limit_is_read_in_ranges(
    queue_redis: RedisProcess, face_jpeg: bytes
) -> None:
    # Managed Redis services may cap a normal client's reply buffer; a reply over it makes Redis
    # close the connection as it answers. Read whole, a 1.3 MB result was 503 `unavailable` at
    # every fetch, each counted as an outage: three fetches refused every client's job calls.
    settings = job_settings(queue_redis.url)
    cache = ResultCache.from_settings(CacheSettings(memory_bytes=4 << 20))
    runner = RqRunner(settings, cache)
    # Not a multiple of the ranges read, and no two ranges alike, so a range lost, repeated or
    # cut short changes what is answered.
    body = secrets.token_bytes(1_300_001)
    submission = prepare("detect", variant(face_jpeg), {}, settings)
    await cache.put(submission.key, CacheEntry("image/png", body, {}))
    admin = Redis.from_url(queue_redis.url)
    try:
        await runner.start()
        record = await runner.submit(submission, None)
        assert record.from_cache
        admin.config_set("client-output-buffer-limit", "normal 1mb 1mb 0")
        for _ in range(REDIS_FAILURES + 1):
            view, entry = await runner.result(record.handle, None)
            assert (view.status, entry.body) == (JobStatus.FINISHED, body)
        assert (await runner.status(record.handle, None)).status is JobStatus.FINISHED
    finally:
        admin.config_set("client-output-buffer-limit", "normal 0 0 0")
        admin.close()
        await runner.close()


async def test_a_job_whose_image_is_over_the_queue_redis_output_buffer_limit_runs(
    queue_redis: RedisProcess, worker_context: WorkerContext, face_jpeg: bytes
) -> None:
    # The worker read its copy of the payload whole (GETDEL): under a managed service's
    # `client-output-buffer-limit normal 1mb 1mb 0`, Redis closed the connection as it answered,
    # the copy gone with it, and every job of an upload over 1 MB stayed "started", unrun.
    decoded = cv2.imdecode(np.frombuffer(face_jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None
    pixels = cv2.resize(decoded, (900, 900))
    ok, png = cv2.imencode(".png", pixels, [cv2.IMWRITE_PNG_COMPRESSION, 0])
    assert ok
    assert len(png) > 2 * 1024 * 1024
    settings = job_settings(queue_redis.url, maintenance_interval_s=3600, lease_s=60)
    runner = runner_for(settings)
    admin = Redis.from_url(queue_redis.url)
    seen: list[bytes] = []
    try:
        handle = await submit(runner, settings, png.tobytes())
        admin.config_set("client-output-buffer-limit", "normal 1mb 1mb 0")
        work_burst(settings, worker_context, lambda payload: seen.append(payload.data))
        assert seen == [png.tobytes()]
        assert (await runner.status(handle, None)).status is JobStatus.FINISHED
        assert admin.keys("*takenpayload*") == []
    finally:
        admin.config_set("client-output-buffer-limit", "normal 0 0 0")
        admin.close()
        await runner.close()
