"""Admission control end to end: a full wait queue sheds load with 503 + Retry-After."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import httpx

from tests.fixtures.live_server import LiveServer
from tests.service.conftest import CLIENT_TIMEOUT_S
from tests.service.support import assert_error, fresh


async def test_overload_sheds_with_503_and_loses_nothing_accepted(
    constrained_server: LiveServer, testdata: Path
) -> None:
    # One inference process and one waiting slot; every upload is new, so none is a cache hit
    # or joins another's computation.
    photo = (testdata / "astronaut.jpg").read_bytes()
    uploads = [fresh(photo) for _ in range(20)]
    before = constrained_server.metrics()
    async with httpx.AsyncClient(
        base_url=constrained_server.url,
        timeout=CLIENT_TIMEOUT_S,
        limits=httpx.Limits(max_connections=len(uploads)),
    ) as http:
        responses = await asyncio.gather(
            *(http.post("/v1/analyze", content=upload) for upload in uploads)
        )
    after = constrained_server.metrics()

    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) == {200, 503}, statuses
    for response in responses:
        if response.status_code == 503:
            assert_error(response, 503, "overloaded")
            assert int(response.headers["Retry-After"]) >= 1
        else:
            report = response.json()
            assert response.headers["X-Cache"] == "miss"
            assert (report["width"], report["height"], report["face_count"]) == (512, 512, 1)
            assert report["faces"][0]["gender"]["label"] == "female"

    def delta(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    # Every accepted request was run once and answered; every refused one was counted.
    assert delta("faceflow_inferences_total", ok="true") == statuses[200]
    assert delta("faceflow_pool_rejected") == statuses[503]
    assert delta("faceflow_errors_total", code="overloaded") == statuses[503]
