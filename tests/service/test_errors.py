"""Error bodies, 404/405/400 and request ids (service/errors.py, service/middleware.py)."""

from __future__ import annotations

import logging
import re

import httpx
import pytest

from faceflow.cache.tiered import CacheStatus
from faceflow.errors import Undecodable
from faceflow.service.errors import faceflow_error_response
from faceflow.service.middleware import MAX_LOGGED_PATH
from faceflow.service.routes import jobs as job_routes
from tests.service.in_process import InProcess
from tests.service.support import assert_error, error_of


def test_unknown_route_is_404_json(client: httpx.Client) -> None:
    for method, path in [("GET", "/v1/nope"), ("POST", "/v1/nope"), ("GET", "/no/such/page")]:
        response = client.request(method, path)
        assert_error(response, 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/v1/detect", "POST"),
        ("PUT", "/v1/analyze", "POST"),
        ("DELETE", "/v1/batch", "POST"),
        ("POST", "/healthz", "GET"),
        ("POST", "/v1/info", "GET"),
        ("POST", "/v1/jobs/abc", "DELETE"),  # Starlette's Allow named the first route's GET only
    ],
)
def test_wrong_method_is_405_json(
    client: httpx.Client, method: str, path: str, allowed: str
) -> None:
    response = client.request(method, path)
    assert_error(response, 405, "method_not_allowed")
    assert allowed in response.headers["Allow"]


@pytest.mark.parametrize("path", ["/healthz", "/v1/info", "/openapi.json", "/v1/id-photo/specs"])
def test_allow_names_head_beside_get_as_head_is_answered(client: httpx.Client, path: str) -> None:
    # Every GET route answers HEAD (HeadAsGet); Allow said GET alone.
    response = client.post(path)

    assert_error(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == "GET, HEAD"
    assert client.head(path).status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/"), ("PUT", "/index.html"), ("DELETE", "/js/main.js"), ("PATCH", "/favicon.svg")],
)
def test_a_wrong_method_on_a_web_page_file_is_405_naming_get_and_head(
    client: httpx.Client, method: str, path: str
) -> None:
    # The page's files answer GET and HEAD; POST / was a 404, as if there were no page.
    response = client.request(method, path)
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == "GET, HEAD"


def test_a_wrong_method_on_a_path_no_route_nor_file_has_is_404(client: httpx.Client) -> None:
    for method, path in [("POST", "/no/such/page"), ("POST", "/index.html/"), ("PUT", "/js")]:
        assert_error(client.request(method, path), 404, "not_found")


def test_every_error_has_one_body_shape(client: httpx.Client, face_jpeg: bytes) -> None:
    responses = [
        client.post("/v1/detect"),  # empty
        client.post("/v1/detect", files={"picture": ("a.jpg", face_jpeg)}),  # missing field
        client.post("/v1/detect", content=b"plain text"),
        client.post("/v1/analyze", content=face_jpeg[: len(face_jpeg) // 3]),
        client.post("/v1/detect", content=face_jpeg, params={"threshold": 5}),
        client.get("/v1/nope"),
        client.get("/v1/detect"),
    ]
    statuses = []
    for response in responses:
        assert response.status_code >= 400
        error = error_of(response)
        assert response.headers["X-Error-Code"] == error["code"]
        statuses.append((response.status_code, error["code"]))
    assert statuses == [
        (400, "empty"),
        (400, "missing_field"),
        (415, "unsupported_format"),
        (422, "undecodable"),
        (400, "invalid_parameter"),
        (404, "not_found"),
        (405, "method_not_allowed"),
    ]


def test_sane_request_id_is_echoed(client: httpx.Client, face_jpeg: bytes) -> None:
    for request_id in ("abc-123", "client.trace_42", "A" * 64):
        ok = client.get("/healthz", headers={"X-Request-ID": request_id})
        failed = client.post("/v1/detect", headers={"X-Request-ID": request_id})
        assert ok.headers["X-Request-ID"] == request_id
        assert failed.status_code == 400
        assert failed.headers["X-Request-ID"] == request_id


@pytest.mark.parametrize(
    "junk", ["", "has spaces", "semi;colon", "A" * 65, 'quote"d', "ünïcode", "../../etc"]
)
def test_junk_request_id_is_replaced(client: httpx.Client, junk: str) -> None:
    response = client.get("/healthz", headers=[(b"X-Request-ID", junk.encode("utf-8"))])
    echoed = response.headers["X-Request-ID"]
    assert echoed != junk
    assert re.fullmatch(r"[0-9a-f]{32}", echoed), echoed


def test_request_id_is_fresh_per_request(client: httpx.Client) -> None:
    ids = {client.get("/healthz").headers["X-Request-ID"] for _ in range(5)}
    assert len(ids) == 5


@pytest.mark.parametrize(
    ("path", "query", "meant"),
    [
        ("/v1/analyze", {"threshhold": "0.5"}, "threshold"),
        ("/v1/id-photo", {"backgroud": "blue"}, "background"),
        ("/v1/jobs", {"operation": "detect", "max_face": "2"}, "max_faces"),
    ],
)
def test_a_misspelt_option_is_named_with_the_one_it_was_meant_to_be(
    client: httpx.Client, face_jpeg: bytes, path: str, query: dict[str, str], meant: str
) -> None:
    typo = next(name for name in query if name != "operation")

    response = client.post(path, content=face_jpeg, params=query)

    error = assert_error(response, 400, "invalid_parameter")
    assert f"unknown option '{typo}' (did you mean '{meant}'?)" in error["message"]
    assert error["parameter"] == typo


def test_an_unknown_option_like_no_other_is_named_without_a_guess(
    client: httpx.Client, face_jpeg: bytes
) -> None:
    response = client.post("/v1/detect", content=face_jpeg, params={"colour": "x"})

    error = assert_error(response, 400, "invalid_parameter")
    assert error["message"] == "unknown option 'colour'"


def test_a_misspelt_size_is_named_with_the_size_it_likely_is(
    client: httpx.Client, face_jpeg: bytes
) -> None:
    response = client.post("/v1/id-photo", content=face_jpeg, params={"spec": "cn-1-inch"})

    error = assert_error(response, 400, "invalid_parameter")
    assert error["message"].startswith(
        "unknown ID-photo size 'cn-1-inch' (did you mean 'cn-1inch'?); known sizes: cn-1inch, "
    )
    assert error["parameter"] == "spec"


def test_a_form_without_the_image_field_names_the_fields_it_has(
    client: httpx.Client, face_jpeg: bytes
) -> None:
    # A batch's field sent to a single-image route: the client sees what it sent.
    response = client.post("/v1/detect", files={"images": ("a.jpg", face_jpeg)})

    error = assert_error(response, 400, "missing_field")
    assert error["message"] == "multipart body has no field named 'image' (it has 'images')"
    assert error["parameter"] == "image"


def test_two_images_to_a_single_image_route_are_pointed_to_the_batch_route(
    client: httpx.Client, face_jpeg: bytes
) -> None:
    files = [("image", ("a.jpg", face_jpeg)), ("image", ("b.jpg", face_jpeg))]
    response = client.post("/v1/detect", files=files)

    assert_error(response, 400, "invalid_parameter")
    assert "/v1/batch" in error_of(response)["message"]


@pytest.mark.parametrize(
    ("status", "label"),
    [
        (CacheStatus.MISS, "miss"),
        (CacheStatus.JOINED, "hit"),
        (CacheStatus.HIT_MEMORY, "hit"),
        (CacheStatus.HIT_REDIS, "hit"),
    ],
)
def test_a_cached_failure_is_labelled_as_a_result_is(status: CacheStatus, label: str) -> None:
    """A miss only for the request that ran the work; one that waited for it ran nothing."""
    error = Undecodable("truncated")
    error.cache_status = status.value
    response = faceflow_error_response(error)
    assert (response.headers["X-Cache"], response.headers["X-Cache-Detail"]) == (label, status)


@pytest.mark.asyncio(loop_scope="session")
async def test_a_server_fault_logs_the_path_cut_as_the_access_line_cuts_it(
    service_app: InProcess, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The traceback stays (a fault of the server's), but the path in its line is the client's
    # choice: a handle of 60,000 characters made a line as long.
    def fault(handle: str) -> str:
        raise RuntimeError("a fault of the server's")

    monkeypatch.setattr(job_routes, "_checked", fault)
    transport = httpx.ASGITransport(app=service_app.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://faceflow.test") as client:
        with caplog.at_level(logging.ERROR, logger="faceflow.service.errors"):
            response = await client.get("/v1/jobs/" + "a" * 60_000)
    assert_error(response, 500, "internal")
    (record,) = [r for r in caplog.records if r.name == "faceflow.service.errors"]
    assert record.exc_info is not None
    assert len(record.getMessage()) < MAX_LOGGED_PATH + 100
