"""The request context (a client that vanishes mid-upload is routine, not a server error; each
request counted under its route) and HEAD answered as GET (service/middleware.py)."""

from __future__ import annotations

import logging

import pytest
from starlette.types import Message, Receive, Scope, Send

from faceflow.service.app import WEB_PAGE_ROUTE
from faceflow.service.metrics import Metrics
from faceflow.service.middleware import MAX_LOGGED_PATH, RequestContext
from tests.fixtures.live_server import Scrape
from tests.service.in_process import InProcess, app_settings, running_app
from tests.service.support import assert_error

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


async def test_an_answer_cut_short_by_its_client_is_499_with_what_was_sent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def streams_then_sees_the_client_gone(scope: Scope, receive: Receive, send: Send) -> None:
        # What starlette's StreamingResponse does when the client leaves mid-answer: it stops
        # sending and returns.
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"x" * 1000, "more_body": True})

    async def nothing() -> Message:
        return {"type": "http.disconnect"}

    async def taken(message: Message) -> None:
        pass

    metrics = Metrics()
    scope: Scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/batch",
        "headers": [],
        "client": None,
    }
    with caplog.at_level(logging.INFO):
        await RequestContext(streams_then_sees_the_client_gone, metrics)(scope, nothing, taken)

    scrape = Scrape(metrics.render().decode())
    counted = "faceflow_http_requests_total"
    assert scrape.value(counted, route="unmatched", status="499") == 1
    assert scrape.value(counted, route="unmatched", status="200") == 0
    (line,) = [r for r in caplog.records if r.name == "faceflow.access"]
    assert line.status == 499  # type: ignore[attr-defined]
    assert line.cut_short == "cut short: 1000 bytes of a 200"  # type: ignore[attr-defined]
    assert "cut short: 1000 bytes of a 200" in line.getMessage()


async def test_a_head_answered_with_its_headers_is_whole_when_its_client_leaves() -> None:
    # curl -I on a web page file: the client leaves with the headers, the GET's file stream it
    # is answered as is cancelled, and each probe was counted 499.
    async def headers_then_the_client_gone(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def nothing() -> Message:
        return {"type": "http.disconnect"}

    async def taken(message: Message) -> None:
        pass

    metrics = Metrics()
    scope: Scope = {"type": "http", "method": "HEAD", "path": "/", "headers": [], "client": None}
    await RequestContext(headers_then_the_client_gone, metrics)(scope, nothing, taken)

    scrape = Scrape(metrics.render().decode())
    counted = "faceflow_http_requests_total"
    assert scrape.value(counted, method="HEAD", status="200") == 1
    assert scrape.value(counted, status="499") == 0


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


async def test_an_access_line_holds_at_most_the_start_of_a_long_path(
    service_app: InProcess, caplog: pytest.LogCaptureFixture
) -> None:
    """A path may be 64 KiB (the header limit): each 404 for one wrote a line that long."""
    path = "/a" * 10_000
    with caplog.at_level(logging.INFO, logger="faceflow.access"):
        async with service_app.client() as client:
            assert (await client.get(path)).status_code == 404

    lines = [r.getMessage() for r in caplog.records if r.name == "faceflow.access"]
    assert len(lines) == 1
    assert f" GET {path[:MAX_LOGGED_PATH]}…(+{20_000 - MAX_LOGGED_PATH} characters) 404" in lines[0]
    assert len(lines[0]) < MAX_LOGGED_PATH + 100


async def test_every_answer_says_its_content_type_is_not_to_be_sniffed(
    service_app: InProcess, face_jpeg: bytes
) -> None:
    async with service_app.client() as client:
        answers = [
            await client.post("/v1/detect", content=face_jpeg),  # a miss
            await client.post("/v1/detect", content=face_jpeg),  # a hit (the fast path)
            await client.post("/v1/detect", content=b"not an image"),
            await client.get("/healthz"),
            await client.get("/"),
            await client.get("/docs"),
        ]
    for answer in answers:
        assert answer.headers.get("x-content-type-options") == "nosniff", (
            answer.request.url,
            answer.status_code,
            answer.headers,
        )
    assert answers[1].headers["x-cache"] == "hit"
    page = answers[4].headers
    assert "frame-ancestors 'none'" in page["content-security-policy"]
    assert "script-src 'self';" in page["content-security-policy"]
    assert page["x-frame-options"] == "DENY"
    assert "content-security-policy" not in answers[0].headers  # the API's answers: no page


async def test_the_page_may_be_framed_by_the_origins_the_operator_names() -> None:
    """An intranet portal showing the page in a frame: frame-ancestors names it, and the
    X-Frame-Options header (which cannot) is left out."""
    portal = "https://portal.example.com"
    settings = app_settings(server={"web_page_frame_ancestors": [portal]})
    async with running_app(settings, ready=False) as app, app.client() as client:
        page = (await client.get("/")).headers
    assert page["content-security-policy"].endswith(f"frame-ancestors {portal}")
    assert "x-frame-options" not in page


async def test_head_answers_as_get_without_a_body(service_app: InProcess) -> None:
    # Uptime monitors probe with HEAD: the GET's status and headers, nothing after them.
    before = Scrape(service_app.metrics.render().decode())
    async with service_app.client() as client:
        for path in ("/healthz", "/v1/id-photo/specs", "/"):
            got, head = await client.get(path), await client.head(path)

            assert head.status_code == got.status_code == 200, path
            assert head.content == b"", path
            assert head.headers["content-type"] == got.headers["content-type"], path
            assert head.headers["content-length"] == str(len(got.content)), path
        missing = await client.head("/v1/jobs/nothing-here")
        wrong = await client.head("/v1/detect")  # a POST route: as for GET, 405 naming it
    after = Scrape(service_app.metrics.render().decode())

    assert (missing.status_code, missing.content) == (404, b"")
    assert (wrong.status_code, wrong.headers["Allow"]) == (405, "POST")
    counted = "faceflow_http_requests_total"
    probe = {"route": "/healthz", "method": "HEAD", "status": "200"}
    assert after.value(counted, **probe) == before.value(counted, **probe) + 1


@pytest.mark.parametrize("path", ["/index.html/", "/index.html////", "/css/app.css/", "/js/"])
async def test_a_path_with_a_slash_after_a_file_of_the_page_is_not_found(
    service_app: InProcess, path: str
) -> None:
    async with service_app.client() as client:
        response = await client.get(path)

    assert_error(response, 404, "not_found")


async def test_the_web_pages_files_are_counted_under_one_route_label(
    service_app: InProcess,
) -> None:
    page = {"route": WEB_PAGE_ROUTE, "method": "GET", "status": "200"}
    before = Scrape(service_app.metrics.render().decode())
    async with service_app.client() as client:
        for path in ("/", "/js/main.js", "/css/app.css"):
            assert (await client.get(path)).status_code == 200, path
    after = Scrape(service_app.metrics.render().decode())

    counted = "faceflow_http_requests_total"
    assert after.value(counted, **page) == before.value(counted, **page) + 3
