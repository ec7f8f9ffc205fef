"""/healthz, /readyz, /metrics and the OpenAPI document (routes/system.py, metrics.py,
schemas.py)."""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from faceflow.config import ServerSettings
from faceflow.service.app import address
from faceflow.service.routes.docs import ROOT_PATHS_KEPT
from tests.fixtures.images import png_claiming
from tests.fixtures.live_server import CLIENT_TLS, LiveServer, LiveServerFactory
from tests.service.in_process import READY_TIMEOUT_S, InProcess, app_settings, running_app
from tests.service.support import fresh

ERROR_BODY_REF = "#/components/schemas/ErrorBody"


def test_healthz(client: httpx.Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_the_ready_line_says_where_the_page_and_the_docs_are(live_server: LiveServer) -> None:
    line = f"web page {live_server.url}/, API docs {live_server.url}/docs"
    # Logged just after /readyz turns 200 (the same event, seen by two tasks): wait for it.
    deadline = time.monotonic() + 30
    while line not in live_server.log_path.read_text(encoding="utf-8", errors="replace"):
        assert time.monotonic() < deadline, f"no {line!r} in {live_server.log_path}"
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("server", "shown"),
    [
        ({"host": "0.0.0.0", "port": 9000}, "http://127.0.0.1:9000/"),
        ({"host": "::", "port": 9000}, "http://[::1]:9000/"),
        ({"host": "10.0.0.5", "port": 80}, "http://10.0.0.5:80/"),
        ({"public_url": "https://faces.example.org/api"}, "https://faces.example.org/api/"),
    ],
)
def test_the_address_given_to_people_is_one_they_can_open(
    server: dict[str, Any], shown: str
) -> None:
    assert address(ServerSettings(**server)) == shown


async def test_readyz_is_503_until_every_worker_has_warmed_up() -> None:
    settings = app_settings(runtime={"processes": 2, "warmup": True})
    async with running_app(settings, ready=False) as running:
        pids = [worker.pid for worker in running.services.pool.workers() if worker.pid]
        # Held where they are, still importing (a worker needs over 0.5 s of CPU to load its
        # models; the lifespan hands over in milliseconds), so no answer races their start-up.
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            async with running.client() as client:
                held = await client.get("/readyz")
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
        async with running.client() as client, asyncio.timeout(READY_TIMEOUT_S):
            while (ready := await client.get("/readyz")).status_code != 200:
                assert ready.json()["error"]["code"] == "not_ready"
                await asyncio.sleep(0.05)

    assert len(pids) == 2
    assert held.status_code == 503
    assert held.json()["error"]["code"] == "not_ready"
    assert int(held.headers["Retry-After"]) >= 1
    # As every error answer says its code: a monitor (and faceflow_errors_total) reads it there.
    assert held.headers["X-Error-Code"] == "not_ready"
    assert ready.json() == {"ready": True, "workers_ready": 2, "workers": 2}


def test_readyz_of_the_served_app_is_503_until_ready_then_200(live_server: LiveServer) -> None:
    # The factory polled /readyz from the moment it launched the server. `faceflow serve` starts
    # the inference processes before it imports the web stack, so they are often ready by the
    # time the API first answers; any answer before that is a 503 with Retry-After.
    answered = [probe for probe in live_server.probes if probe.status is not None]
    assert answered, live_server.probes
    assert answered[-1].status == 200
    not_ready = answered[:-1]
    assert {(p.status, p.code) for p in not_ready} <= {(503, "not_ready")}
    assert all(p.retry_after is not None and int(p.retry_after) >= 1 for p in not_ready)

    with httpx.Client(base_url=live_server.url, timeout=30.0) as http:
        ready = http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "workers_ready": 2, "workers": 2}


def test_metrics_expose_every_counter(
    client: httpx.Client, live_server: LiveServer, face_jpeg: bytes
) -> None:
    image = fresh(face_jpeg)
    before = live_server.metrics()
    assert client.post("/v1/analyze", content=image).headers["X-Cache"] == "miss"
    assert client.post("/v1/analyze", content=image).headers["X-Cache"] == "hit"
    # Not an image: refused before the pool. Too many pixels: found by the inference process.
    assert client.post("/v1/analyze", content=b"plain text").status_code == 415
    assert client.post("/v1/analyze", content=png_claiming(50_000, 50_000)).status_code == 422
    after = live_server.metrics()

    def delta(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    route = {"route": "/v1/analyze", "method": "POST"}
    assert delta("faceflow_http_requests_total", **route, status="200") == 2
    assert delta("faceflow_http_requests_total", **route, status="415") == 1
    assert delta("faceflow_http_requests_total", **route, status="422") == 1
    assert delta("faceflow_http_request_seconds_count", route="/v1/analyze") == 4
    assert delta("faceflow_cache_hits_total", level="memory") == 1
    assert delta("faceflow_cache_misses_total") == 1  # a failed computation is not a miss
    assert delta("faceflow_errors_total", code="unsupported_format") == 1
    assert delta("faceflow_errors_total", code="too_many_pixels") == 1
    assert delta("faceflow_inferences_total", task="run_face_request", ok="true") == 1
    assert delta("faceflow_inferences_total", task="run_face_request", ok="false") == 1
    assert delta("faceflow_task_seconds_count", task="run_face_request") == 2
    for stage in ("decode", "detect", "attributes"):
        assert delta("faceflow_stage_seconds_count", stage=stage) == 1, stage
        assert after.has("faceflow_stage_seconds_bucket", stage=stage, le="+Inf")
    assert "faceflow_singleflight_joins_total" in after
    assert after["faceflow_redis_breaker_open"] == 0
    assert after["faceflow_pool_ready_workers"] == 2
    for gauge in ("waiting", "in_flight", "rejected", "workers_replaced"):
        assert after[f"faceflow_pool_{gauge}"] >= 0
    assert "faceflow_rate_limited_total" in after


def test_metrics_count_jobs(
    client: httpx.Client, live_server: LiveServer, face_jpeg: bytes
) -> None:
    before = live_server.metrics()
    job = client.post("/v1/jobs", params={"operation": "detect"}, content=fresh(face_jpeg))
    assert job.status_code == 202
    handle = job.json()["handle"]
    deadline = time.monotonic() + 60
    while client.get(f"/v1/jobs/{handle}").json()["status"] != "finished":
        assert time.monotonic() < deadline, "the job never finished"
        time.sleep(0.05)
    after = live_server.metrics()

    for event in ("submitted", "finished"):
        assert (
            after.value("faceflow_jobs", event=event) - before.value("faceflow_jobs", event=event)
            == 1
        )
    assert after["faceflow_jobs_queued"] == 0


def error_statuses(operation: dict[str, Any]) -> dict[int, Any]:
    return {
        int(status): spec
        for status, spec in operation["responses"].items()
        if status.isdigit() and int(status) >= 400
    }


def takes_an_upload(operation: dict[str, Any]) -> bool:
    content = operation.get("requestBody", {}).get("content", {})
    return any(kind == "multipart/form-data" or kind.startswith("image/") for kind in content)


# Any upload can be empty or malformed (400), too large (413) or over a rate limit (429).
UPLOAD_ERRORS = {400, 413, 429}
# An operation that decodes the image before answering can also refuse its format (415) or its
# pixels (422), and shed load or not be ready (503); every /v1 route is behind the API key.
IMAGE_ERRORS = {400, 401, 403, 413, 415, 422, 429, 503}
EXCEPTIONS = {
    # A batch decodes nothing itself: an unsupported or broken image fails its item (in a 200).
    "/v1/batch": {400, 401, 403, 413, 429, 503},
    # The HTTP-ceiling endpoint only reads the upload.
    "/v1/echo-size": UPLOAD_ERRORS,
}
# Accepted for later (202): the format is sniffed at submission, the decode's errors arrive with
# the job.
JOB_ERRORS = {*UPLOAD_ERRORS, 415}


def required_errors(path: str, operation: dict[str, Any]) -> set[int]:
    if path in EXCEPTIONS:
        return EXCEPTIONS[path]
    if "200" in operation["responses"]:
        return IMAGE_ERRORS
    return JOB_ERRORS


@pytest.mark.asyncio(loop_scope="session")
async def test_the_openapi_document_is_made_once(
    service_app: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    # FastAPI's own route serialised the 56 KB schema at each request: 1.4-1.7 ms of the event
    # loop, 8-10 cache hits' worth, for a request of a few bytes.
    api = service_app.app.api
    schema = api.openapi()
    asked: list[None] = []

    def counted() -> dict[str, Any]:
        asked.append(None)
        return schema

    monkeypatch.setattr(api, "openapi", counted)
    async with service_app.client() as client:
        answers = [await client.get("/openapi.json") for _ in range(3)]
        head = await client.head("/openapi.json")
    assert [a.status_code for a in answers] == [200] * 3
    assert all(a.json() == schema for a in answers)
    assert answers[0].headers["content-type"] == "application/json"
    assert head.status_code == 200
    assert not head.content
    assert asked == [], "made again"


@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.parametrize("root_path", ["/faces", "/faces/"])
async def test_the_openapi_document_names_the_root_path_as_its_server(
    service_app: InProcess, root_path: str
) -> None:
    """As FastAPI serves it (``root_path_in_servers``): behind a proxy's prefix, Swagger UI's
    "Try it out" and generated clients call the API under it, not at the proxy's root. Made
    once, the document had no ``servers``."""
    schema = service_app.app.api.openapi()
    async with service_app.client(root_path=root_path) as client:
        under = await client.get(f"{root_path}/openapi.json")  # as uvicorn writes the path
    async with service_app.client() as client:
        at_the_root = await client.get("/openapi.json")
    assert under.status_code == 200
    assert under.json() == {**schema, "servers": [{"url": "/faces"}]}
    assert "servers" not in at_the_root.json()


@pytest.mark.asyncio(loop_scope="session")
async def test_the_docs_pages_load_the_document_and_their_assets_under_the_root_path(
    service_app: InProcess,
) -> None:
    async with service_app.client(root_path="/faces") as client:
        swagger = (await client.get("/faces/docs")).text
        redoc = (await client.get("/faces/redoc")).text
        for url in ("/faces/openapi.json", "/faces/docs-assets/swagger-ui-bundle.js"):
            assert f"'{url}'" in swagger or f'"{url}"' in swagger, url
            assert (await client.head(url)).status_code == 200
        assert '"/faces/openapi.json"' in redoc
        assert '"/faces/docs-assets/redoc.standalone.js"' in redoc
        bundle = (await client.get("/faces/docs-assets/redoc.standalone.js")).content
    # ReDoc's logo, relative to /faces/redoc: /faces/docs-assets/favicon.png.
    assert b'src:"docs-assets/favicon.png"' in bundle


@pytest.mark.asyncio(loop_scope="session")
async def test_a_schema_is_kept_for_a_bounded_number_of_root_paths(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each root path's document is made once, up to ROOT_PATHS_KEPT of them (the root's among
    them); beyond, each request makes its own and none is kept, so varied root paths cannot
    make the server hold unboundedly many documents."""
    async with running_app(app_settings(), ready=False) as app:
        api = app.app.api
        schema = api.openapi()
        made: list[None] = []

        def counted() -> dict[str, Any]:
            made.append(None)
            return schema

        monkeypatch.setattr(api, "openapi", counted)
        kept = [f"/kept-{n}" for n in range(ROOT_PATHS_KEPT - 1)]
        beyond = [f"/beyond-{n}" for n in range(3)]

        async def ask(root_path: str) -> None:
            async with app.client(root_path=root_path) as client:
                document = (await client.get(f"{root_path}/openapi.json")).json()
            assert document["servers"] == [{"url": root_path}]

        for root_path in [*kept, *beyond]:
            await ask(root_path)
        assert len(made) == len(kept) + len(beyond)
        for root_path in kept:
            await ask(root_path)
        assert len(made) == len(kept) + len(beyond), "a kept one made again"
        for root_path in beyond:
            await ask(root_path)
        assert len(made) == len(kept) + 2 * len(beyond), "more than ROOT_PATHS_KEPT kept"


def test_openapi_declares_every_error_status(client: httpx.Client) -> None:
    document = client.get("/openapi.json").json()
    uploads = {
        path: methods["post"]
        for path, methods in document["paths"].items()
        if path.startswith("/v1/") and "post" in methods and takes_an_upload(methods["post"])
    }
    assert {"/v1/detect", "/v1/analyze", "/v1/annotate", "/v1/batch"} <= set(uploads)
    problems: dict[str, str] = {}
    for path, operation in uploads.items():
        declared = error_statuses(operation)
        required = required_errors(path, operation)
        if missing := sorted(required - set(declared)):
            problems[path] = f"undeclared {missing}"
        if required is not UPLOAD_ERRORS:
            other = sorted(
                status
                for status in required & set(declared)
                if declared[status]["content"]["application/json"]["schema"].get("$ref")
                != ERROR_BODY_REF
            )
            if other:
                problems[path] = problems.get(path, "") + f" not an ErrorBody: {other}"
    assert not problems, problems
    schema = document["components"]["schemas"]["ErrorBody"]
    assert schema["required"] == ["error"]


def metrics_dirs() -> set[Path]:
    """The shared-metrics directories `faceflow serve` has made: in /dev/shm, or the temp dir."""
    places = (Path("/dev/shm"), Path(tempfile.gettempdir()))
    return {found for place in places for found in place.glob("faceflow-metrics-*")}


def metrics_dir_of(server_pid: int) -> Path | None:
    """The shared-metrics directory of the server ``server_pid``: its HTTP workers are spawned
    with it in their environment (another `faceflow serve` on the machine has its own)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if parent != server_pid:
                continue
            environ = (stat.parent / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        for entry in environ:
            if entry.startswith(b"PROMETHEUS_MULTIPROC_DIR="):
                return Path(entry.split(b"=", 1)[1].decode())
    return None


def test_with_two_http_workers_every_scrape_counts_both(
    live_server_factory: LiveServerFactory,
) -> None:
    server = live_server_factory(SERVER__HTTP_WORKERS=2)
    try:
        # A new connection per request, so the kernel spreads them over both workers.
        for _ in range(30):
            with httpx.Client(base_url=server.url, timeout=30.0, verify=CLIENT_TLS) as http:
                assert http.post("/v1/echo-size", content=b"x" * 100).status_code == 200

        # Each worker has one inference process; each refreshes its pool gauges every second,
        # and writes its request counts into the shared figures within FLUSH_AFTER_S.
        echo = {"route": "/v1/echo-size", "method": "POST", "status": "200"}

        def settled() -> bool:
            seen = server.metrics()
            counted = seen.value("faceflow_http_requests_total", **echo)
            return seen["faceflow_pool_ready_workers"] == 2 and counted == 30

        deadline = time.monotonic() + 10
        while not settled() and time.monotonic() < deadline:
            time.sleep(0.2)
        scrapes = [server.metrics() for _ in range(8)]
        assert {s["faceflow_pool_ready_workers"] for s in scrapes} == {2}
        # Whichever worker answers, the count is both workers' (each alone would have fewer).
        assert {s.value("faceflow_http_requests_total", **echo) for s in scrapes} == {30}
        shared = metrics_dir_of(server.pid)
        assert shared is not None
        assert shared in metrics_dirs()
    finally:
        server.stop()
    # The shared values are gone with the server.
    assert not shared.exists()
