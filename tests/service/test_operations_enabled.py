"""A server that offers only some operations (``runtime.operations``) refuses the others where
the request arrives — 404 ``operation_disabled`` on the sync routes, the hot path and job
submission alike — and says what it offers in ``/v1/info``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from faceflow.cache.entry import CacheEntry
from faceflow.cache.keys import cache_key
from faceflow.domain import Operation
from faceflow.operations.faces import AnalyzeOptions
from tests.service.in_process import InProcess, app_settings, running_app
from tests.service.support import assert_error, fresh

pytestmark = pytest.mark.asyncio(loop_scope="session")

JPEG = {"Content-Type": "image/jpeg"}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def detect_only() -> AsyncIterator[InProcess]:
    """A server whose inference processes load the detector alone."""
    async with running_app(app_settings(runtime={"operations": ["detect"]})) as running:
        yield running


async def test_info_lists_what_the_server_offers(detect_only: InProcess) -> None:
    async with detect_only.client() as client:
        info = (await client.get("/v1/info")).json()
    assert info["operations"] == ["detect"]


async def test_detect_is_served(detect_only: InProcess, face_jpeg: bytes) -> None:
    async with detect_only.client() as client:
        response = await client.post("/v1/detect", content=face_jpeg, headers=JPEG)
    assert response.status_code == 200, response.text
    assert response.json()["face_count"] == 1


@pytest.mark.parametrize(
    "path",
    ["/v1/analyze", "/v1/annotate", "/v1/id-photo?spec=us-passport", "/v1/id-photo/sheet"],
)
async def test_an_operation_it_does_not_offer_is_refused(
    detect_only: InProcess, face_jpeg: bytes, path: str
) -> None:
    async with detect_only.client() as client:
        response = await client.post(path, content=face_jpeg, headers=JPEG)
    error = assert_error(response, 404, "operation_disabled")
    assert "runtime.operations" in error["message"]
    assert "404" in await declared_statuses(detect_only, path.split("?")[0])


async def declared_statuses(server: InProcess, path: str) -> set[str]:
    """The statuses ``/openapi.json`` declares for POST ``path``: the document says it lists
    every status an operation can answer, and 404 was missing where an operation is not
    offered."""
    async with server.client() as client:
        document = (await client.get("/openapi.json")).json()
    return set(document["paths"][path]["post"]["responses"])


async def test_a_batch_of_an_operation_it_does_not_offer_is_refused(
    detect_only: InProcess, face_jpeg: bytes
) -> None:
    async with detect_only.client() as client:
        response = await client.post(
            "/v1/batch?operation=analyze", files=[("images", ("a.jpg", face_jpeg, "image/jpeg"))]
        )
    assert_error(response, 404, "operation_disabled")
    assert "404" in await declared_statuses(detect_only, "/v1/batch")


@pytest.mark.parametrize("operation", ["analyze", "id-photo"])
async def test_a_job_it_cannot_run_is_refused_at_submission(
    detect_only: InProcess, face_jpeg: bytes, operation: str
) -> None:
    async with detect_only.client() as client:
        response = await client.post(
            f"/v1/jobs?operation={operation}", content=face_jpeg, headers=JPEG
        )
    assert_error(response, 404, "operation_disabled")
    assert "404" in await declared_statuses(detect_only, "/v1/jobs")


async def test_an_operation_it_does_not_offer_is_refused_even_when_its_answer_is_cached(
    detect_only: InProcess, face_jpeg: bytes
) -> None:
    """A shared Redis cache holds what the other nodes made, analyze answers among them: the
    hot path answered such a hit 200 on a detect-only node, where the route, a batch and a job
    answer 404 operation_disabled (the hot path must answer as the route would)."""
    data = fresh(face_jpeg)
    work = AnalyzeOptions().work(Operation.ANALYZE, detect_only.services.settings.detection)
    entry = CacheEntry("application/json", b'{"face_count":0,"faces":[]}', {})
    await detect_only.services.cache.put(cache_key(data, "analyze", work.cache_params()), entry)
    async with detect_only.client() as client:
        response = await client.post("/v1/analyze", content=data, headers=JPEG)
    assert_error(response, 404, "operation_disabled")
