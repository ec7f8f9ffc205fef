"""Metrics (service/metrics.py): requests, latencies and hits are written once per turn of the
event loop; what a scrape reads is what writing each one as it came would have given."""

from __future__ import annotations

import asyncio
import math

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from faceflow.cache.observer import CacheLevel
from faceflow.service.metrics import _LATENCY_BUCKETS, FLUSH_AFTER_S, Metrics, _observe_all
from tests.fixtures.live_server import Scrape


@pytest.mark.parametrize(
    "values",
    [
        [0.0005],
        [0.001, 0.001, 0.0025],  # on a bucket's upper bound: that bucket, as observe() puts it
        [0.0011, 0.3, 0.3, 29.9, 30.0, 31.0, 1e9],  # past the last finite bound: +Inf
        [0.004 * i for i in range(1, 400)],
    ],
)
def test_observing_many_at_once_is_observing_each(values: list[float]) -> None:
    one_by_one, at_once = CollectorRegistry(), CollectorRegistry()
    each = Histogram("t", "t", ["route"], buckets=_LATENCY_BUCKETS, registry=one_by_one)
    many = Histogram("t", "t", ["route"], buckets=_LATENCY_BUCKETS, registry=at_once)
    for value in values:
        each.labels("/r").observe(value)
    _observe_all(many.labels("/r"), values)

    def samples(registry: CollectorRegistry) -> dict[str, float]:
        lines = generate_latest(registry).decode().splitlines()
        return {
            line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in lines
            if line and not line.startswith("#") and "_created" not in line
        }

    expected, got = samples(one_by_one), samples(at_once)
    assert expected.keys() == got.keys()
    for name, value in expected.items():
        assert math.isclose(got[name], value, rel_tol=1e-9), name


@pytest.mark.asyncio
async def test_counts_are_written_shortly_after_and_before_a_scrape() -> None:
    metrics = Metrics()
    requests = "faceflow_http_requests_total"
    labels = {"route": "/v1/detect", "method": "POST", "status": "200"}
    for _ in range(3):
        metrics.request_done("/v1/detect", "POST", 200, 0.002)
        metrics.hit(CacheLevel.MEMORY)
    await asyncio.sleep(0)
    # Not yet written: held for FLUSH_AFTER_S, over the turns it spans ...
    assert metrics.requests.labels("/v1/detect", "POST", "200")._value.get() == 0
    await asyncio.sleep(FLUSH_AFTER_S * 2)  # ... now they are
    assert metrics.requests.labels("/v1/detect", "POST", "200")._value.get() == 3
    metrics.request_done("/v1/detect", "POST", 200, 0.2)
    scrape = Scrape(metrics.render().decode())  # a scrape right away sees it too
    assert scrape.value(requests, **labels) == 4
    assert scrape.value("faceflow_cache_hits_total", level="memory") == 3
    assert scrape.value("faceflow_http_request_seconds_count", route="/v1/detect") == 4
    assert (
        scrape.value("faceflow_http_request_seconds_bucket", route="/v1/detect", le="0.0025") == 3
    )
    assert math.isclose(
        scrape.value("faceflow_http_request_seconds_sum", route="/v1/detect"), 0.206
    )


def test_without_an_event_loop_counts_are_written_at_once() -> None:
    metrics = Metrics()
    metrics.request_done("/healthz", "GET", 200, 0.001)
    assert metrics.requests.labels("/healthz", "GET", "200")._value.get() == 1


def test_a_method_an_api_does_not_use_is_counted_as_other() -> None:
    # Every method llhttp takes, on every path: 1,269 requests grew /metrics from 355 series
    # to 2,153, each scrape rendering them on the event loop.
    metrics = Metrics()
    for method in ("PROPFIND", "M-SEARCH", "MKCALENDAR", "GET"):
        metrics.request_done("/healthz", method, 405 if method != "GET" else 200, 0.001)

    scrape = Scrape(metrics.render().decode())
    requests = "faceflow_http_requests_total"
    assert scrape.value(requests, route="/healthz", method="other", status="405") == 3
    assert scrape.value(requests, route="/healthz", method="GET", status="200") == 1
    assert not scrape.has(requests, method="PROPFIND")


@pytest.mark.asyncio
async def test_a_scrape_made_beside_the_loop_reads_what_render_reads() -> None:
    metrics = Metrics()
    metrics.request_done("/v1/detect", "POST", 200, 0.002)
    beside = Scrape((await metrics.render_beside_the_loop()).decode())
    assert beside.value("faceflow_http_requests_total", route="/v1/detect", method="POST") == 1
