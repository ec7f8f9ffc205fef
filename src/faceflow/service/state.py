"""What one API process holds while it runs, built in the app's lifespan and torn down with it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from starlette.requests import Request

from faceflow.cache.compute import CachedCompute
from faceflow.cache.entry import CacheEntry
from faceflow.cache.tiered import CacheStatus, ResultCache
from faceflow.config import Settings
from faceflow.errors import NotReady
from faceflow.jobs.runner import JobRunner
from faceflow.runtime.budget import ByteBudget
from faceflow.runtime.context import WorkerContext
from faceflow.runtime.lanes import Lanes
from faceflow.runtime.pool import InferencePool
from faceflow.runtime.tasks import TaskOutput
from faceflow.service.answers import AnswerBudget
from faceflow.service.examples import ExamplePhoto, ExampleThumbnails
from faceflow.service.metrics import Metrics
from faceflow.service.security import ApiKeys, KeyFailures, RateLimit


@dataclass(slots=True)
class Services:
    settings: Settings
    metrics: Metrics
    pool: InferencePool[WorkerContext]
    cache: ResultCache
    compute: CachedCompute
    """Cache-then-compute over ``cache`` and ``pool``, shared with the embedded job runner."""
    api_keys: ApiKeys
    rate_limit: RateLimit | None
    key_failures: KeyFailures | None
    """``server.key_failure_limit`` (None with API keys off): missing or wrong keys per address."""
    thumbnails: ExampleThumbnails
    """The example photos' thumbnails, made by ``pool`` once it is ready."""
    upload_budget: ByteBudget | None = None
    """Upload bytes this process holds (bodies being read and answered, queued embedded jobs)."""
    answer_budget: AnswerBudget | None = None
    """Answer bytes this process holds while their clients take them (:mod:`.answers`)."""
    start_up_error: str | None = None
    """Why the inference processes could not start, for /readyz; None while starting or ready."""
    jobs: JobRunner | None = None
    """The job runner (embedded, or RQ with ``jobs.redis_url``); set once the lifespan starts it."""
    examples: tuple[ExamplePhoto, ...] = ()
    """The example photos that were pulled and verify, read once at start-up."""
    lanes: Lanes = field(default_factory=lambda: Lanes(1))
    """The inference processes queued-up work (batches, embedded jobs) may hold at once:
    :func:`faceflow.runtime.lanes.background_lanes` of the pool's processes."""

    async def cached_output(
        self, key: str, produce: Callable[[], Awaitable[TaskOutput]], *, missed: bool = False
    ) -> tuple[CacheEntry, CacheStatus]:
        """The entry under ``key``, or ``produce()``'s output stored under it (once, shared):
        :meth:`CachedCompute.produce`, for results of several trips to the pool. ``missed``: the
        caller looked ``key`` up and missed, so it is not looked up again."""
        return await self.compute.produce(key, produce, missed=missed)


class Current:
    """The running :class:`Services` (None before the lifespan starts and after it ends), for
    the ASGI layers in front of FastAPI: one attribute read per request, where reading
    ``app.state`` goes through starlette's ``State.__getattr__`` (1–2 µs of a cache hit)."""

    __slots__ = ("services",)

    def __init__(self) -> None:
        self.services: Services | None = None


def services_of(request: Request) -> Services:
    services: Services | None = getattr(request.app.state, "services", None)
    if services is None:
        raise NotReady("the service is starting", retry_after_s=1)
    return services
