"""An ID photo admitted to the pool is never refused half-way (issue 10.1): the app in process,
one inference process and one waiting place, two photos of one new upload at once.

The first request makes the matte; the second, admitted too, waits for that matte. While both
hold their places the pool is full, so a newcomer is refused at once; when the matte is ready
both render, neither is refused (before, the second one's render trip could answer 503).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from faceflow.config import ModelSettings, RuntimeSettings, Settings
from faceflow.service.app import create_app
from tests.fixtures.live_server import pulled_model_dir
from tests.service.support import assert_error, fresh

pytestmark = pytest.mark.timeout(300)

BOUND_S = 120.0
JPEG = {"Content-Type": "image/jpeg"}


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(BOUND_S):
        while not condition():  # noqa: ASYNC110 - the pool's state changes in other processes
            await asyncio.sleep(0.005)


async def test_two_photos_of_one_upload_are_both_served(face_jpeg: bytes) -> None:
    settings = Settings(
        models=ModelSettings(dir=pulled_model_dir()),
        runtime=RuntimeSettings(processes=1, max_waiting=1, warmup=False),
    )
    app = create_app(settings)
    async with app.api.router.lifespan_context(app.api):
        pool = app.api.state.services.pool
        await pool.wait_ready(BOUND_S)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://faceflow", timeout=BOUND_S
        ) as client:
            upload = fresh(face_jpeg)
            one_inch = asyncio.create_task(
                client.post("/v1/id-photo?spec=cn-1inch", content=upload, headers=JPEG)
            )
            two_inch = asyncio.create_task(
                client.post("/v1/id-photo?spec=cn-2inch", content=upload, headers=JPEG)
            )
            # One matte runs; the other request is admitted and waits for it.
            await until(lambda: pool.stats().in_flight == 1 and pool.stats().waiting == 1)
            newcomer = await client.post("/v1/detect", content=fresh(face_jpeg), headers=JPEG)
            assert_error(newcomer, 503, "overloaded")

            for answer in (await one_inch, await two_inch):
                assert answer.status_code == 200, answer.text
                assert answer.headers["content-type"] == "image/jpeg"
            assert pool.stats().completed == 3  # one matte, two renders
