"""The Redis job runner (RQ), API side: enqueue, status, result and cancel.

* The RQ job id is derived from the cache key and enqueued only where no job of that id exists
  (checked in the enqueue's transaction, :meth:`RqRunner._admit`): identical work
  submitted twice, by one client or many, on one API node or several, is queued and run once;
  each submission still gets its own random handle.
* RQ's job hash is written with its JSON serializer and carries no arguments: the payload lives
  under a key we own (see :mod:`faceflow.jobs.redis_store`), so nothing we store is pickled.
* ``Retry(max_retries, retry_backoff_s)``, ``job_timeout_s``, ``result_ttl_s`` and
  ``failure_ttl_s`` come from the settings; the failed registry is the dead-letter list. Which
  failures RQ retries is :func:`faceflow.jobs.retry.is_retryable`'s call, made by the worker.
* A queue holding ``max_queued`` jobs answers 503 ``queue_full`` with ``Retry-After`` (checked in
  the enqueue's transaction: exact across API nodes), and so does
  any call whose write the queue Redis refuses for want of room (at ``maxmemory``,
  ``noeviction``): it answered, so that is no outage, and reads go on.
* With ``max_queued_per_client``, an owner (API key) with that many jobs of its own enqueueing
  queued or running answers 429 for a new one, so one key cannot fill ``max_queued`` for all
  (checked in the enqueue's transaction too: exact across API nodes).
* With ``max_result_bytes_per_client``, an owner whose stored outcomes hold that many bytes
  answers 429 for new work (a job, or a result from the cache), so one key's day of results
  cannot fill the queue Redis and fail everyone else's jobs after they ran.
* The shared result cache is checked first: a cached result finishes the job at submission.

RQ and redis-py are synchronous here, so every call runs in a worker thread, never on the loop.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, TypeVar

from redis import Redis
from redis.exceptions import OutOfMemoryError, RedisError, WatchError
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.job import JobStatus as RqStatus
from rq.serializers import JSONSerializer

from faceflow.cache.breaker import CircuitBreaker
from faceflow.cache.entry import CacheEntry
from faceflow.cache.tiered import ResultCache
from faceflow.config import Settings
from faceflow.errors import (
    Conflict,
    FaceflowError,
    JsonScalar,
    NotFound,
    QueueFull,
    RateLimited,
    TooLarge,
    Unavailable,
)
from faceflow.jobs.handles import (
    HANDLES_PER_OWNER,
    HandleSigner,
    new_key,
    unknown_handle,
    visible_to,
)
from faceflow.jobs.records import (
    OUTCOME_HEAD_BYTES,
    HandleRecord,
    JobError,
    JobOutcome,
    JobPayload,
    JobRecord,
    JobStatus,
    cached_outcome,
    decode_handle,
    decode_outcome,
    encode_handle,
    encode_outcome,
    encode_payload,
    outcome_head,
    result_of,
)
from faceflow.jobs.redis_store import (
    JOB_FUNCTION,
    JobKeys,
    bulk_limit,
    connect,
    disk_warning,
    eviction_warning,
    read_value,
    shared_with_cache_warning,
)
from faceflow.jobs.retry import failed_for_now, retry_intervals
from faceflow.jobs.sealing import OUTCOME, PAYLOAD, CannotOpen, Sealer, sealed
from faceflow.operations.registry import Submission, scoped_job_id

log = logging.getLogger(__name__)

T = TypeVar("T")

_QUEUED = {
    RqStatus.CREATED,
    RqStatus.QUEUED,
    RqStatus.DEFERRED,
    RqStatus.SCHEDULED,
    RqStatus.RATE_LIMITED,
    RqStatus.READY_TO_ENQUEUE,
}
_ENDED = {RqStatus.FINISHED, RqStatus.FAILED}
_QUEUE_FULL_RETRY_S = 5
_UNAVAILABLE_RETRY_S = 2
REDIS_THREADS = 4
"""Threads the queue Redis's calls run in, apart from the event loop's default executor: with
the queue Redis hung, two dozen clients polling their jobs held every default thread for its
2 s timeout, and a one-image /v1/batch (which assembles its answer there) took 7 s."""
REDIS_FAILURES = 3
"""Failed calls in a row after which calls are refused at once, a trial every
:data:`_UNAVAILABLE_RETRY_S` seconds, until the queue Redis answers again."""
_SCALARS = (str, int, float, bool, type(None))


def _unavailable() -> Unavailable:
    return Unavailable("the job queue is unavailable", retry_after_s=_UNAVAILABLE_RETRY_S)


def _over_share(cap: int) -> RateLimited:
    return RateLimited(
        f"this client has {cap} jobs queued or running (jobs.max_queued_per_client); "
        f"submit more as they finish",
        retry_after_s=_QUEUE_FULL_RETRY_S,
        details={"limit": f"{cap} jobs queued or running"},
    )


class _GivenUp(Exception):
    """A queue Redis call not sent: the breaker opened while it waited for a thread."""


_CAME_BACK_EMPTY = (
    "the queue Redis had lost this queue's handle key: it came back empty (restarted without "
    "appendonly yes, or flushed), and every job accepted before is gone, its handle answering "
    "404; give the queue Redis appendonly yes to keep jobs across restarts"
)
"""Said by the node whose submission writes the handle key back (:meth:`RqRunner._submit`):
API nodes and workers otherwise logged only that the queue Redis answered again, and an empty
restart looked like any other outage while every client's jobs answered 404."""


def _log_outage(is_open: bool) -> None:
    if is_open:
        log.warning(
            "jobs: the queue Redis failed %d times in a row; job requests get 503 until it "
            "answers again",
            REDIS_FAILURES,
        )
    else:
        log.warning("jobs: the queue Redis answers again")


def crash_error(exc_string: str | None, meta: dict[str, Any]) -> JobError:
    """The error of a job RQ marked failed: a dead worker, a timeout, or what the job raised."""
    text = exc_string or ""
    if "AbandonedJobError" in text:
        return JobError("worker_crashed", "the worker running this job died on every attempt", 503)
    if "JobTimeoutException" in text:
        return JobError("deadline_exceeded", "the job ran past its time limit", 503)
    stored = meta.get("error")
    if isinstance(stored, dict):
        code, message, status = stored.get("code"), stored.get("message"), stored.get("status")
        details = stored.get("details", {})
        if (
            isinstance(code, str)
            and isinstance(message, str)
            and isinstance(status, int)
            and isinstance(details, dict)
            and all(isinstance(k, str) and isinstance(v, _SCALARS) for k, v in details.items())
        ):
            return JobError(code, message, status, details)
    return JobError("internal", "the job failed; see the worker log", 500)


# A job's image stored for an enqueue the queue Redis then refused for want of room: deleted,
# unless a job of the same id was enqueued meanwhile (by another submission, maybe on another
# API node: the image is its too). ``allow-oom``: a delete needs no room, and the image would
# otherwise hold its room for the payload's TTL. KEYS: the job's hash, its image.
_FORGET_IMAGE_LUA = """#!lua flags=allow-oom
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('DEL', KEYS[2]) end
return 1
"""


# The bound of the queue (jobs.max_queued) and of the owner's share of it
# (jobs.max_queued_per_client), run in the transaction that enqueues a job, after RQ's enqueue
# (its hash written, its id pushed at the tail): over the bound, the queue was full before the
# push; with the owner's pending set at its share once the jobs in it that ended (or expired)
# are dropped, the owner was; either way the enqueue is undone, the id taken off the tail and
# the hash deleted. Admitted with a share, the job joins the owner's pending set. Run with it,
# nobody sees the job in between. The pending jobs' hashes are named here, from their ids (a
# queue Redis is one node). KEYS: the queue, the job's hash, the owner's pending set (unused
# without a share). ARGV: the job id, max_queued, the share (0: none), the pending set's TTL
# (s), RQ's job hash prefix. 1: admitted; 0: the queue is full; -1: the owner's share is.
_ADMIT_LUA = """
local refused = 0
if redis.call('LLEN', KEYS[1]) <= tonumber(ARGV[2]) then
  local cap = tonumber(ARGV[3])
  if cap == 0 then return 1 end
  if redis.call('ZCARD', KEYS[3]) >= cap then
    -- _QUEUED and started: the statuses _check_share counts too
    local live = {created = true, queued = true, deferred = true, scheduled = true,
                  rate_limited = true, ready_to_enqueue = true, started = true}
    for _, id in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
      local status = redis.call('HGET', ARGV[5] .. id, 'status')
      if not status or not live[status] then redis.call('ZREM', KEYS[3], id) end
    end
  end
  if redis.call('ZCARD', KEYS[3]) < cap then
    local clock = redis.call('TIME')
    redis.call('ZADD', KEYS[3], tonumber(clock[1]) + tonumber(clock[2]) / 1e6, ARGV[1])
    redis.call('EXPIRE', KEYS[3], ARGV[4])
    return 1
  end
  refused = -1
end
redis.call('LREM', KEYS[1], -1, ARGV[1])
redis.call('DEL', KEYS[2])
return refused
"""


# One API key's stored results (jobs.max_result_bytes_per_client), kept by the submissions, so
# that it stays right however the outcomes go: measured once each (its size and when it expires,
# read from the outcome itself), and forgotten when that time has passed, so an expiry by TTL
# needs no one to see it. Outcomes are written by the workers, which do not know the owner; the
# owner's next submission measures those that have appeared, each with the records kept beside
# it (HANDLE_RECORD_BYTES, and RQ_JOB_BYTES while RQ's job is there: a computed one). KEYS: the
# owner's unmeasured jobs, its measured outcomes by expiry, their sizes. ARGV: these keys' TTL
# (s), the outcome key's prefix, RQ's job hash prefix, how many unmeasured jobs to look at
# (oldest first), the share, HANDLE_RECORD_BYTES, RQ_JOB_BYTES. Over the share, a slice of the
# measured outcomes is checked to still exist (one deleted early), on from where the last check
# stopped. Returns the total and how long until the soonest
# outcome expires (ms). Times are the queue Redis's own (its clock is the one expiring them, and
# API nodes' clocks may differ). A queue Redis is one node: the outcome and job keys are named
# here, from the job ids.
_RESULT_SHARE_LUA = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local function forget(id)
  local size = tonumber(redis.call('HGET', KEYS[3], id))
  if size then
    redis.call('HINCRBY', KEYS[3], 'total', -size)
    redis.call('HDEL', KEYS[3], id)
  end
  redis.call('ZREM', KEYS[2], id)
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)) do forget(id) end
local ended = {finished = true, failed = true, canceled = true, stopped = true}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[4]) - 1)) do
  local key = ARGV[2] .. id
  local ttl = redis.call('PTTL', key)
  if ttl > 0 then
    forget(id)
    local size = redis.call('STRLEN', key) + tonumber(ARGV[6])
    if redis.call('EXISTS', ARGV[3] .. id) == 1 then size = size + tonumber(ARGV[7]) end
    redis.call('ZADD', KEYS[2], now + ttl, id)
    redis.call('HSET', KEYS[3], id, size)
    redis.call('HINCRBY', KEYS[3], 'total', size)
    redis.call('ZREM', KEYS[1], id)
  else
    local status = redis.call('HGET', ARGV[3] .. id, 'status')
    if not status or ended[status] then redis.call('ZREM', KEYS[1], id) end
  end
end
local total = tonumber(redis.call('HGET', KEYS[3], 'total')) or 0
if total >= tonumber(ARGV[5]) then
  local from = tonumber(redis.call('HGET', KEYS[3], 'cursor')) or 0
  local ids = redis.call('ZRANGE', KEYS[2], from, from + 127)
  local kept = 0
  for _, id in ipairs(ids) do
    if redis.call('EXISTS', ARGV[2] .. id) == 1 then kept = kept + 1 else forget(id) end
  end
  redis.call('HSET', KEYS[3], 'cursor', #ids < 128 and 0 or from + kept)
  total = tonumber(redis.call('HGET', KEYS[3], 'total')) or 0
end
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[1]) end
local soonest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
return {total, soonest[2] and math.ceil(tonumber(soonest[2]) - now) or 0}
"""
_UNSIZED_SCAN = 256
"""Unmeasured jobs a share check looks at, oldest first (most often those that ended)."""
HANDLE_RECORD_BYTES = 1_500
"""The queue Redis's memory a stored outcome takes beyond its own bytes with the handle that
asked for it (the handle's record, the job's lists of handles): 1,802 bytes of ``used_memory``
a job answered from the cache, whose outcome was 357 bytes."""
RQ_JOB_BYTES = 8_700
"""What a computed job keeps beyond that for as long as its outcome: RQ's job hash and its
results stream, 10,569 bytes of ``used_memory`` a detect job in all. Counted at the outcome's
bytes alone, a key's share let it keep 30 times as much of the queue Redis in detect jobs
(docs/performance.md, round ten)."""


class RqRunner:
    backend = "redis"

    def __init__(self, settings: Settings, cache: ResultCache) -> None:
        jobs = settings.jobs
        assert jobs.redis_url is not None
        self._settings = jobs
        self._cache = cache
        self._cache_url = settings.cache.redis_url
        self._queue_url = jobs.redis_url
        self._keys = JobKeys(jobs.queue_name)
        self._sealer = Sealer(jobs.payload_keys, jobs.queue_name)
        self._conn: Redis = connect(jobs.redis_url, jobs.redis_timeout_ms / 1000)
        self._queue = Queue(
            jobs.queue_name,
            connection=self._conn,
            serializer=JSONSerializer,
            default_timeout=jobs.job_timeout_s,
        )
        self._forget_image = self._conn.register_script(_FORGET_IMAGE_LUA)
        self._result_share = self._conn.register_script(_RESULT_SHARE_LUA)
        self._handle_ttl_s = max(jobs.result_ttl_s, jobs.failure_ttl_s)
        """A handle's TTL while its job is to end (its worker then makes it expire with it)."""
        self._payload_ttl_s = max(jobs.result_ttl_s, jobs.failure_ttl_s)
        self._counts = {"submitted": 0, "deduplicated": 0, "from_cache": 0}
        self._threads = ThreadPoolExecutor(REDIS_THREADS, thread_name_prefix="faceflow-jobs")
        self._outages = 0
        """How many times the breaker has opened: a call waiting for a thread since before the
        last opening is given up, not sent (read in the threads)."""
        self._breaker = CircuitBreaker(
            REDIS_FAILURES, _UNAVAILABLE_RETRY_S, on_change=self._breaker_changed
        )
        self._max_bulk: int | None = None
        """The queue Redis's ``proto-max-bulk-len``, read at start (None: not known)."""
        self._signer: HandleSigner | None = None
        """The queue's handle key, read (or minted) once: at start, else at the first call."""

    async def start(self) -> None:
        try:
            await self._in_thread(self._conn.ping)
            self._signer = await self._in_thread(self._shared_signer)
        except RedisError as exc:
            log.warning(
                "jobs: queue Redis did not answer (%s); job requests get 503 until it does", exc
            )
            await self._warn_if_shared(None)  # by the URLs alone: not waiting on it again
            return
        await self._warn_if_shared(self._conn)
        log.info("jobs: RQ runner on queue %r", self._settings.queue_name)
        self._max_bulk = await self._in_thread(bulk_limit, self._conn)
        if self._sealer.enabled:
            log.info("jobs: uploads and results are stored encrypted in the queue Redis")
        elif (on_disk := await self._in_thread(disk_warning, self._conn)) is not None:
            log.warning("jobs: %s", on_disk)
        try:
            evicts = await self._in_thread(eviction_warning, self._conn)
        except RedisError as exc:
            # INFO denied (an ACL user without @dangerous): jobs work all the same, where this
            # said the queue Redis "did not answer" and that jobs would get 503.
            log.info("jobs: could not read the queue Redis's eviction policy (%s)", exc)
            return
        if evicts is not None:
            log.warning("jobs: %s", evicts)

    async def _warn_if_shared(self, queue: Redis | None) -> None:
        """Warn when the cache Redis is the queue's server (:func:`shared_with_cache_warning`)."""
        shared = await self._in_thread(
            shared_with_cache_warning,
            self._cache_url,
            queue,
            self._queue_url,
            self._settings.redis_timeout_ms / 1000,
        )
        if shared is not None:
            log.warning("jobs: %s", shared)

    async def close(self) -> None:
        await self._in_thread(self._conn.close)
        self._threads.shutdown(wait=False)

    def stats(self) -> dict[str, JsonScalar]:
        return {"backend": self.backend, "queue": self._settings.queue_name, **self._counts}

    async def submit(self, submission: Submission, owner: str | None) -> JobRecord:
        await self._signer_now()  # _submit mints the handle with it
        shared = self._settings.dedup_scope == "global" or owner is None
        cached = (await self._cache.get(submission.key))[0] if shared else None
        return await self._call(self._submit, submission, owner, cached)

    async def status(self, handle: str, owner: str | None) -> JobRecord:
        await self._genuine(handle)
        view, _ = await self._call(self._resolve, handle, owner)
        return view

    async def result(self, handle: str, owner: str | None) -> tuple[JobRecord, CacheEntry]:
        await self._genuine(handle)
        view, outcome = await self._call(
            functools.partial(self._resolve, result=True), handle, owner
        )
        return view, result_of(view, outcome)

    async def cancel(self, handle: str, owner: str | None) -> JobRecord:
        await self._genuine(handle)
        return await self._call(self._cancel, handle, owner)

    async def _genuine(self, handle: str) -> None:
        """404 for a handle no node of this queue minted, on the event loop: no thread, no
        queue Redis (the same answer as an unknown handle's, so the two cannot be told apart)."""
        if not (await self._signer_now()).genuine(handle):
            raise unknown_handle()

    async def _signer_now(self) -> HandleSigner:
        if self._signer is None:  # the queue Redis did not answer at start
            self._signer = await self._call(self._shared_signer)
            self._max_bulk = await self._in_thread(bulk_limit, self._conn)
        return self._signer

    def _shared_signer(self) -> HandleSigner:
        """The queue's handle key: read, or minted here when there is none (``SET NX``: of two
        nodes starting at once, the first one's), so every node of the queue holds the same
        one without configuration. Read first: a queue Redis out of memory refuses any SET,
        and status reads must go on."""
        name = self._keys.handle_key
        key = self._conn.get(name)
        if not isinstance(key, bytes):
            self._conn.set(name, new_key(), nx=True)
            key = self._conn.get(name)
        if not isinstance(key, bytes):
            raise RedisError("the handle key vanished as it was written")
        return HandleSigner(key)

    async def queue_depth(self) -> int:
        return await self._call(lambda: int(self._queue.count))

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the queue Redis's threads; 503 ``unavailable`` when the queue Redis
        fails, at once while it has failed :data:`REDIS_FAILURES` times in a row; 503
        ``queue_full`` when it refused a write for want of room."""
        if not self._breaker.allow():
            raise _unavailable()
        outages = self._outages

        def unless_out() -> T:
            # Calls queued for the threads before the breaker opened each waited out their
            # timeout behind the hung ones (up to 12 s) after it had.
            if self._outages != outages:
                raise _GivenUp
            return fn(*args)

        try:
            result = await self._in_thread(unless_out)
        except _GivenUp:
            raise _unavailable() from None
        except OutOfMemoryError:
            # At maxmemory (noeviction): full by bytes, not by count. It answered: not a failure
            # of the breaker's, which would then refuse reads (status polls) as well.
            self._breaker.record_success()
            raise QueueFull(
                "the job queue is full (its Redis is out of memory)",
                retry_after_s=_QUEUE_FULL_RETRY_S,
            ) from None
        except RedisError as exc:
            self._breaker.record_failure()
            log.debug("jobs: queue Redis call failed: %r", exc)
            raise _unavailable() from None
        except FaceflowError:
            self._breaker.record_success()  # the queue Redis answered: the job's own error
            raise
        self._breaker.record_success()
        return result

    def _breaker_changed(self, is_open: bool) -> None:
        if is_open:
            self._outages += 1
        _log_outage(is_open)

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._threads, fn, *args)

    def _outcome(self, job_id: str, *, whole: bool) -> JobOutcome | None:
        """The job's stored outcome; unless ``whole``, only as much as its first bytes say
        (:func:`outcome_head`), the rest read only when they do not say."""
        key = self._keys.result(job_id)
        if not whole:
            head = self._conn.getrange(key, 0, OUTCOME_HEAD_BYTES - 1)
            if not isinstance(head, bytes) or not head:
                return None
            if not sealed(head):  # a sealed head says nothing: the whole is read and opened
                outcome = outcome_head(head)
                if outcome is not None or len(head) < OUTCOME_HEAD_BYTES:
                    return outcome
        raw = read_value(self._conn, key)
        if raw is None:
            return None
        try:
            return decode_outcome(self._sealer.open(OUTCOME, job_id, raw))
        except CannotOpen as exc:
            log.warning("jobs: cannot read the outcome of job %s: %s", job_id, exc)
            raise Unavailable(
                "this node cannot read the job's stored result; try again",
                retry_after_s=_UNAVAILABLE_RETRY_S,
            ) from None

    def _fetch(self, job_id: str) -> Job | None:
        try:
            return Job.fetch(job_id, connection=self._conn, serializer=JSONSerializer)
        except NoSuchJobError:
            return None

    def _submit(self, sub: Submission, owner: str | None, cached: CacheEntry | None) -> JobRecord:
        now = time.time()
        job_id = scoped_job_id(sub, owner, self._settings.dedup_scope)
        keys = self._keys
        from_cache = False
        job, has_outcome = self._unless_stale(job_id)
        handle_ttl_s = self._handle_ttl_s
        if job is None and not has_outcome:
            if cached is not None:
                self._check_result_share(owner)
                outcome = cached_outcome(cached)
                handle_ttl_s = (
                    self._settings.result_ttl_s
                    if outcome.error is None
                    else self._settings.failure_ttl_s
                )
                stored = self._sealer.seal(OUTCOME, job_id, encode_outcome(outcome))
                self._conn.set(keys.result(job_id), stored, ex=handle_ttl_s)
                self._count_result(job_id, owner)
                from_cache = True
                self._counts["from_cache"] += 1
            else:
                self._enqueue(sub, job_id, owner)
        else:
            self._counts["deduplicated"] += 1
            handle_ttl_s = self._kept_for(job_id, job, has_outcome)
        queued = not from_cache and not has_outcome
        owned = keys.owned(job_id, owner)
        mine = [
            raw.decode() if isinstance(raw, bytes) else raw
            for raw in self._conn.lrange(owned, 0, -1)
        ]
        if len(mine) >= HANDLES_PER_OWNER and (again := self._newest_live(mine, job_id, owner)):
            self._counts["submitted"] += 1
            return self._view(*again)[0]
        signer = self._signer
        assert signer is not None  # read by submit() first
        handle = signer.new()
        record = HandleRecord(job_id, sub.operation.value, owner, now, from_cache=from_cache)
        with self._conn.pipeline() as pipe:
            # The key again, should it be gone (a flushed queue Redis): a node starting after
            # reads this one, which every node running holds.
            pipe.set(keys.handle_key, signer.key, nx=True, get=True)
            pipe.set(keys.handle(handle), encode_handle(record), ex=handle_ttl_s)
            pipe.sadd(keys.refs(job_id), handle)
            pipe.expire(keys.refs(job_id), handle_ttl_s)
            pipe.rpush(owned, handle)
            pipe.expire(owned, handle_ttl_s)
            stored = pipe.execute()[0]
        if stored is None:
            log.warning("jobs: %s", _CAME_BACK_EMPTY)
        elif stored != signer.key:
            log.warning(
                "jobs: the queue Redis holds another handle key than this node's (was it "
                "flushed while the API nodes ran?): restart the API nodes so they share it"
            )
        if queued and self._conn.hget(Job.key_for(job_id), "status") == b"canceled":
            # Its last other handle canceled it after we read it queued and before our handle
            # joined (the cancel's transaction saw no handle left): made anew for this one,
            # unless another submission has made it anew meanwhile.
            job, has_outcome = self._unless_stale(job_id)
            if job is None and not has_outcome:
                try:
                    self._enqueue(sub, job_id, owner)
                except (FaceflowError, RedisError):
                    # Refused (429 past the client's share, 503 queue full): its handle goes
                    # too. Left, the client held a handle it was never told of, of a canceled
                    # job, listed among the job's handles and its own.
                    self._forget_handle(handle, job_id, owner)
                    raise
        self._counts["submitted"] += 1
        view, _ = self._view(handle, record)
        return view

    def _kept_for(self, job_id: str, job: Job | None, has_outcome: bool) -> int:
        """How long a new handle of existing work is kept: as long as what its status is read
        from, the job's outcome or its ended job (its worker made the job's other handles
        expire with it at its end); a job still to end, as long as it may be kept."""
        if has_outcome:
            left = self._conn.ttl(self._keys.result(job_id))
        elif job is not None and job.get_status(refresh=False) in _ENDED:
            left = self._conn.ttl(Job.key_for(job_id))
        else:
            return self._handle_ttl_s
        return left if isinstance(left, int) and left > 0 else self._handle_ttl_s

    def _unless_stale(self, job_id: str) -> tuple[Job | None, bool]:
        """The job under ``job_id`` (None if there is none, or it was :func:`_stale` and is
        deleted now), and whether its outcome is stored. The check and the delete run in one
        transaction watching the job's hash and its outcome, as :meth:`_cancel_unwanted`
        cancels: apart, two submissions reading the same stale job each deleted "it" and
        enqueued a new one, the second deleting the job the first had just made (its handle's,
        maybe running) and making the work again. A submission whose delete fails checks
        again and shares the other's new job; two finding no job both enqueue it, uniquely,
        and one makes it."""
        job_key, result_key = Job.key_for(job_id), self._keys.result(job_id)
        with self._conn.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(job_key, result_key)  # type: ignore[no-untyped-call]
                    job = self._fetch(job_id)
                    has_outcome = bool(pipe.exists(result_key))
                    if job is None or not _stale(job, has_outcome):
                        return job, has_outcome
                    pipe.multi()
                    job.delete(pipeline=pipe)
                    pipe.execute()
                except WatchError:
                    continue
                return None, has_outcome

    def _newest_live(
        self, mine: list[str], job_id: str, owner: str | None
    ) -> tuple[str, HandleRecord] | None:
        """The owner's newest handle of the job not canceled, if any; else the oldest is
        forgotten (a canceled handle then answers 404), making room for a new one."""
        keys = self._keys
        for handle in reversed(mine):
            raw = self._conn.get(keys.handle(handle))
            record = decode_handle(raw) if isinstance(raw, bytes) else None
            if record is not None and record.canceled_at is None:
                return handle, record
        self._forget_handle(mine[0], job_id, owner)
        return None

    def _forget_handle(self, handle: str, job_id: str, owner: str | None) -> None:
        """Delete ``owner``'s ``handle`` of ``job_id`` and its place in the job's and the
        owner's lists, in one transaction."""
        keys = self._keys
        with self._conn.pipeline() as pipe:
            pipe.lrem(keys.owned(job_id, owner), 1, handle)
            pipe.delete(keys.handle(handle))
            pipe.srem(keys.refs(job_id), handle)
            pipe.execute()

    def _enqueue(self, sub: Submission, job_id: str, owner: str | None) -> None:
        cap = self._settings.max_queued_per_client
        share = cap if owner is not None else None
        try:
            # Before the image is stored: most refusals cost no write. Exact only in _admit.
            self._refuse_if_full()
            if share is not None and owner is not None:
                self._check_share(owner, share)
            self._check_result_share(owner)
        except (QueueFull, RateLimited):
            if self._conn.exists(Job.key_for(job_id)):
                # An identical submission enqueued it since we found none (the share was
                # full with it): share it, as _admit would have, not refuse it.
                self._counts["deduplicated"] += 1
                return
            raise
        payload = self._sealer.seal(
            PAYLOAD, job_id, encode_payload(JobPayload(sub.operation.value, sub.payload, sub.data))
        )
        if self._max_bulk is not None and len(payload) > self._max_bulk:
            raise TooLarge(
                f"this image ({len(payload)} bytes with its options) is larger than the job "
                f"queue takes in one value ({self._max_bulk} bytes, its Redis's "
                "proto-max-bulk-len); send a smaller image, or use the synchronous route",
                details={"limit_bytes": self._max_bulk},
            )
        # Kept as long as a failed job stays in the dead-letter registry (one retention for
        # both), so a parked job can be requeued for as long as it is listed there.
        self._conn.set(self._keys.data(job_id), payload, ex=self._payload_ttl_s)
        try:
            enqueued = self._admit(sub, job_id, payload, owner, share)
        except (QueueFull, RateLimited, OutOfMemoryError):
            self._forget_image(keys=[Job.key_for(job_id), self._keys.data(job_id)])
            raise
        if not enqueued:
            # Another submission (maybe on another API node) enqueued it first: share it.
            self._counts["deduplicated"] += 1
            return
        self._count_result(job_id, owner)

    def _refuse_if_full(self) -> None:
        if self._queue.count >= self._settings.max_queued:
            raise self._full()

    def _full(self) -> QueueFull:
        return QueueFull(
            f"the job queue is full ({self._settings.max_queued} jobs waiting)",
            retry_after_s=_QUEUE_FULL_RETRY_S,
        )

    def _admit(
        self, sub: Submission, job_id: str, payload: bytes, owner: str | None, share: int | None
    ) -> bool:
        """Enqueue the job unless the queue holds ``max_queued`` jobs (QueueFull), ``owner``
        has ``share`` jobs of its own enqueueing queued or running (RateLimited), or a job of
        this id exists (False: a duplicate), so that both bounds hold exactly however many API
        nodes submit at once. Checked in one call and enqueued in the next, a burst passed
        them by the submissions under way (measured: ``max_queued`` 5, 60 submissions at once
        on two nodes, 8 queued; a share of 5, one key's 80 submissions at once, 8 queued).

        One transaction: RQ's own enqueue (given it as its pipeline), then
        :data:`_ADMIT_LUA`, which undoes it when the queue was full before it, all run at once
        by the queue Redis. It watches the job's hash (a duplicate's, as ``unique=True`` did)
        and its image, not the queue nor the owner's pending set: watched, every push or take
        by anyone failed the others' transactions, and a burst spent round trips trying again.
        The image is written again when it is gone: an identical submission refused as the
        queue (or the owner's share) filled deletes it (:data:`_FORGET_IMAGE_LUA`) while this
        job's hash does not exist yet."""
        job_key, data_key = Job.key_for(job_id), self._keys.data(job_id)
        retry = None
        if self._settings.max_retries > 0:
            retry = Retry(
                max=self._settings.max_retries,
                interval=retry_intervals(
                    self._settings.max_retries, self._settings.retry_backoff_s
                ),
                enqueue_at_front=True,
            )
        with self._conn.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(job_key, data_key)  # type: ignore[no-untyped-call]
                    # Read after the WATCH (by any connection: a change after it fails the
                    # EXEC), in one round trip.
                    with self._conn.pipeline(transaction=False) as reads:
                        reads.exists(job_key)
                        reads.exists(data_key)
                        exists, has_image = reads.execute()
                    if exists:
                        return False
                    if not has_image:
                        pipe.unwatch()
                        self._conn.set(data_key, payload, ex=self._payload_ttl_s)
                        continue
                    pipe.multi()
                    # Not ``unique=True``: RQ then enqueues by a script of its own, outside the
                    # transaction; the watched hash makes the same check.
                    self._queue.enqueue_call(
                        JOB_FUNCTION,
                        job_id=job_id,
                        timeout=self._settings.job_timeout_s,
                        result_ttl=self._settings.result_ttl_s,
                        failure_ttl=self._settings.failure_ttl_s,
                        retry=retry,
                        description=f"faceflow {sub.operation.value}",
                        meta={"operation": sub.operation.value, "attempts": 0},
                        pipeline=pipe,
                    )
                    keys = [self._queue.key, job_key]
                    if share is not None and owner is not None:
                        keys.append(self._keys.pending(owner))
                    pipe.eval(
                        _ADMIT_LUA,
                        len(keys),
                        *keys,
                        job_id,
                        self._settings.max_queued,
                        share or 0,
                        self._payload_ttl_s,
                        Job.redis_job_namespace_prefix,
                    )
                    admitted = pipe.execute()[-1]
                except WatchError:
                    continue
                if admitted == 0:
                    raise self._full()
                if admitted < 0:
                    assert share is not None
                    raise _over_share(share)
                return True

    def _check_result_share(self, owner: str | None) -> None:
        """429 when ``owner``'s stored outcomes hold ``max_result_bytes_per_client`` or more of
        the queue Redis (:data:`_RESULT_SHARE_LUA` measures and forgets them), its Retry-After
        when the soonest of them expires. Checked before a new outcome is made, so the refused
        work costs nothing; two submissions of one owner at once may both pass just under it,
        and jobs already queued add their outcomes after: a share, not a hard count."""
        share = self._settings.max_result_bytes_per_client
        if share is None or owner is None:
            return
        keys = self._keys
        total, wait_ms = self._result_share(
            keys=[keys.unsized(owner), keys.results(owner), keys.result_bytes(owner)],
            args=[
                self._payload_ttl_s,
                keys.result(""),
                Job.redis_job_namespace_prefix,
                _UNSIZED_SCAN,
                share,
                HANDLE_RECORD_BYTES,
                RQ_JOB_BYTES,
            ],
        )
        if int(total) < share:
            return
        raise RateLimited(
            f"this client's job results hold {int(total)} bytes of the job queue "
            f"(jobs.max_result_bytes_per_client: {share}); submit more as they expire",
            retry_after_s=max(1, math.ceil(wait_ms / 1000)) if wait_ms > 0 else _QUEUE_FULL_RETRY_S,
            details={"limit": f"{share} bytes of stored results"},
        )

    def _count_result(self, job_id: str, owner: str | None) -> None:
        """Count the outcome ``job_id`` stores (or will) against ``owner``'s share."""
        if self._settings.max_result_bytes_per_client is None or owner is None:
            return
        with self._conn.pipeline() as pipe:
            pipe.zadd(self._keys.unsized(owner), {job_id: time.time()})
            pipe.expire(self._keys.unsized(owner), self._payload_ttl_s)
            pipe.execute()

    def _check_share(self, owner: str, cap: int) -> None:
        """429 when ``owner`` has ``cap`` jobs of its own enqueueing queued or running, before
        the job's image is stored; :meth:`_admit` checks again with the enqueue, exactly. Jobs
        that ended (or expired) are dropped from its set here, when it is full, so a check
        costs one ZCARD until then and at most ``cap`` status reads after."""
        key = self._keys.pending(owner)
        if self._conn.zcard(key) < cap:
            return
        ids = [
            raw.decode() if isinstance(raw, bytes) else str(raw)
            for raw in self._conn.zrange(key, 0, -1)
        ]
        with self._conn.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hget(Job.key_for(job_id), "status")
            statuses = pipe.execute()
        live = {s.value for s in _QUEUED} | {RqStatus.STARTED.value}
        ended = [
            job_id
            for job_id, status in zip(ids, statuses, strict=True)
            if not isinstance(status, bytes) or status.decode() not in live
        ]
        if ended:
            self._conn.zrem(key, *ended)
        if len(ids) - len(ended) >= cap:
            raise _over_share(cap)

    def _handle(self, handle: str, owner: str | None) -> HandleRecord:
        raw = self._conn.get(self._keys.handle(handle))
        record = decode_handle(raw) if isinstance(raw, bytes) else None
        if record is None or not visible_to(record, owner):
            raise unknown_handle()
        return record

    def _resolve(
        self, handle: str, owner: str | None, *, result: bool = False
    ) -> tuple[JobRecord, JobOutcome | None]:
        return self._view(handle, self._handle(handle, owner), result=result)

    def _view(
        self, handle: str, record: HandleRecord, *, result: bool = False
    ) -> tuple[JobRecord, JobOutcome | None]:
        """The job's record, and with ``result`` its outcome (without: only what the record
        says of it is read, not a result's body)."""
        # The job before its outcome: a worker stores the outcome with (or, in older workers,
        # before) the job's finished state, so a job read as finished has its outcome readable
        # next. Read the other way round, a job finishing between the reads looked finished
        # without an outcome, i.e. expired (a 404 seen by a client submitting or polling).
        job = self._fetch(record.job_id)
        outcome = self._outcome(record.job_id, whole=result)
        if outcome is not None and job is not None and job.ended_at is None:
            job = self._fetch(record.job_id)  # it ended between the reads: its end time
        meta: dict[str, Any] = job.get_meta(refresh=False) if job is not None else {}
        base = JobRecord(
            handle=handle,
            operation=record.operation,
            status=JobStatus.QUEUED,
            created_at=record.created_at,
            from_cache=record.from_cache,
        )
        if job is not None:
            attempts = meta.get("attempts", 0)
            base = replace(
                base,
                enqueued_at=_ts(job.enqueued_at),
                started_at=_ts(job.started_at),
                ended_at=_ts(job.ended_at),
                attempts=attempts if isinstance(attempts, int) else 0,
            )
        if record.canceled_at is not None:
            return replace(base, status=JobStatus.CANCELED, ended_at=record.canceled_at), None
        if outcome is not None:
            if outcome.entry is not None:
                view = replace(base, status=JobStatus.FINISHED, media_type=outcome.entry.media_type)
            else:
                view = replace(base, status=JobStatus.FAILED, error=outcome.error)
            return _ended(view, meta), outcome if result else None
        if job is None:
            raise NotFound("the job and its result have expired")
        status = job.get_status(refresh=False)
        if status in _QUEUED:
            return base, None
        if status is RqStatus.STARTED:
            return replace(base, status=JobStatus.STARTED, ended_at=None), None
        if status is RqStatus.CANCELED:
            return _ended(replace(base, status=JobStatus.CANCELED), meta), None
        if status is RqStatus.FINISHED:
            if _error_in(meta) is not None:  # ended without an outcome: its image had expired
                error = crash_error(None, meta)
                return _ended(replace(base, status=JobStatus.FAILED, error=error), meta), None
            # Finished with its outcome already expired (result TTLs are equal): gone.
            raise NotFound("the job's result has expired")
        latest = job.latest_result()
        error = crash_error(latest.exc_string if latest is not None else None, meta)
        return _ended(replace(base, status=JobStatus.FAILED, error=error), meta), None

    def _cancel(self, handle: str, owner: str | None) -> JobRecord:
        record = self._handle(handle, owner)
        view, _ = self._view(handle, record)
        if view.status is JobStatus.CANCELED:
            return view
        if view.status is not JobStatus.QUEUED:
            raise Conflict(f"the job is {view.status.value}; only a queued job can be canceled")
        keys = self._keys
        now = time.time()
        canceled = replace(record, canceled_at=now)
        with self._conn.pipeline() as pipe:
            # Kept as the embedded runner keeps a canceled job, not for as long as its failure
            # could have been (the handle's TTL until now).
            pipe.set(keys.handle(handle), encode_handle(canceled), ex=self._settings.result_ttl_s)
            pipe.srem(keys.refs(record.job_id), handle)
            pipe.execute()
        self._cancel_unwanted(record.job_id)
        view, _ = self._view(handle, canceled)
        return view

    def _cancel_unwanted(self, job_id: str) -> None:
        """Cancel the job if it is still queued and no handle wants it any more, checked and
        done in one transaction watching its handles and its hash: a submission joining it
        meanwhile (its handle added), or a worker starting it, makes the transaction fail, and
        the check is made again. Checked apart from the cancel, a submission joining a queued job
        between the two had its accepted job canceled under it, never run (see :meth:`_submit`
        for a join after the cancel)."""
        refs, job_key = self._keys.refs(job_id), Job.key_for(job_id)
        with self._conn.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(refs, job_key)  # type: ignore[no-untyped-call]
                    if pipe.scard(refs) != 0:
                        return
                    job = self._fetch(job_id)
                    if job is None or job.get_status() not in _QUEUED:
                        return
                    pipe.multi()
                    job.cancel(pipeline=pipe)
                    pipe.delete(self._keys.data(job_id))
                    pipe.execute()
                except WatchError:
                    continue
                log.info("job %s canceled", job_id)
                return


def _stale(job: Job, has_outcome: bool) -> bool:
    """Whether an existing RQ job under this content key must be replaced by a new submission
    rather than shared: canceled or stopped; finished without an outcome (its outcome expired,
    or it ended as ``expired`` because its image had expired before it ran); or failed for want
    of capacity (RQ marks a job failed only when its retries were spent on retryable errors;
    :func:`~faceflow.jobs.retry.failed_for_now` says which of those are not the work's). Shared,
    such a failure answered every later submission of the same work for ``failure_ttl_s`` (7
    days) without running it; replaced, the job leaves the failed registry for the new run."""
    status = job.get_status(refresh=False)
    if status in (RqStatus.CANCELED, RqStatus.STOPPED):
        return True
    if status is RqStatus.FINISHED:
        return not has_outcome
    if status is RqStatus.FAILED and not has_outcome:
        latest = job.latest_result()
        return failed_for_now(crash_error(latest.exc_string if latest else None, job.meta))
    return False


def _error_in(meta: dict[str, Any]) -> dict[str, Any] | None:
    stored = meta.get("error")
    return stored if isinstance(stored, dict) else None


def _ended(view: JobRecord, meta: dict[str, Any]) -> JobRecord:
    """``view`` (a job in a terminal state) with ``ended_at`` set: RQ's, else the worker's own
    (stored before RQ records the end), else the submission time (the RQ job expired)."""
    if view.ended_at is not None:
        return view
    ended = meta.get("ended_at")
    if isinstance(ended, int | float) and not isinstance(ended, bool):
        return replace(view, ended_at=float(ended))
    return replace(view, ended_at=view.enqueued_at or view.created_at)


def _ts(value: Any) -> float | None:
    """An RQ datetime (naive UTC in some versions, aware in others) as Unix seconds."""
    if value is None:
        return None
    if value.tzinfo is None:
        from datetime import UTC

        value = value.replace(tzinfo=UTC)
    stamp: float = value.timestamp()
    return stamp
