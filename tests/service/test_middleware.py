"""The request context: a client that vanishes mid-upload is routine, not a server error."""

from __future__ import annotations

import logging

import pytest

from tests.fixtures.live_server import Scrape
from tests.service.in_process import InProcess

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.mark.parametrize(
    ("path", "route"),
    [
        # Answered by the cache-hit fast path in front of FastAPI, then by the routes.
        ("/v1/detect", "/v1/detect"),
        ("/v1/id-photo", "/v1/id-photo"),
        ("/v1/batch", "/v1/batch"),
        ("/v1/jobs", "/v1/jobs"),
    ],
)
async def test_client_gone_mid_upload_is_499_at_info(
    service_app: InProcess, caplog: pytest.LogCaptureFixture, path: str, route: str
) -> None:
    before = Scrape(service_app.metrics.render().decode())
    with caplog.at_level(logging.INFO):
        sent = await service_app.raw(
            "POST",
            path,
            [(b"content-type", b"image/jpeg"), (b"content-length", b"100000")],
            [{"type": "http.request", "body": b"\xff\xd8" + b"\x00" * 1000, "more_body": True}],
            query=b"operation=detect" if path == "/v1/jobs" else b"",
        )
    after = Scrape(service_app.metrics.render().decode())

    assert not [m for m in sent if m["type"] == "http.response.body" and m.get("body")]
    counted = "faceflow_http_requests_total"
    assert after.value(counted, route=route, status="499") == (
        before.value(counted, route=route, status="499") + 1
    )
    assert after.value(counted, route=route, status="500") == before.value(
        counted, route=route, status="500"
    )
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], [
        r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING
    ]
    access = [r for r in caplog.records if r.name == "faceflow.access" and r.status == 499]  # type: ignore[attr-defined]
    assert len(access) == 1
    assert access[0].levelno == logging.INFO


async def test_an_error_line_of_the_access_log_names_its_code(
    service_app: InProcess, caplog: pytest.LogCaptureFixture, face_jpeg: bytes
) -> None:
    with caplog.at_level(logging.INFO, logger="faceflow.access"):
        async with service_app.client() as client:
            await client.post("/v1/detect", content=face_jpeg, params={"threshold": 5})
            await client.get("/healthz")

    lines = [r.getMessage() for r in caplog.records if r.name == "faceflow.access"]
    assert any(" POST /v1/detect 400 invalid_parameter " in line for line in lines), lines
    assert any(line.split()[2:4] == ["/healthz", "200"] for line in lines), lines
