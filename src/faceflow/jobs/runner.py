"""The interface the service uses for jobs, whichever runner is behind it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from faceflow.cache.entry import CacheEntry
from faceflow.cache.tiered import CacheStatus, ResultCache
from faceflow.config import Settings
from faceflow.errors import JsonScalar
from faceflow.jobs.records import JobRecord
from faceflow.operations.registry import Submission
from faceflow.runtime.budget import ByteBudget
from faceflow.runtime.context import WorkerContext
from faceflow.runtime.tasks import TaskOutput

RunCached = Callable[
    [bytes, str, dict[str, JsonScalar], Callable[[WorkerContext, Any], TaskOutput], Any],
    Awaitable[tuple[CacheEntry, CacheStatus]],
]
"""``Services.cached``: the sync endpoints' cache-then-pool path, which embedded jobs share."""


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
    cache: ResultCache,
    run_cached: RunCached,
    budget: ByteBudget | None = None,
) -> JobRunner:
    """The RQ runner when ``jobs.redis_url`` is set, else the embedded one, whose queued images
    take from ``budget`` (the API process's upload budget)."""
    if settings.jobs.redis_url:
        from faceflow.jobs.rq_runner import RqRunner

        return RqRunner(settings, cache)
    from faceflow.jobs.embedded import EmbeddedRunner

    return EmbeddedRunner(settings, cache, run_cached, budget=budget)
