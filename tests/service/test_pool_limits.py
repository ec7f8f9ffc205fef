"""Work in the service's inference pool is bounded (issue 10.1), with the app in process (one
inference process, one waiting place) and its real models.

* A deadline ends the work, not just the wait: a task the test injects that ignores its caller
  giving up is killed after the grace period and its process replaced; ``faceflow_pool_in_flight``
  returns to 0 and the next request is served.
* An ID photo admitted to the pool is never refused half-way: two photos of one new upload at
  once; one makes the matte, the other, admitted too, waits for it; while both hold their places
  a newcomer is refused at once, and then both render (before, the second one's render trip
  could answer 503).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
import pytest_asyncio

from faceflow.config import ModelSettings, RuntimeSettings, Settings
from faceflow.errors import DeadlineExceeded
from faceflow.runtime.context import WorkerContext
from faceflow.runtime.pool import InferencePool
from faceflow.service.app import create_app
from tests.fixtures.live_server import Scrape, pulled_model_dir
from tests.service import slow_tasks
from tests.service.support import assert_error, fresh

pytestmark = [pytest.mark.timeout(300), pytest.mark.asyncio(loop_scope="module")]

BOUND_S = 120.0
GRACE_S = 1.0
JPEG = {"Content-Type": "image/jpeg"}

Service = tuple[InferencePool[WorkerContext], httpx.AsyncClient]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def service() -> AsyncIterator[Service]:
    settings = Settings(
        models=ModelSettings(dir=pulled_model_dir()),
        runtime=RuntimeSettings(processes=1, max_waiting=1, warmup=False, cancel_grace_s=GRACE_S),
    )
    app = create_app(settings)
    async with app.api.router.lifespan_context(app.api):
        pool = app.api.state.services.pool
        await pool.wait_ready(BOUND_S)
        # The example thumbnails are the pool's first tasks: ready (as /readyz says) after them.
        await asyncio.wait_for(app.api.state.services.thumbnails.wait(), BOUND_S)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://faceflow", timeout=BOUND_S
        ) as client:
            yield pool, client


async def until(condition: Callable[[], Awaitable[bool]]) -> None:
    async with asyncio.timeout(BOUND_S):
        while not await condition():  # noqa: ASYNC110 - other processes change it
            await asyncio.sleep(0.005)


async def test_two_photos_of_one_upload_are_both_served(service: Service, face_jpeg: bytes) -> None:
    pool, client = service
    upload = fresh(face_jpeg)
    one_inch = asyncio.create_task(
        client.post("/v1/id-photo?spec=cn-1inch", content=upload, headers=JPEG)
    )
    two_inch = asyncio.create_task(
        client.post("/v1/id-photo?spec=cn-2inch", content=upload, headers=JPEG)
    )

    async def matte_running_and_other_admitted() -> bool:
        stats = pool.stats()
        return stats.in_flight == 1 and stats.waiting == 1

    await until(matte_running_and_other_admitted)
    completed = pool.stats().completed
    newcomer = await client.post("/v1/detect", content=fresh(face_jpeg), headers=JPEG)
    assert_error(newcomer, 503, "overloaded")

    for answer in (await one_inch, await two_inch):
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "image/jpeg"
    assert pool.stats().completed == completed + 3  # one matte, two renders


async def test_after_deadline_exceeded_the_process_is_freed_and_the_next_request_served(
    service: Service, face_jpeg: bytes
) -> None:
    pool, client = service

    async def in_flight() -> float:
        return Scrape((await client.get("/metrics")).text).value("faceflow_pool_in_flight")

    with pytest.raises(DeadlineExceeded):
        await pool.run(slow_tasks.stuck, 10 * BOUND_S, deadline_s=0.2)
    assert await in_flight() == 1  # still running it, for now

    async def freed() -> bool:
        return await in_flight() == 0 and pool.ready

    await until(freed)  # after the grace period: killed and replaced
    assert pool.stats().killed == 1
    answer = await client.post("/v1/detect", content=fresh(face_jpeg), headers=JPEG)
    assert answer.status_code == 200, answer.text
    assert answer.json()["faces"]
