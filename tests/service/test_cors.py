"""CORS for a page on another origin (server.cors_origins): preflights answered, and every header
faceflow sets for its clients readable there (service/app.py EXPOSED_HEADERS)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import faceflow.service
from faceflow.service.app import EXPOSED_HEADERS
from tests.service.in_process import app_settings, running_app
from tests.service.support import assert_error

ORIGIN = "https://app.example"
# Headers a client sends, named in the service's code; the others it names are answers' headers.
REQUEST_HEADERS = {"X-API-Key"}


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
async def test_a_page_on_an_allowed_origin_is_answered_with_the_headers_exposed() -> None:
    settings = app_settings(server={"cors_origins": [ORIGIN]})
    async with running_app(settings, ready=False) as app, app.client() as client:
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
    origin: str, method: str, refused: str
) -> None:
    # It was starlette's text/plain "Disallowed CORS origin", with no code to tell it by.
    settings = app_settings(server={"cors_origins": [ORIGIN]})
    async with running_app(settings, ready=False) as app, app.client() as client:
        preflight = await client.options(
            "/v1/detect", headers={"Origin": origin, "Access-Control-Request-Method": method}
        )

    error = assert_error(preflight, 400, "bad_request")
    assert error["refused"] == refused
    assert "server.cors_origins" in error["message"]
    assert "POST" in preflight.headers["access-control-allow-methods"]
