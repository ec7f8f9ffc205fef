"""The cache-hit fast path answers exactly what the routes would, and only that."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from faceflow.config import DetectionSettings, load_settings
from faceflow.domain import parse_attributes
from faceflow.imaging.encode import OutputFormat
from faceflow.runtime.tasks import FaceRequest, Operation
from faceflow.service.app import create_app
from faceflow.service.hotpath import FACE_PATHS, QUERY_PARAMETERS, _NotHandled, face_request
from faceflow.service.routes.faces import detect_options
from tests.fixtures.live_server import LiveServer, LiveServerFactory
from tests.service.support import fresh


def route_query_parameters(path: str) -> set[str]:
    """The query parameters the documented POST route declares (from its OpenAPI operation)."""
    operation = create_app(load_settings()).api.openapi()["paths"][path]["post"]
    return {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}


@pytest.mark.parametrize(("path", "operation"), sorted(FACE_PATHS.items()))
def test_fast_path_knows_exactly_the_routes_query_parameters(
    path: str, operation: Operation
) -> None:
    # A parameter the route gained but the fast path ignored could serve a wrong cached answer.
    assert route_query_parameters(path) == set(QUERY_PARAMETERS[operation])


DEFAULTS = DetectionSettings()


@pytest.mark.parametrize(
    ("operation", "query"),
    [
        (Operation.DETECT, {}),
        (Operation.DETECT, {"threshold": "0.5", "max_faces": "3", "min_face_px": "40"}),
        (Operation.ANALYZE, {"attributes": "gender"}),
        (Operation.ANALYZE, {"attributes": "gender,age", "threshold": "0.9"}),
        (Operation.ANNOTATE, {"format": "png", "attributes": "none"}),
    ],
)
def test_fast_path_builds_the_routes_cache_parameters(
    operation: Operation, query: dict[str, str]
) -> None:
    fast = face_request(DEFAULTS, operation, query)
    options = detect_options(
        DEFAULTS,
        float(query["threshold"]) if "threshold" in query else None,
        int(query["max_faces"]) if "max_faces" in query else None,
        int(query["min_face_px"]) if "min_face_px" in query else None,
    )
    attributes = (
        ()
        if operation is Operation.DETECT
        else parse_attributes(query.get("attributes", "age,gender"))
    )
    image_format = OutputFormat(query.get("format", "jpeg"))
    route = FaceRequest(b"", operation, options, attributes, image_format)
    assert fast == route
    assert fast.cache_params() == route.cache_params()


@pytest.mark.parametrize(
    ("operation", "query"),
    [
        (Operation.DETECT, {"threshold": "5"}),
        (Operation.DETECT, {"threshold": "abc"}),
        (Operation.DETECT, {"max_faces": "0"}),
        (Operation.DETECT, {"attributes": "age"}),  # not a detect option
        (Operation.ANALYZE, {"attributes": "height"}),
        (Operation.ANNOTATE, {"format": "gif"}),
        (Operation.ANALYZE, {"unknown": "1"}),
    ],
)
def test_anything_unusual_is_left_to_the_routes(
    operation: Operation, query: dict[str, str]
) -> None:
    with pytest.raises(_NotHandled):
        face_request(DEFAULTS, operation, query)


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


def test_fast_path_applies_the_api_key_and_charges_the_rate_limit_once(
    live_server_factory: LiveServerFactory, face_jpeg: bytes
) -> None:
    key = "hot-path-key"
    server = live_server_factory(
        RUNTIME__PROCESSES=1,
        SERVER__API_KEY_HASHES=f'["{hashlib.sha256(key.encode()).hexdigest()}"]',
        SERVER__RATE_LIMIT="3/minute",
    )
    image = fresh(face_jpeg)
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=server.url, timeout=60) as client:
        assert client.post("/v1/detect", content=image).status_code == 401
        miss = client.post("/v1/detect", content=image, headers=auth)
        hit = client.post("/v1/detect", content=image, headers=auth)
        third = client.post("/v1/detect", content=image, headers=auth)
        limited = client.post("/v1/detect", content=image, headers=auth)
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
