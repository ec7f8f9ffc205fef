"""CORS for a page on another origin (server.cors_origins): preflights answered, and every header
faceflow sets for its clients readable there (service/edge.py EXPOSED_HEADERS)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from starlette.types import Message

import faceflow.service
from faceflow.service.edge import EXPOSED_HEADERS
from tests.service.in_process import InProcess, app_settings, running_app
from tests.service.support import assert_error

ORIGIN = "https://app.example"
# Headers a client sends, named in the service's code; the others it names are answers' headers.
REQUEST_HEADERS = {"X-API-Key"}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def cors_app() -> AsyncIterator[InProcess]:
    """The app with one allowed origin, shared by the module's tests: they only ask for
    preflights and /v1/info, which change nothing an answer depends on (no rate limit, no keys),
    so an app of their own each started an inference process for nothing."""
    settings = app_settings(server={"cors_origins": [ORIGIN]})
    async with running_app(settings, ready=False) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="session")
async def client(cors_app: InProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with cors_app.client() as http:
        yield http


def test_every_header_faceflow_sets_for_clients_is_exposed() -> None:
    # A page on another origin reads only the headers listed: without X-Compliance and X-Source
    # it could not tell a refused ID photo from a good one (they were not listed).
    package = Path(faceflow.service.__file__).parent
    named = {
        name
        for path in package.rglob("*.py")
        for name in re.findall(r'"(X-[A-Za-z-]+)"', path.read_text(encoding="utf-8"))
    }
    answers = named - REQUEST_HEADERS
    assert answers, "no header names found in faceflow.service"
    assert sorted(answers - set(EXPOSED_HEADERS)) == []
    assert {"Location", "Retry-After", "Server-Timing"} <= set(EXPOSED_HEADERS)


@pytest.mark.asyncio(loop_scope="session")
async def test_a_page_on_an_allowed_origin_is_answered_with_the_headers_exposed(
    client: httpx.AsyncClient,
) -> None:
    preflight = await client.options(
        "/v1/id-photo",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    answer = await client.get("/v1/info", headers={"Origin": ORIGIN})
    foreign = await client.get("/v1/info", headers={"Origin": "https://elsewhere.example"})

    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert answer.headers["access-control-allow-origin"] == ORIGIN
    exposed = {
        name.strip().lower() for name in answer.headers["access-control-expose-headers"].split(",")
    }
    assert {name.lower() for name in EXPOSED_HEADERS} <= exposed
    assert "access-control-allow-origin" not in foreign.headers


@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.parametrize(
    ("origin", "method", "refused"),
    [
        ("https://elsewhere.example", "POST", "origin"),
        (ORIGIN, "PUT", "method"),
    ],
)
async def test_a_refused_preflight_is_a_json_error_with_its_code(
    client: httpx.AsyncClient, origin: str, method: str, refused: str
) -> None:
    # It was starlette's text/plain "Disallowed CORS origin", with no code to tell it by.
    preflight = await client.options(
        "/v1/detect", headers={"Origin": origin, "Access-Control-Request-Method": method}
    )

    error = assert_error(preflight, 400, "bad_request")
    assert error["refused"] == refused
    assert "server.cors_origins" in error["message"]
    assert "POST" in preflight.headers["access-control-allow-methods"]


def _start(sent: list[Message]) -> tuple[int, dict[bytes, bytes]]:
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], dict(start["headers"])


@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.parametrize(
    ("query", "length", "status", "code"),
    [
        (b"threshold=0.5&threshold=0.6", 10, 400, b"invalid_parameter"),  # an option twice
        (b"&".join(b"p%d=1" % i for i in range(300)), 10, 400, b"invalid_parameter"),
        (b"", 2**40, 413, b"too_large"),  # over the whole upload budget
        (b"", 10, 503, b"overloaded"),  # the upload budget spent
    ],
)
async def test_a_refusal_before_any_route_is_readable_by_an_allowed_page(
    cors_app: InProcess, query: bytes, length: int, status: int, code: bytes
) -> None:
    # The query's bound and the upload budget answer outside the routes; they sat outside the
    # CORS layer, so their answers had no Access-Control-Allow-Origin, and a page on an allowed
    # origin saw a network error instead of the refusal (a 503's Retry-After among what it
    # could not read).
    budget = cors_app.services.upload_budget
    assert budget is not None
    held = budget.limit_bytes if code == b"overloaded" else 0
    assert budget.try_take(held)
    try:
        sent = await cors_app.raw(
            "POST",
            "/v1/detect",
            [(b"origin", ORIGIN.encode()), (b"content-length", str(length).encode())],
            [{"type": "http.request", "body": b"\xff" * 10}],
            query=query,
        )
    finally:
        budget.give(held)

    got, headers = _start(sent)
    assert (got, headers[b"x-error-code"]) == (status, code)
    assert headers[b"access-control-allow-origin"] == ORIGIN.encode()
    assert b"Retry-After" in headers[b"access-control-expose-headers"]
