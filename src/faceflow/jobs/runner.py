"""The interface the service uses for jobs, whichever runner is behind it."""

from __future__ import annotations

import asyncio
from typing import Protocol

from faceflow.cache.compute import CachedCompute
from faceflow.cache.entry import CacheEntry
from faceflow.config import Settings
from faceflow.errors import JsonScalar
from faceflow.jobs.embedded import EmbeddedRunner
from faceflow.jobs.forwarding import ForwardingRunner
from faceflow.jobs.handles import HandleSigner
from faceflow.jobs.peers import ANSWER_SLACK_BYTES, HoldAnswer, PeerGroup, new_origin
from faceflow.jobs.records import JobRecord
from faceflow.operations.registry import Submission
from faceflow.runtime.budget import ByteBudget


class JobRunner(Protocol):
    """Submit, inspect, fetch and cancel jobs by handle. ``owner`` is the caller's API key digest
    (None with auth off); a handle is visible only to the owner that created it.

    Every method raises :class:`~faceflow.errors.NotFound` for an unknown, expired or foreign
    handle, and :class:`~faceflow.errors.Unavailable` when the queue cannot be reached.
    """

    backend: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def submit(self, submission: Submission, owner: str | None) -> JobRecord:
        """Queue the work (or attach to identical queued/finished work) and name it with a new
        handle. A cached result finishes the job at once. Raises QueueFull when the queue is full.
        """
        ...

    async def status(self, handle: str, owner: str | None) -> JobRecord: ...

    async def result(self, handle: str, owner: str | None) -> tuple[JobRecord, CacheEntry]:
        """The finished job's result; a failed job raises its error; an unfinished one Conflict."""
        ...

    async def cancel(self, handle: str, owner: str | None) -> JobRecord:
        """Cancel a queued job (Conflict once it started). Work shared by several handles keeps
        running for the others; only this handle is canceled."""
        ...

    def stats(self) -> dict[str, JsonScalar]:
        """Settings and event counts since start (``submitted``, ``finished``, …) for /metrics."""
        ...

    async def queue_depth(self) -> int:
        """Jobs waiting for a worker. Raises Unavailable when the queue cannot be reached."""
        ...


def build_runner(
    settings: Settings,
    compute: CachedCompute,
    budget: ByteBudget | None = None,
    lanes: asyncio.Semaphore | None = None,
    peers: PeerGroup | None = None,
    hold: HoldAnswer | None = None,
) -> JobRunner:
    """The RQ runner when ``jobs.redis_url`` is set (it only reads ``compute``'s cache: its
    workers compute), else the embedded one, which runs jobs through ``compute`` like the sync
    endpoints, whose queued images take from ``budget`` (the API process's upload budget) and
    whose running jobs hold ``lanes`` (shared with the batches: faceflow.runtime.lanes). With
    ``peers`` (one of several HTTP workers), the embedded runner answers for the other workers'
    jobs too (:mod:`faceflow.jobs.forwarding`), reading their answers within ``hold`` (the API
    process's answer budget)."""
    if settings.jobs.redis_url:
        from faceflow.jobs.rq_runner import RqRunner  # an embedded server never loads RQ

        return RqRunner(settings, compute.cache)
    if peers is None:
        return EmbeddedRunner(settings, compute, budget=budget, lanes=lanes)
    origin = new_origin()
    signer = HandleSigner(peers.key, origin)
    local = EmbeddedRunner(settings, compute, budget=budget, lanes=lanes, signer=signer)
    max_answer_bytes = settings.limits.answer_budget_bytes + ANSWER_SLACK_BYTES
    return ForwardingRunner(local, signer, origin, peers, max_answer_bytes, hold)
