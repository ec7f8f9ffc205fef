"""The OpenAPI document is exact: every reference resolves, every status an operation answers is
declared, 405 names every method of a path, every route is in the README's API table, and a
property-based fuzz run (schemathesis) finds no server error and no answer outside the
document."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from faceflow.service.routes.jobs import job_options_parameter
from tests.fixtures.environment import PROJECT_ROOT
from tests.fixtures.live_server import LiveServer
from tests.service.in_process import InProcess, app_settings, running_app
from tests.service.support import assert_error

session_loop = pytest.mark.asyncio(loop_scope="session")

# A fixed number of cases per operation, not a time budget (--max-time makes schemathesis repeat
# its fuzzing and stateful phases until the time is spent, so the run always took all of it).
# The "coverage" phase (boundary values of every parameter, ~900 cases) stays: the edges of the
# documented ranges are where an unchecked value would reach the pipeline.
FUZZ_EXAMPLES = 10
FUZZ_PHASES = "examples,coverage,fuzzing,stateful"
FUZZ_TIMEOUT_S = 300


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


@session_loop
async def test_every_reference_resolves(service_app: InProcess) -> None:
    async with service_app.client() as client:
        document = (await client.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    refs = set(_refs(document))
    assert refs, "the document has no references at all"
    prefix = "#/components/schemas/"
    dangling = sorted(
        r for r in refs if not r.startswith(prefix) or r[len(prefix) :] not in schemas
    )
    assert dangling == []
    for name in ("FaceOut", "AgeOut", "GenderOut", "LandmarksOut"):
        assert f"{prefix}{name}" in refs


@session_loop
async def test_statuses_a_failed_job_can_answer_are_declared(service_app: InProcess) -> None:
    async with service_app.client() as client:
        document = (await client.get("/openapi.json")).json()
    result = document["paths"]["/v1/jobs/{handle}/result"]["get"]["responses"]
    assert {"400", "404", "409", "415", "422", "503"} <= set(result)


@session_loop
@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/v1/jobs/some-handle", "GET, HEAD, DELETE"),
        ("PATCH", "/v1/jobs", "POST"),
        ("GET", "/v1/detect", "POST"),
        ("POST", "/healthz", "GET, HEAD"),
    ],
)
async def test_405_allows_every_method_of_the_path(
    service_app: InProcess, method: str, path: str, allow: str
) -> None:
    async with service_app.client() as client:
        response = await client.request(method, path)
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == allow


def test_job_options_are_typed_per_operation() -> None:
    variants = {
        v["properties"]["operation"]["const"]: v for v in job_options_parameter()["schema"]["oneOf"]
    }
    assert set(variants) == {"detect", "analyze", "annotate", "id-photo", "id-photo-sheet"}
    assert all(v["additionalProperties"] is False for v in variants.values())
    assert variants["annotate"]["properties"]["format"] == {
        "enum": ["jpeg", "png"],
        "type": "string",
    }
    assert variants["id-photo"]["properties"]["quality"] == {
        "maximum": 100,
        "minimum": 1,
        "type": "integer",
    }
    assert "layout" in variants["id-photo-sheet"]["properties"]
    assert "layout" not in variants["id-photo"]["properties"]
    assert "$ref" not in str(variants)


@session_loop
async def test_job_options_of_the_schema_are_accepted(
    service_app: InProcess, face_jpeg: bytes
) -> None:
    async with service_app.client() as client:
        typed = await client.post(
            "/v1/jobs?operation=annotate&format=png&attributes=age&threshold=0.5",
            content=face_jpeg,
        )
        untyped = await client.post("/v1/jobs?operation=annotate&format=gif", content=face_jpeg)
        missing = await client.post("/v1/jobs", content=face_jpeg)
    assert typed.status_code == 202, typed.text
    assert_error(untyped, 400, "invalid_parameter")
    assert_error(missing, 400, "invalid_parameter")


def test_fuzzing_the_api_finds_no_server_error_and_no_undocumented_answer(
    live_server: LiveServer,
) -> None:
    """Schemathesis against the session's server, FUZZ_EXAMPLES cases per operation in each of
    FUZZ_PHASES: every check but two that cannot hold for uploads. "Schema-valid data is
    accepted": a schema cannot say which bytes are a decodable photo with a face in it.
    "Schema-violating data is rejected": on the wire a multipart part is bytes whatever
    schemathesis generated for it (it sends ``{}`` as an "object" for a binary part), and the
    batch answers such an item in its own entry (415 ``unsupported_format``) as documented.
    Server errors and undocumented answers still fail."""
    with httpx.Client(base_url=live_server.url) as client:
        assert client.get("/readyz").status_code == 200
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{live_server.url}/openapi.json",
            f"--max-examples={FUZZ_EXAMPLES}",
            f"--phases={FUZZ_PHASES}",
            "--workers=1",
            "--exclude-checks=positive_data_acceptance,negative_data_rejection",
            "--no-color",
        ],
        # An HTTP client, none of faceflow's code: not measured by coverage (whose tracer would
        # slow schemathesis's case generation down for nothing).
        env={k: v for k, v in os.environ.items() if k != "COVERAGE_PROCESS_CONFIG"},
        capture_output=True,
        text=True,
        timeout=FUZZ_TIMEOUT_S,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]


@session_loop
async def test_the_document_is_built_at_start_up_not_by_the_first_request() -> None:
    # Built on the event loop by the first /openapi.json, it held every other request of that
    # HTTP worker for 143 ms; now it is made in a thread before the app answers anything.
    async with running_app(app_settings(), ready=False) as running:
        assert running.app.api.openapi_schema is not None


@session_loop
async def test_every_documented_route_is_in_the_readme(service_app: InProcess) -> None:
    # The README's API table is where a reader looks first: a route the document gives and the
    # table leaves out is an endpoint without docs.
    async with service_app.client() as client:
        document = (await client.get("/openapi.json")).json()
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    missing = [
        f"{method.upper()} {path}"
        for path, operations in document["paths"].items()
        for method in operations
        if f"{method.upper()} {path}`" not in readme
        and not (path.endswith("/thumbnail") and "`…/thumbnail`" in readme)
    ]
    assert missing == []


@session_loop
async def test_every_route_of_the_readme_is_one_the_app_serves(service_app: InProcess) -> None:
    # The other way round: a route the README's API table gives that the document has not
    # (renamed, removed, a method it does not take) is one a reader calls for a 404 or 405.
    async with service_app.client() as client:
        document = (await client.get("/openapi.json")).json()
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("| method and path |", 1)[1].split("\n\n", 1)[0]
    routes = re.findall(r"`(GET|HEAD|POST|PUT|PATCH|DELETE) (/[^`]*)`", table)
    assert len(routes) >= 15, routes
    unknown = [
        f"{method} {path}"
        for method, path in routes
        if method.lower() not in document["paths"].get(path, {})
    ]
    assert unknown == []
