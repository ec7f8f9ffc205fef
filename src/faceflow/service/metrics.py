"""Prometheus metrics of one API process, in a registry of its own (one per app instance)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from faceflow.cache.observer import CacheLevel
from faceflow.errors import JsonScalar
from faceflow.runtime.pool import PoolStats

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


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
            "faceflow_redis_breaker_open", "1 while the Redis circuit breaker is open", registry=r
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
        self.pool_waiting = Gauge("faceflow_pool_waiting", "requests waiting", registry=r)
        self.pool_in_flight = Gauge("faceflow_pool_in_flight", "requests running", registry=r)
        self.pool_ready = Gauge("faceflow_pool_ready_workers", "warmed-up workers", registry=r)
        self.pool_rejected = Gauge(
            "faceflow_pool_rejected", "requests shed with 503 since start", registry=r
        )
        self.pool_replaced = Gauge(
            "faceflow_pool_workers_replaced", "crashed workers replaced since start", registry=r
        )
        self.rate_limited = Counter(
            "faceflow_rate_limited", "requests refused with 429", registry=r
        )

    def bind_pool(self, stats: Callable[[], PoolStats]) -> None:
        """Read the pool's gauges at scrape time rather than on every change."""
        self.pool_waiting.set_function(lambda: stats().waiting)
        self.pool_in_flight.set_function(lambda: stats().in_flight)
        self.pool_ready.set_function(lambda: stats().ready_workers)
        self.pool_rejected.set_function(lambda: stats().rejected)
        self.pool_replaced.set_function(lambda: stats().replaced)

    def observe_stages(self, meta: Mapping[str, JsonScalar]) -> None:
        """Record the ``ms_<stage>`` timings a task reported."""
        for name, value in meta.items():
            if name.startswith("ms_") and isinstance(value, int | float):
                self.stage_seconds.labels(name[3:]).observe(value / 1000)

    def task_done(self, name: str, seconds: float, ok: bool) -> None:
        self.inferences.labels(name, "true" if ok else "false").inc()
        self.task_seconds.labels(name).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    # CacheObserver
    def hit(self, level: CacheLevel, /) -> None:
        self.cache_hits.labels(level.value).inc()

    def miss(self) -> None:
        self.cache_misses.inc()

    def joined(self) -> None:
        self.singleflight_joins.inc()

    def breaker_changed(self, is_open: bool, /) -> None:
        self.breaker_open.set(1 if is_open else 0)

    def redis_error(self, op: str, /) -> None:
        self.redis_errors.labels(op).inc()
