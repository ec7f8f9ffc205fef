"""Metrics (service/metrics.py): requests, latencies and hits are written once per turn of the
event loop; what a scrape reads is what writing each one as it came would have given."""

from __future__ import annotations

import asyncio
import math
import threading

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from faceflow.cache.observer import CacheLevel
from faceflow.service.metrics import _LATENCY_BUCKETS, FLUSH_AFTER_S, Metrics, _observe_all
from tests.fixtures.live_server import Scrape
from tests.service.in_process import InProcess


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


def count_renders(
    metrics: Metrics,
    monkeypatch: pytest.MonkeyPatch,
    read: threading.Event | None = None,
    held: threading.Event | None = None,
) -> list[None]:
    """A list that grows by one each time ``metrics`` makes its exposition text (``read`` set
    once the first has read the figures, which it then returns only once ``held`` is set)."""
    renders: list[None] = []
    exposition = metrics._exposition

    def counted() -> bytes:
        renders.append(None)
        text = exposition()
        if read is not None and len(renders) == 1:
            read.set()
            if held is not None:
                held.wait(30)
        return text

    monkeypatch.setattr(metrics, "_exposition", counted)
    return renders


@pytest.mark.asyncio(loop_scope="session")
async def test_scrapes_asked_for_together_share_one_render(
    service_app: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each scrape rendered its own text, 2-11 ms of the API process's CPU (50 cache hits):
    # four connections asking for /metrics again and again took the CPU other clients needed.
    renders = count_renders(service_app.metrics, monkeypatch)
    async with service_app.client() as client:
        scrapes = await asyncio.gather(*(client.get("/metrics") for _ in range(16)))
    assert [s.status_code for s in scrapes] == [200] * 16
    assert len(renders) <= 2, "a render per scrape"
    assert len({s.text for s in scrapes}) == len(renders)


@pytest.mark.asyncio
async def test_a_scrape_never_reads_figures_older_than_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    metrics = Metrics()
    read, held = threading.Event(), threading.Event()
    renders = count_renders(metrics, monkeypatch, read, held)
    requests = "faceflow_http_requests_total"
    first = asyncio.create_task(metrics.scrape())
    await asyncio.to_thread(read.wait, 30)  # its render has read: the request below is not in it
    metrics.request_done("/v1/detect", "POST", 200, 0.002)
    # Asked for while the first's render still runs (held): joining it would miss the request.
    second = asyncio.create_task(metrics.scrape())  # after SCRAPE_EVERY_S, with the request
    await asyncio.sleep(0)  # the second scrape asks
    held.set()
    assert not Scrape((await first).decode()).has(requests, route="/v1/detect")
    assert Scrape((await second).decode()).value(requests, route="/v1/detect") == 1
    assert len(renders) == 2
    # Asked for one after the other, each scrape has its own render, the request in both.
    assert [
        Scrape((await metrics.scrape()).decode()).value(requests, route="/v1/detect")
        for _ in range(2)
    ] == [1, 1]
    assert len(renders) == 4


@pytest.mark.asyncio
async def test_a_render_that_fails_when_nobody_waits_is_not_left_unretrieved(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The render runs on when its scrapes have gone (shielded); one that then failed was a task
    # whose exception nobody retrieved, which asyncio logs with its traceback.
    metrics = Metrics()

    def fails() -> bytes:
        raise OSError("the multiprocess directory is gone")

    monkeypatch.setattr(metrics, "_exposition", fails)
    scrape = asyncio.create_task(metrics.scrape())
    await asyncio.sleep(0)  # the render begins
    render = metrics._next_scrape or metrics._last_scrape
    assert render is not None
    scrape.cancel()
    await asyncio.wait([render])
    assert not render._log_traceback  # retrieved: nothing logged
    assert isinstance(render.exception(), OSError)
