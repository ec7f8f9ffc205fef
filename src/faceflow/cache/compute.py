"""Cache-then-compute: the one path from a cache key to a result, for the routes and for jobs.

A result is looked up in the :class:`~faceflow.cache.tiered.ResultCache`; on a miss its task runs
in the inference pool, once for concurrent identical callers (and, with Redis, once across the
API nodes), and the finished body is stored. The sync endpoints and the embedded job runner both
come through here, so a job's result is a sync hit and a sync result finishes a job at once.

A :attr:`~faceflow.errors.FaceflowError.deterministic` failure (no face, a ``max_kb`` nothing
fits) is stored under the key as its success would be (:func:`~faceflow.cache.entry.failure_entry`)
and raised again, from the cache, to whoever asks for the same work: a repeat costs a lookup,
not the work. Every other failure (overload, a deadline, a crashed worker, a cancel, an
internal error) reaches the callers of that one computation only, and the next asks again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol, TypeVar

from faceflow.cache.entry import CacheEntry, failure_entry, failure_of
from faceflow.cache.tiered import CacheStatus, ResultCache
from faceflow.errors import FaceflowError, JsonScalar
from faceflow.runtime.context import WorkerContext
from faceflow.runtime.tasks import TaskOutput

Req = TypeVar("Req")

Task = Callable[[WorkerContext, Req], TaskOutput]
"""An inference task: runs in an inference process, the request → a finished body."""


class TaskPool(Protocol):
    """What cache-then-compute needs of the inference pool
    (:class:`~faceflow.runtime.pool.InferencePool`): run one task in a worker process."""

    async def run(self, fn: Task[Req], request: Req, /) -> TaskOutput: ...


class CachedCompute:
    """Results by cache key: from the cache, else computed once and stored.

    ``on_output`` sees the meta of every body computed here (the service records its stage
    timings); a hit was counted when it was computed, so it is not seen again.
    """

    def __init__(
        self,
        cache: ResultCache,
        pool: TaskPool,
        on_output: Callable[[Mapping[str, JsonScalar]], None] | None = None,
    ) -> None:
        self._cache = cache
        self._pool = pool
        self._on_output = on_output

    @property
    def cache(self) -> ResultCache:
        return self._cache

    async def run(self, key: str, task: Task[Req], request: Req) -> tuple[CacheEntry, CacheStatus]:
        """The entry under ``key``, or ``task(request)``'s output (run in the pool) stored under
        it; raises what the task or the pool raises (Overloaded, DeadlineExceeded, …), and the
        deterministic failure stored under ``key`` (:func:`raise_failure`)."""

        async def produce() -> TaskOutput:
            return await self._pool.run(task, request)

        return await self.produce(key, produce)

    async def run_uncached(self, task: Task[Req], request: Req) -> TaskOutput:
        """``task(request)`` run in the pool, its output not stored: a stage of a result that
        :meth:`produce` stores (an ID photo's render from its cached cut-out)."""
        return await self._pool.run(task, request)

    async def produce(
        self, key: str, produce: Callable[[], Awaitable[TaskOutput]], *, missed: bool = False
    ) -> tuple[CacheEntry, CacheStatus]:
        """The entry under ``key``, or ``produce()``'s output stored under it, for a result that
        takes more than one task (an ID photo: its matte, then its render). ``missed``: the caller
        looked ``key`` up itself and missed (the hot path), so the cache does not look again
        (:meth:`ResultCache.get_or_compute`). A deterministic failure of ``produce()`` is stored
        too, and raised (:func:`raise_failure`) to this caller and every later one."""

        async def compute() -> CacheEntry:
            try:
                output = await produce()
            except FaceflowError as exc:
                if not exc.deterministic:
                    raise
                return failure_entry(exc)
            if self._on_output is not None:
                self._on_output(output.meta)
            return CacheEntry(output.media_type, output.body, output.meta)

        entry, status = await self._cache.get_or_compute(key, compute, missed=missed)
        raise_failure(entry, status)
        return entry, status


def cached_failure(entry: CacheEntry, status: CacheStatus) -> FaceflowError | None:
    """The error ``entry`` holds if it is a cached failure, marked with how the cache gave it
    (``status``, for the answer's ``X-Cache``); None for any other entry. Whoever reads an entry
    from the cache itself asks this (or :func:`raise_failure`) before using it as a result."""
    error = failure_of(entry)
    if error is not None:
        error.cache_status = status.value
    return error


def raise_failure(entry: CacheEntry, status: CacheStatus) -> None:
    """Raise :func:`cached_failure`'s error, if ``entry`` holds one."""
    error = cached_failure(entry, status)
    if error is not None:
        raise error
