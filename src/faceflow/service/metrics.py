"""Prometheus metrics of the API, in a registry of its own (one per app instance).

With several uvicorn workers (``server.http_workers`` > 1) a scrape reaches whichever worker
accepts it, so each worker's own counters would jump between scrapes. ``faceflow serve`` then
sets ``PROMETHEUS_MULTIPROC_DIR`` (a fresh directory in /dev/shm, removed at exit) before the
workers start: prometheus_client keeps every value in a memory-mapped file there, and any
worker's ``/metrics`` answers for all of them (counters and histograms summed, pool gauges summed
over live workers, the breaker gauge their maximum).
"""

from __future__ import annotations

import asyncio
import math
import os
from bisect import bisect_left
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from faceflow.cache.observer import CacheLevel
from faceflow.errors import FaceflowError, JsonScalar
from faceflow.runtime.pool import PoolStats

if TYPE_CHECKING:
    from faceflow.jobs.runner import JobRunner
    from faceflow.service.answers import AnswerBudget
    from faceflow.service.upload import BodyLimits

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

JOB_EVENTS = (
    "submitted",
    "finished",
    "failed",
    "canceled",
    "retried",
    "deduplicated",
    "from_cache",
    "forwarded",
)
# A scrape waits at most this long for the job queue's length (Redis may be down or hung).
_QUEUE_DEPTH_TIMEOUT_S = 0.5
FLUSH_AFTER_S = 0.005
"""How long counts wait to be written into the shared figures (:meth:`Metrics._flush_soon`)."""

SCRAPE_EVERY_S = 0.25
"""The shortest time between two renders of ``/metrics`` by one process (:meth:`Metrics.scrape`):
Prometheus scrapes every few seconds; a client asking for it again and again waits its turn."""

_CHILDREN_MEMO = 1024
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})
"""The methods requests are counted under by name (those an HTTP API uses); any other: ``other``."""


class Metrics:
    """Every counter faceflow exports; also the cache's observer."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "faceflow_http_requests", "HTTP requests", ["route", "method", "status"], registry=r
        )
        self.latency = Histogram(
            "faceflow_http_request_seconds",
            "HTTP request latency",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter("faceflow_errors", "error responses by code", ["code"], registry=r)
        self.send_timeouts = Counter(
            "faceflow_send_timeouts",
            "connections dropped for taking none of their answer for server.send_timeout_s",
            registry=r,
        )
        self.connections_given_way = Counter(
            "faceflow_connections_given_way",
            "connections closed at server.max_connections for a new one (idle, or stalled)",
            registry=r,
        )
        self.cache_hits = Counter("faceflow_cache_hits", "cache hits", ["level"], registry=r)
        self.cache_misses = Counter("faceflow_cache_misses", "cache misses", registry=r)
        self.singleflight_joins = Counter(
            "faceflow_singleflight_joins",
            "requests that waited for an identical request's computation",
            registry=r,
        )
        self.redis_errors = Counter(
            "faceflow_redis_errors", "failed or timed-out Redis calls", ["op"], registry=r
        )
        self.breaker_open = Gauge(
            "faceflow_redis_breaker_open",
            "1 while the Redis circuit breaker is open",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.inferences = Counter(
            "faceflow_inferences", "tasks run by the inference pool", ["task", "ok"], registry=r
        )
        self.task_seconds = Histogram(
            "faceflow_task_seconds",
            "time of one pool task, dispatch to result",
            ["task"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.stage_seconds = Histogram(
            "faceflow_stage_seconds",
            "time of one pipeline stage inside an inference process (detect = YuNet, "
            "attributes = dlib alignment + age + gender, matte = u2netp)",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.pool_waiting = self._pool_gauge("faceflow_pool_waiting", "requests waiting")
        self.pool_in_flight = self._pool_gauge("faceflow_pool_in_flight", "requests running")
        self.pool_ready = self._pool_gauge("faceflow_pool_ready_workers", "warmed-up workers")
        self.pool_rejected = self._pool_gauge(
            "faceflow_pool_rejected", "requests shed with 503 since start"
        )
        self.pool_replaced = self._pool_gauge(
            "faceflow_pool_workers_replaced", "crashed workers replaced since start"
        )
        self.rate_limited = Counter(
            "faceflow_rate_limited", "requests refused with 429", registry=r
        )
        self.jobs = Gauge(
            "faceflow_jobs",
            "job events since start in this server's runner: submitted, finished, failed, "
            "canceled, retried (embedded runner); submitted, deduplicated, from_cache (Redis "
            "queue, whose outcomes the workers record)",
            ["event"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.jobs_queued = Gauge(
            "faceflow_jobs_queued",
            "jobs waiting for a worker: the Redis queue's length, or the embedded queue's "
            "(the longest, with several HTTP workers)",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.upload_bytes_held = self._pool_gauge(
            "faceflow_upload_bytes_held",
            "request bodies (and queued embedded-job images) held against "
            "limits.upload_budget_bytes",
        )
        self.uploads_refused = self._pool_gauge(
            "faceflow_uploads_refused",
            "uploads refused with 503 overloaded for the upload budget since start",
        )
        self.uploads_given_way = self._pool_gauge(
            "faceflow_uploads_given_way",
            "request bodies cut with 408 since start: too slow to arrive within "
            "server.body_timeout_s while another upload needed the room held for them",
        )
        self.answer_bytes_held = self._pool_gauge(
            "faceflow_answer_bytes_held",
            "answer bodies over 64 KiB held while their clients take them, against "
            "limits.answer_budget_bytes",
        )
        self.answers_refused = self._pool_gauge(
            "faceflow_answers_refused",
            "answers refused with 503 overloaded for the answer budget since start",
        )
        self.answers_given_way = self._pool_gauge(
            "faceflow_answers_given_way",
            "answers cut (connection closed) since start: their client had taken no slice for "
            "over a second while another client's answer needed the room held for them",
        )
        self._pool_stats: Callable[[], PoolStats] | None = None
        self._uploads: BodyLimits | None = None
        self._answers: AnswerBudget | None = None
        self._jobs: JobRunner | None = None
        # Label children resolved once: ``labels()`` takes a lock and rebuilds its key from
        # strings on every call, as much CPU as the increments themselves on a cache hit.
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._hit_children = {
            level: self.cache_hits.labels(level.value)
            for level in (CacheLevel.MEMORY, CacheLevel.REDIS)
        }
        # Requests, latencies and hits counted in this turn of the event loop, written at its
        # end (:meth:`flush`).
        self._counted: dict[Counter, int] = {}
        self._observed: dict[Histogram, list[float]] = {}
        self._flush_pending = False
        # The render of /metrics not begun yet, shared by every scrape asked for meanwhile, and
        # the last one begun (held here so that it runs on when its scrapes have all gone).
        self._next_scrape: asyncio.Task[bytes] | None = None
        self._last_scrape: asyncio.Task[bytes] | None = None
        self._last_scrape_at = -math.inf

    def _pool_gauge(self, name: str, documentation: str) -> Gauge:
        return Gauge(name, documentation, registry=self.registry, multiprocess_mode="livesum")

    @property
    def multiprocess_dir(self) -> str | None:
        """Where the workers' values are shared, when there are several (see the module doc)."""
        return os.environ.get(MULTIPROC_ENV) or None

    def request_done(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request under its route template and time it. A method HTTP
        does not define for resources (llhttp takes 46, from ``PROPFIND`` to ``M-SEARCH``) is
        counted as ``other``: one pass of them over the paths grew /metrics sixfold."""
        if method not in _METHODS:
            method = "other"
        memo = (route, method, status)
        children = self._request_children.get(memo)
        if children is None:
            children = (
                self.requests.labels(route, method, str(status)),
                self.latency.labels(route),
            )
            # Templates and statuses are few, but the method is the client's: stay bounded.
            if len(self._request_children) >= _CHILDREN_MEMO:
                self._request_children.clear()
            self._request_children[memo] = children
        counted = self._counted
        counted[children[0]] = counted.get(children[0], 0) + 1
        observed = self._observed.get(children[1])
        if observed is None:
            self._observed[children[1]] = [seconds]
        else:
            observed.append(seconds)
        self._flush_soon()

    def _flush_soon(self) -> None:
        """Write the counts :data:`FLUSH_AFTER_S` after the first of them: one write per value
        changed meanwhile, where each request and hit wrote its own (with several HTTP workers,
        each write is a locked store into the shared file: ≈ 5 µs of a cache hit's CPU for its
        four). Not at each turn's end: at 200 connections a turn holds a few requests, and the
        flush's own 3.9 µs was paid a turn. A scrape answered by this worker flushes first; one
        answered by another worker sees this one's counts as of at most that long ago (a
        Prometheus scrape comes every few seconds)."""
        if self._flush_pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop (a script counting by hand): write now
            self.flush()
            return
        self._flush_pending = True
        loop.call_later(FLUSH_AFTER_S, self.flush)

    def flush(self) -> None:
        """Write the counts held since the last flush."""
        self._flush_pending = False
        counted, self._counted = self._counted, {}
        observed, self._observed = self._observed, {}
        for counter, n in counted.items():
            counter.inc(n)
        for histogram, values in observed.items():
            _observe_all(histogram, values)

    def bind_pool(self, stats: Callable[[], PoolStats]) -> None:
        """Where the pool gauges come from; read at each scrape (:meth:`refresh_pool`)."""
        self._pool_stats = stats

    def bind_uploads(self, limits: BodyLimits) -> None:
        """Where the upload gauges come from; read with the pool's (:meth:`refresh_pool`)."""
        self._uploads = limits

    def bind_answers(self, budget: AnswerBudget) -> None:
        """Where the answer gauges come from; read with the pool's (:meth:`refresh_pool`)."""
        self._answers = budget

    def refresh_pool(self) -> None:
        """Copy the pool's and the upload budget's current figures into their gauges. A scrape
        does it for the worker it reaches; with several workers each also does it every second
        (the app's lifespan), so the others' figures are at most that old."""
        if (uploads := self._uploads) is not None:
            self.upload_bytes_held.set(uploads.budget.used_bytes)
            self.uploads_refused.set(uploads.budget.refused)
            self.uploads_given_way.set(uploads.given_way)
        if (answers := self._answers) is not None:
            self.answer_bytes_held.set(answers.used_bytes)
            self.answers_refused.set(answers.refused)
            self.answers_given_way.set(answers.given_way)
        if self._pool_stats is None:
            return
        stats = self._pool_stats()
        self.pool_waiting.set(stats.waiting)
        self.pool_in_flight.set(stats.in_flight)
        self.pool_ready.set(stats.ready_workers)
        self.pool_rejected.set(stats.rejected)
        self.pool_replaced.set(stats.replaced)

    def bind_jobs(self, runner: JobRunner) -> None:
        self._jobs = runner

    async def refresh_jobs(self) -> None:
        """Copy the job runner's counts and queue length into their gauges. An unreachable
        queue keeps the last length (the runner logs why)."""
        if self._jobs is None:
            return
        stats = self._jobs.stats()
        for event in JOB_EVENTS:
            if isinstance(count := stats.get(event), int):
                self.jobs.labels(event).set(count)
        try:
            async with asyncio.timeout(_QUEUE_DEPTH_TIMEOUT_S):
                self.jobs_queued.set(await self._jobs.queue_depth())
        except (TimeoutError, FaceflowError):
            pass

    def process_exiting(self) -> None:
        """Drop this worker's live gauges from the shared figures (a no-op with one worker)."""
        self.flush()
        if (directory := self.multiprocess_dir) is not None:
            mark_process_dead(os.getpid(), directory)  # type: ignore[no-untyped-call]

    def observe_stages(self, meta: Mapping[str, JsonScalar]) -> None:
        """Record the ``ms_<stage>`` timings a task reported."""
        for name, value in meta.items():
            if name.startswith("ms_") and isinstance(value, int | float):
                self.stage_seconds.labels(name[3:]).observe(value / 1000)

    def task_done(self, name: str, seconds: float, ok: bool) -> None:
        self.inferences.labels(name, "true" if ok else "false").inc()
        self.task_seconds.labels(name).observe(seconds)

    def render(self) -> bytes:
        self.flush()
        self.refresh_pool()
        return self._exposition()

    async def render_beside_the_loop(self) -> bytes:
        """:meth:`render`, its text made in a thread: tens of milliseconds of the event loop
        with a few thousand series."""
        self.flush()
        self.refresh_pool()
        return await asyncio.to_thread(self._exposition)

    async def scrape(self) -> bytes:
        """The answer of ``/metrics``: the job gauges refreshed and the text made beside the
        loop (:meth:`render_beside_the_loop`), once for all the scrapes asked for before it
        begins, and at most once every :data:`SCRAPE_EVERY_S`. A render cost 2 ms of the API
        process's CPU at start, 12-13 ms once a client had sent each path each method (168 →
        880 series), and each scrape made its own: four connections asking for nothing else
        took 52-99% of a core and other clients' /healthz 9-22 ms at the median (now 10% and
        1.4 ms). A scrape never reads figures older than itself: it shares only a render that
        begins after it was asked for."""
        render = self._next_scrape
        if render is None or render.get_loop() is not asyncio.get_running_loop():
            render = self._next_scrape = asyncio.create_task(self._scrape_in_turn())
            # A render that failed after every scrape waiting on it had gone: its error was
            # theirs, not a task's never retrieved (which asyncio would log).
            render.add_done_callback(_retrieved)
        # Shielded: a client that leaves does not cancel the render the others wait for.
        return await asyncio.shield(render)

    async def _scrape_in_turn(self) -> bytes:
        loop = asyncio.get_running_loop()
        if (wait := self._last_scrape_at + SCRAPE_EVERY_S - loop.time()) > 0:
            await asyncio.sleep(wait)
        # Begun: a scrape asked for from now on may count what this one does not hold.
        self._last_scrape, self._next_scrape = self._next_scrape, None
        self._last_scrape_at = loop.time()
        await self.refresh_jobs()
        return await self.render_beside_the_loop()

    def _exposition(self) -> bytes:
        directory = self.multiprocess_dir
        if directory is None:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=directory)  # type: ignore[no-untyped-call]
        return generate_latest(merged)

    # CacheObserver
    def hit(self, level: CacheLevel, /) -> None:
        child = self._hit_children[level]
        self._counted[child] = self._counted.get(child, 0) + 1
        self._flush_soon()

    def miss(self) -> None:
        self.cache_misses.inc()

    def joined(self) -> None:
        self.singleflight_joins.inc()

    def breaker_changed(self, is_open: bool, /) -> None:
        self.breaker_open.set(1 if is_open else 0)

    def redis_error(self, op: str, /) -> None:
        self.redis_errors.labels(op).inc()


def _observe_all(histogram: Histogram, values: list[float]) -> None:
    """``histogram.observe(v)`` for every ``v``, with one write per bucket and one to the sum
    (prometheus_client's own ``observe`` writes the sum and a bucket for each value)."""
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(values) == 1:
        for value in values:  # another prometheus_client: its own way
            histogram.observe(value)
        return
    counts: dict[int, int] = {}
    for value in values:
        # observe()'s bucket: the first whose upper bound is >= the value (the last is +Inf)
        at = bisect_left(bounds, value)
        counts[at] = counts.get(at, 0) + 1
    total.inc(sum(values))
    for at, n in counts.items():
        buckets[at].inc(n)


def _retrieved(task: asyncio.Task[bytes]) -> None:
    if not task.cancelled():
        task.exception()
