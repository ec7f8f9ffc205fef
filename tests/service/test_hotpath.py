"""The face operations' entry (the hot path) answers exactly what the routes would: the same
parse, the same key, the same answer on a hit and on a miss."""

from __future__ import annotations

import contextlib
import functools
import hashlib
from typing import Any

import httpx
import pytest
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_dependant, request_params_to_args
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.datastructures import QueryParams
from starlette.types import Receive, Scope, Send

from faceflow.config import DetectionSettings
from faceflow.domain import Attribute, Operation
from faceflow.errors import InvalidParameter
from faceflow.imaging.encode import OutputFormat
from faceflow.operations.faces import FaceWork
from faceflow.pipeline.detect import DetectOptions
from faceflow.service.hotpath import FACE_PATHS, HotPath, face_work
from faceflow.service.routes import faces
from tests.fixtures.live_server import LiveServer
from tests.service.in_process import InProcess, app_settings, running_app
from tests.service.option_queries import DETECT_OPTIONS, face_values, queries
from tests.service.support import assert_error, fresh

QUERIES = {
    Operation.DETECT: queries(face_values(*DETECT_OPTIONS)),
    Operation.ANALYZE: queries(face_values(*DETECT_OPTIONS, "attributes")),
    Operation.ANNOTATE: queries(face_values(*DETECT_OPTIONS, "attributes", "format")),
}
ROUTES = {"/v1/detect": faces.detect, "/v1/analyze": faces.analyze, "/v1/annotate": faces.annotate}


def route_parse(path: str, query: str) -> tuple[dict[str, Any], list[Any]]:
    """What FastAPI makes of ``query`` for the route ``path``: the query parameters its endpoint
    declares, validated (values), or the validation errors it would answer 400 with."""
    return request_params_to_args(_dependant(path).query_params, QueryParams(query))


@functools.cache
def _dependant(path: str) -> Dependant:
    return get_dependant(path=path, call=ROUTES[path])


@pytest.mark.parametrize(("path", "operation"), sorted(FACE_PATHS.items()))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fast_path_parses_every_query_as_the_route_does(
    path: str, operation: Operation, data: st.DataObject
) -> None:
    query = data.draw(QUERIES[operation])
    # A query the fast path read differently could serve a wrong cached answer.
    defaults = DetectionSettings()
    fast = face_work(defaults, operation, query.encode("latin-1"))
    values, errors = route_parse(path, query)
    route: FaceWork | None = None
    if not errors:
        with contextlib.suppress(InvalidParameter):  # the route answers 400 for it too
            route = values["options"].work(operation, defaults)
    assert fast == route
    if route is not None:
        assert fast is not None
        assert fast.cache_params() == route.cache_params()


@pytest.mark.parametrize(
    ("operation", "query", "expected"),
    [
        (Operation.DETECT, "", FaceWork(Operation.DETECT, DetectOptions(0.7, 0.3, 20, 100))),
        (
            Operation.ANNOTATE,
            "threshold=0.5&max_faces=3&attributes=gender&format=png",
            FaceWork(
                Operation.ANNOTATE,
                DetectOptions(0.5, 0.3, 20, 3),
                (Attribute.GENDER,),
                OutputFormat.PNG,
            ),
        ),
        (Operation.DETECT, "attributes=age", None),  # not a detect option
        (Operation.ANALYZE, "threshold=5", None),
        (Operation.ANALYZE, "attributes=height", None),
    ],
)
def test_fast_path_work(operation: Operation, query: str, expected: FaceWork | None) -> None:
    assert face_work(DetectionSettings(), operation, query.encode()) == expected


@pytest.mark.asyncio(loop_scope="session")
async def test_a_miss_goes_on_from_the_entry_without_the_router(
    service_app: InProcess, face_jpeg: bytes
) -> None:
    """A miss is answered with the upload, key and work the entry already has: it never reaches
    FastAPI, which would read, parse and hash it again. A refused option does, for its error."""
    reached: list[str] = []

    async def router(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(f"{scope['path']}?{scope['query_string'].decode()}")
        await service_app.app.api(scope, receive, send)

    entry = HotPath(router, lambda: service_app.services)
    image = fresh(face_jpeg)
    transport = httpx.ASGITransport(app=entry)
    async with httpx.AsyncClient(transport=transport, base_url="http://faceflow.test") as client:
        miss = await client.post("/v1/analyze?threshold=0.55", content=image)
        hit = await client.post("/v1/analyze?threshold=0.55", content=image)
        refused = await client.post("/v1/analyze?threshold=5", content=image)
    assert (miss.headers["x-cache"], hit.headers["x-cache"]) == ("miss", "hit")
    assert miss.status_code == 200
    assert miss.content == hit.content
    assert int(miss.headers["x-face-count"]) >= 1
    assert_error(refused, 400, "invalid_parameter")
    assert reached == ["/v1/analyze?threshold=5"]


@pytest.mark.asyncio(loop_scope="session")
async def test_echo_size_is_answered_by_the_entry_as_the_route_answers_it(
    service_app: InProcess,
) -> None:
    """/v1/echo-size exists once: the entry answers it without the router, with the body the
    route (reached directly) answers."""
    reached: list[str] = []

    async def router(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(scope["path"])
        await service_app.app.api(scope, receive, send)

    answers = []
    for app in (HotPath(router, lambda: service_app.services), router):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://faceflow.test") as c:
            answers.append(await c.post("/v1/echo-size", content=b"x" * 1234))
    entry, route = answers
    assert reached == ["/v1/echo-size"]  # the second request only, sent to the router itself
    for response in (entry, route):
        assert response.status_code == 200
        assert response.content == b'{"bytes":1234}'
        assert response.headers["content-type"] == "application/json"


def test_a_fast_hit_answers_the_routes_body_and_headers(
    live_server: LiveServer, face_jpeg: bytes
) -> None:
    image = fresh(face_jpeg)
    with httpx.Client(base_url=live_server.url, timeout=60) as client:
        computed = client.post("/v1/analyze?threshold=0.6", content=image)
        hit = client.post("/v1/analyze?threshold=0.6", content=image)
        other_options = client.post("/v1/analyze?threshold=0.61", content=image)
    assert computed.headers["x-cache"] == "miss"
    assert hit.headers["x-cache"] == "hit"
    assert hit.content == computed.content
    for header in ("content-type", "x-face-count", "server-timing"):
        assert hit.headers[header] == computed.headers[header]
    assert hit.headers["x-request-id"] != computed.headers["x-request-id"]
    assert other_options.headers["x-cache"] == "miss"
    scrape = live_server.metrics()
    assert (
        scrape.value(
            "faceflow_http_requests_total", route="/v1/analyze", method="POST", status="200"
        )
        >= 3
    )


@pytest.mark.asyncio(loop_scope="session")
async def test_fast_path_applies_the_api_key_and_charges_the_rate_limit_once(
    face_jpeg: bytes,
) -> None:
    key = "hot-path-key"
    settings = app_settings(
        server={
            "api_key_hashes": [hashlib.sha256(key.encode()).hexdigest()],
            "rate_limit": "3/minute",
        }
    )
    image = fresh(face_jpeg)
    auth = {"Authorization": f"Bearer {key}"}
    async with running_app(settings) as running, running.client() as client:
        assert (await client.post("/v1/detect", content=image)).status_code == 401
        miss = await client.post("/v1/detect", content=image, headers=auth)
        hit = await client.post("/v1/detect", content=image, headers=auth)
        third = await client.post("/v1/detect", content=image, headers=auth)
        limited = await client.post("/v1/detect", content=image, headers=auth)
    # The miss went through the fast path's checks and then the route: charged once, not twice.
    assert [miss.status_code, hit.status_code, third.status_code] == [200, 200, 200]
    assert miss.headers["x-cache"] == "miss"
    assert hit.headers["x-cache"] == "hit"
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1


def test_echo_size_reads_the_upload_like_the_image_routes(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.url, timeout=60) as client:
        answer = client.post("/v1/echo-size", content=b"x" * 1234)
        empty = client.post("/v1/echo-size")
    assert answer.json() == {"bytes": 1234}
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["x-request-id"]
    assert empty.status_code == 400
    assert empty.json()["error"]["code"] == "empty"
