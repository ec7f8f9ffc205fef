"""The embedded job runner: a bounded in-process queue feeding the service's own inference pool.

Same API and semantics as the RQ runner, nothing to install: jobs go through the sync
endpoints' cache-then-compute (:class:`~faceflow.cache.compute.CachedCompute`, so a job's result
is a sync hit and vice versa), at most ``embedded_consumers`` at a time and, with the API
process's batches, on at most one fewer processes than the pool has
(:mod:`faceflow.runtime.lanes`) so jobs never crowd sync requests out of the pool, and a failed
attempt is retried by the rule both runners share (:mod:`faceflow.jobs.retry`). Records live
in memory with their TTLs; a restart forgets them (use Redis to keep jobs).

The queue is bounded in jobs (``jobs.max_queued``) and in image bytes (``jobs.embedded_max_bytes``,
which also count against the API process's upload budget while the job holds them): beyond
either, a submission gets ``503 queue_full``. A job holds its image until it ends.

The per-owner (API key) shares are the RQ runner's, counted against the owner whose submission
made a job (not one that joined it): with ``jobs.max_queued_per_client``, an owner with that
many such jobs queued or running gets ``429 rate_limited`` for a new one; with
``jobs.max_result_bytes_per_client``, so does an owner whose kept results hold that many bytes
(a result counts from when its job ends until it expires or is dropped).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from faceflow.cache.compute import CachedCompute
from faceflow.cache.entry import CacheEntry
from faceflow.config import Settings
from faceflow.errors import (
    Conflict,
    FaceflowError,
    JsonScalar,
    NotFound,
    NotReady,
    Overloaded,
    QueueFull,
    RateLimited,
)
from faceflow.jobs.handles import (
    HANDLES_PER_OWNER,
    HandleSigner,
    MemoryHandles,
    new_key,
    unknown_handle,
    visible_to,
)
from faceflow.jobs.records import (
    HandleRecord,
    JobError,
    JobOutcome,
    JobRecord,
    JobStatus,
    cached_outcome,
    result_of,
)
from faceflow.jobs.retry import failed_for_now, is_retryable, retry_wait_s
from faceflow.operations.registry import Submission, scoped_job_id
from faceflow.runtime.budget import ByteBudget
from faceflow.runtime.lanes import background_lanes, lane_count

log = logging.getLogger(__name__)

_OVERLOAD_WAIT_S = 0.2
_SWEEP_INTERVAL_S = 30.0


@dataclass(eq=False, slots=True)
class _Job:
    job_id: str
    operation: str
    submission: Submission | None = field(repr=False)
    """Dropped once the job ends, so finished jobs do not keep image bytes alive."""
    held_bytes: int = 0
    """Image bytes taken from the queue's bound (and the upload budget) for this job."""
    status: JobStatus = JobStatus.QUEUED
    enqueued_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    attempts: int = 0
    outcome: JobOutcome | None = None
    handles: set[str] = field(default_factory=set)
    """Handles still interested (not canceled)."""
    owned: dict[str | None, list[str]] = field(default_factory=dict)
    """Every handle of the job by owner, oldest first (canceled ones too)."""
    expires_at: float = float("inf")
    owner: str | None = None
    """The owner whose submission made the job: its result counts against that owner's share."""
    result_bytes: int = 0
    """The bytes of its result, once ended."""


@dataclass(eq=False, slots=True)
class _Share:
    """One owner's kept results (``jobs.max_result_bytes_per_client``), in the order they were
    kept, which is the order they expire (every result is kept ``result_ttl_s``)."""

    jobs: dict[_Job, None] = field(default_factory=dict)
    total_bytes: int = 0


def _made_anew(job: _Job) -> bool:
    """Whether a new submission of ``job``'s work makes the job anew rather than joins it: it
    was canceled, or it failed for good on its attempts' circumstances (:func:`failed_for_now`)
    rather than on its work."""
    if job.status is JobStatus.CANCELED:
        return True
    error = job.outcome.error if job.outcome is not None else None
    return job.status is JobStatus.FAILED and error is not None and failed_for_now(error)


class _JobQueue:
    """The jobs waiting for a consumer, in submission order, at most ``maxsize``. A canceled
    job leaves it at once: left in place (as in an ``asyncio.Queue``) until a consumer came to
    it, canceled jobs filled the bound while the consumers were busy, and one client canceling
    and resubmitting a job got every submission of every client refused ``queue_full``."""

    def __init__(self, maxsize: int) -> None:
        self._jobs: dict[_Job, None] = {}  # insertion-ordered; _Job hashes by identity
        self._maxsize = maxsize
        self._not_empty = asyncio.Event()

    def qsize(self) -> int:
        return len(self._jobs)

    def full(self) -> bool:
        return len(self._jobs) >= self._maxsize

    def put_nowait(self, job: _Job) -> None:
        self._jobs[job] = None
        self._not_empty.set()

    def discard(self, job: _Job) -> None:
        self._jobs.pop(job, None)

    async def get(self) -> _Job:
        while not self._jobs:
            self._not_empty.clear()
            await self._not_empty.wait()
        job = next(iter(self._jobs))
        del self._jobs[job]
        return job


class EmbeddedRunner:
    backend = "embedded"

    def __init__(
        self,
        settings: Settings,
        compute: CachedCompute,
        *,
        clock: Callable[[], float] = time.time,
        budget: ByteBudget | None = None,
        lanes: asyncio.Semaphore | None = None,
        signer: HandleSigner | None = None,
    ) -> None:
        self._settings = settings.jobs
        self._compute = compute
        self._clock = clock
        processes = settings.runtime.processes
        self._lanes = background_lanes(processes) if lanes is None else lanes
        """What a job holds while it runs (shared with /v1/batch: faceflow.runtime.lanes)."""
        self._consumers_n = settings.jobs.embedded_consumers or lane_count(processes)
        self._queue = _JobQueue(settings.jobs.max_queued)
        self._budget = budget
        self._held_bytes = 0
        self._jobs: dict[str, _Job] = {}
        self._finished: OrderedDict[str, _Job] = OrderedDict()
        """Ended jobs whose results are kept, oldest first, by job id."""
        self._finished_bytes = 0
        self._shares: dict[str, _Share] = {}
        """Each owner's kept results (only owners with some)."""
        self._pending: dict[str, set[_Job]] = {}
        """Each owner's jobs queued or running (only owners with some)."""
        self._handles = MemoryHandles(clock)
        # By default the process's own key: its jobs live in this process's memory. The HTTP
        # workers of one server share theirs, each handle naming its worker (faceflow.jobs.peers).
        self._signer = HandleSigner(new_key()) if signer is None else signer
        self._tasks: list[asyncio.Task[None]] = []
        self._handle_ttl_s = max(settings.jobs.result_ttl_s, settings.jobs.failure_ttl_s)
        self._counts = {"submitted": 0, "finished": 0, "failed": 0, "canceled": 0, "retried": 0}

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._consume(), name=f"faceflow-job-consumer-{i}")
            for i in range(self._consumers_n)
        ]
        self._tasks.append(asyncio.create_task(self._sweep_forever(), name="faceflow-job-sweeper"))
        log.info(
            "jobs: embedded runner, %d consumers, queue bound %d",
            self._consumers_n,
            self._settings.max_queued,
        )

    async def close(self) -> None:
        """Stop the consumers. The jobs not ended are lost with the process, as every record
        is (they went silently): how many is logged, with what keeps them."""
        lost = sum(1 for job in self._jobs.values() if not job.status.done)
        if lost:
            log.warning(
                "jobs: %d accepted jobs not finished are lost with this process (the embedded "
                "runner keeps jobs in memory; jobs.redis_url keeps them across restarts)",
                lost,
            )
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def stats(self) -> dict[str, JsonScalar]:
        return {
            "backend": self.backend,
            "queued": self._queue.qsize(),
            "max_queued": self._settings.max_queued,
            "held_bytes": self._held_bytes,
            "max_bytes": self._settings.embedded_max_bytes,
            "consumers": self._consumers_n,
            "records": len(self._jobs),
            "handles": len(self._handles),
            "results_bytes": self._finished_bytes,
            **self._counts,
        }

    async def queue_depth(self) -> int:
        return self._queue.qsize()

    async def submit(self, submission: Submission, owner: str | None) -> JobRecord:
        now = self._clock()
        job_id = scoped_job_id(submission, owner, self._settings.dedup_scope)
        job = self._live_job(job_id)
        if job is None or _made_anew(job):
            shared = self._settings.dedup_scope == "global" or owner is None
            entry = (await self._compute.cache.get(submission.key))[0] if shared else None
            job = self._jobs.get(job_id)  # another submission may have raced in while we looked
            if job is None or _made_anew(job) or self._expired(job):
                before = job
                job = self._new_job(submission, job_id, entry, now, owner)
                if before is not None:
                    self._release(before)
                    # Its handles still resolve to this job id: counted against the bound
                    # below, or canceling and resubmitting minted handles without end.
                    job.owned = before.owned
        self._counts["submitted"] += 1
        owned = job.owned.setdefault(owner, [])
        if len(owned) >= HANDLES_PER_OWNER and (again := self._newest_live(owned)) is not None:
            return self._record(*again, job)
        handle = self._signer.new()
        record = HandleRecord(
            job_id,
            submission.operation.value,
            owner,
            now,
            from_cache=job.outcome is not None and job.started_at is None,
        )
        self._handles.put(handle, record, self._handle_ttl_s)
        job.handles.add(handle)
        owned.append(handle)
        return self._record(handle, record, job)

    def _newest_live(self, owned: list[str]) -> tuple[str, HandleRecord] | None:
        """The owner's newest handle not canceled, if any; else the oldest is forgotten (a
        canceled handle then answers 404), making room for a new one."""
        for handle in reversed(owned):
            record = self._handles.get(handle)
            if record is not None and record.canceled_at is None:
                return handle, record
        self._handles.forget(owned.pop(0))
        return None

    async def status(self, handle: str, owner: str | None) -> JobRecord:
        record, job = self._lookup(handle, owner)
        return self._record(handle, record, job)

    async def result(self, handle: str, owner: str | None) -> tuple[JobRecord, CacheEntry]:
        record, job = self._lookup(handle, owner)
        view = self._record(handle, record, job)
        return view, result_of(view, job.outcome)

    async def cancel(self, handle: str, owner: str | None) -> JobRecord:
        record, job = self._lookup(handle, owner)
        if record.canceled_at is not None:
            return self._record(handle, record, job)
        if job.status is not JobStatus.QUEUED:
            raise Conflict(f"the job is {job.status.value}; only a queued job can be canceled")
        now = self._clock()
        canceled = self._handles.mark_canceled(handle, now)
        assert canceled is not None
        job.handles.discard(handle)
        if not job.handles:
            job.status = JobStatus.CANCELED
            job.ended_at = now
            self._queue.discard(job)
            self._let_go(job)
            self._counts["canceled"] += 1
            self._retire(job, self._settings.result_ttl_s)
        return self._record(handle, canceled, job)

    def _new_job(
        self,
        submission: Submission,
        job_id: str,
        cached: CacheEntry | None,
        now: float,
        owner: str | None,
    ) -> _Job:
        job = _Job(job_id, submission.operation.value, submission, enqueued_at=now, owner=owner)
        if cached is not None:
            self._check_result_share(owner)
            job.outcome = cached_outcome(cached)
            job.status = JobStatus.FINISHED if job.outcome.error is None else JobStatus.FAILED
            job.ended_at = now
            job.submission = None
            self._jobs[job.job_id] = job
            done = job.outcome.error is None
            self._retire(job, self._settings.result_ttl_s if done else self._settings.failure_ttl_s)
            return job
        if self._queue.full():
            raise QueueFull(
                f"the job queue is full ({self._settings.max_queued} jobs waiting)",
                retry_after_s=5,
            )
        cap = self._settings.max_queued_per_client
        if cap is not None and owner is not None and len(self._pending.get(owner, ())) >= cap:
            raise RateLimited(
                f"this client has {cap} jobs queued or running (jobs.max_queued_per_client); "
                f"submit more as they finish",
                retry_after_s=5,
                details={"limit": f"{cap} jobs queued or running"},
            )
        self._check_result_share(owner)
        self._hold(job, len(submission.data))
        if owner is not None:
            self._pending.setdefault(owner, set()).add(job)
        self._queue.put_nowait(job)
        self._jobs[job.job_id] = job
        return job

    def _check_result_share(self, owner: str | None) -> None:
        """429 when ``owner``'s kept results hold ``max_result_bytes_per_client`` or more, its
        Retry-After when the soonest of them expires. Checked before a new result is made, so
        the refused work costs nothing; jobs already queued add their results after."""
        share = self._settings.max_result_bytes_per_client
        if share is None or owner is None:
            return
        kept = self._shares.get(owner)
        # Results expired but not yet swept leave the share first (the oldest expire first).
        while kept is not None and self._expired(soonest := next(iter(kept.jobs))):
            self._drop(soonest)
            kept = self._shares.get(owner)
        if kept is None or kept.total_bytes < share:
            return
        wait_s = next(iter(kept.jobs)).expires_at - self._clock()
        raise RateLimited(
            f"this client's job results hold {kept.total_bytes} bytes of the job queue "
            f"(jobs.max_result_bytes_per_client: {share}); submit more as they expire",
            retry_after_s=max(1, math.ceil(wait_s)),
            details={"limit": f"{share} bytes of stored results"},
        )

    def _hold(self, job: _Job, size: int) -> None:
        """Take ``size`` image bytes for ``job``, or refuse it (QueueFull)."""
        limit = self._settings.embedded_max_bytes
        if self._held_bytes + size > limit or (
            self._budget is not None and not self._budget.try_take(size)
        ):
            raise QueueFull(
                f"the job queue holds as many image bytes as it may ({limit} bytes, or the "
                "server's upload budget)",
                retry_after_s=5,
            )
        self._held_bytes += size
        job.held_bytes = size

    def _let_go(self, job: _Job) -> None:
        """Drop the job's image and give its bytes back, and its owner's place."""
        job.submission = None
        owner = job.owner
        pending = self._pending.get(owner) if owner is not None else None
        if owner is not None and pending is not None:
            pending.discard(job)
            if not pending:
                del self._pending[owner]
        if job.held_bytes:
            self._held_bytes -= job.held_bytes
            if self._budget is not None:
                self._budget.give(job.held_bytes)
            job.held_bytes = 0

    def _live_job(self, job_id: str) -> _Job | None:
        job = self._jobs.get(job_id)
        if job is None:
            return None
        if self._expired(job):
            self._drop(job)
            return None
        return job

    def _expired(self, job: _Job) -> bool:
        return job.expires_at <= self._clock()

    def _lookup(self, handle: str, owner: str | None) -> tuple[HandleRecord, _Job]:
        record = self._handles.get(handle) if self._signer.genuine(handle) else None
        if record is None or not visible_to(record, owner):
            raise unknown_handle(in_memory=True)
        job = self._live_job(record.job_id)
        if job is None:
            raise NotFound("the job and its result have expired")
        return record, job

    def _record(self, handle: str, record: HandleRecord, job: _Job) -> JobRecord:
        status = JobStatus.CANCELED if record.canceled_at is not None else job.status
        outcome = job.outcome
        error = outcome.error if outcome is not None else None
        if status is JobStatus.FINISHED and error is not None:
            status = JobStatus.FAILED
        media_type = (
            outcome.entry.media_type if outcome is not None and outcome.entry is not None else None
        )
        return JobRecord(
            handle=handle,
            operation=record.operation,
            status=status,
            created_at=record.created_at,
            enqueued_at=job.enqueued_at,
            started_at=job.started_at,
            ended_at=record.canceled_at if record.canceled_at is not None else job.ended_at,
            attempts=job.attempts,
            error=error if status is JobStatus.FAILED else None,
            media_type=media_type if status is JobStatus.FINISHED else None,
            from_cache=record.from_cache,
        )

    async def _consume(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                async with self._lanes:
                    if job.status is JobStatus.QUEUED and job.submission is not None:
                        await self._run(job, job.submission)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("embedded job %s failed unexpectedly", job.job_id)
                self._end(job, JobOutcome(error=JobError("internal", "internal error", 500)))

    async def _run(self, job: _Job, sub: Submission) -> None:
        waited_s = 0.0
        while True:
            if job.status is JobStatus.CANCELED:
                # Canceled while it waited for room or for its retry (it shows as queued then):
                # its image is already given back, so it must not run on from ``sub``.
                return
            job.status = JobStatus.STARTED
            job.started_at = self._clock()
            job.attempts += 1
            try:
                entry = await self._attempt(sub)
            except (Overloaded, NotReady) as exc:
                # Sync traffic has the pool's wait queue, or the pool is still starting: wait for
                # room (not an attempt lost), for at most one job timeout in all.
                job.attempts -= 1
                job.status = JobStatus.QUEUED
                waited_s += _OVERLOAD_WAIT_S
                if waited_s > self._settings.job_timeout_s:
                    self._end(job, JobOutcome(error=JobError.of(exc)))
                    return
                await asyncio.sleep(_OVERLOAD_WAIT_S)
                continue
            except FaceflowError as exc:
                retry = job.attempts
                if is_retryable(exc) and retry <= self._settings.max_retries:
                    self._counts["retried"] += 1
                    job.status = JobStatus.QUEUED
                    await asyncio.sleep(retry_wait_s(self._settings.retry_backoff_s, retry))
                    continue
                self._end(job, JobOutcome(error=JobError.of(exc)))
                return
            self._end(job, JobOutcome(entry=entry))
            return

    async def _attempt(self, sub: Submission) -> CacheEntry:
        """The job's result through the sync endpoints' cache-then-compute: in stages where its
        operation has them (an ID photo's cut-out cached apart, as the sync route does)."""
        staged = sub.spec.staged
        if staged is None:
            entry, _ = await self._compute.run(sub.key, sub.spec.task, sub.request)
        else:
            compute = self._compute
            entry, _ = await compute.produce(
                sub.key, lambda: staged(compute, sub.request, sub.digest)
            )
        return entry

    def _end(self, job: _Job, outcome: JobOutcome) -> None:
        job.outcome = outcome
        job.ended_at = self._clock()
        self._let_go(job)
        if outcome.error is None:
            job.status = JobStatus.FINISHED
            self._counts["finished"] += 1
            self._retire(job, self._settings.result_ttl_s)
        else:
            job.status = JobStatus.FAILED
            self._counts["failed"] += 1
            self._retire(job, self._settings.failure_ttl_s)

    def _retire(self, job: _Job, ttl_s: float) -> None:
        """Start the ended job's TTL and keep at most ``embedded_keep_finished`` ended jobs
        whose results hold at most ``embedded_results_max_bytes`` (an ID-photo sheet or a PNG is
        megabytes: 10,000 of them for a day's TTL outgrew the machine's memory)."""
        job.expires_at = self._clock() + ttl_s
        before = self._finished.get(job.job_id)
        if before is not None:
            self._release(before)
        entry = job.outcome.entry if job.outcome is not None else None
        job.result_bytes = len(entry.body) if entry is not None else 0
        self._finished[job.job_id] = job
        self._finished_bytes += job.result_bytes
        if job.owner is not None and job.result_bytes:
            kept = self._shares.setdefault(job.owner, _Share())
            kept.jobs[job] = None
            kept.total_bytes += job.result_bytes
        settings = self._settings
        while len(self._finished) > 1 and (  # the newest stays, whatever its size
            len(self._finished) > settings.embedded_keep_finished
            or self._finished_bytes > settings.embedded_results_max_bytes
        ):
            self._drop(next(iter(self._finished.values())))

    def _release(self, job: _Job) -> None:
        """Stop keeping the ended job's result (and counting it in its owner's share)."""
        if self._finished.get(job.job_id) is job:
            del self._finished[job.job_id]
            self._finished_bytes -= job.result_bytes
        owner = job.owner
        kept = self._shares.get(owner) if owner is not None else None
        if owner is not None and kept is not None and job in kept.jobs:
            del kept.jobs[job]
            kept.total_bytes -= job.result_bytes
            if not kept.jobs:
                del self._shares[owner]

    def _drop(self, job: _Job) -> None:
        """Forget the job and its result (a newer job of the same id is left alone)."""
        if self._jobs.get(job.job_id) is job:
            del self._jobs[job.job_id]
        self._release(job)

    def sweep(self) -> None:
        """Forget expired jobs and handles whose job is gone (also run every 30 s)."""
        for job in [j for j in self._jobs.values() if self._expired(j)]:
            self._drop(job)
        self._handles.purge(lambda record: record.job_id in self._jobs)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(_SWEEP_INTERVAL_S)
            self.sweep()
