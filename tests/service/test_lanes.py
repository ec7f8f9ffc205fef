"""The lane wait of requests that take a lane of queued-up work one at a time
(service/lanes.py), through large renders: a request whose client has left is not made."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from starlette.requests import Request

from faceflow.cache.keys import cache_key_from_hash
from faceflow.domain import Operation
from faceflow.operations.idphoto import PhotoRouteOptions
from faceflow.runtime import lanes as lanes_module
from faceflow.runtime.lanes import take_free
from faceflow.service import lanes as service_lanes
from tests.service.in_process import InProcess, app_settings, running_app
from tests.service.support import fresh
from tests.service.test_large_renders import LARGE, assert_every_lane_free, tasks_run

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def app() -> AsyncIterator[InProcess]:
    async with running_app(app_settings(runtime={"processes": 1})) as running:
        await running.wait_ready()
        yield running


GONE_PEER = "127.0.0.9"
"""The tests below read requests from this address as their client having gone."""


async def _source_of(app: InProcess, jpeg: bytes) -> str:
    async with app.client() as client:
        response = await client.post("/v1/id-photo", content=jpeg)
    assert response.status_code == 200, response.text
    return response.headers["X-Source"]


async def _renders_waiting_for_a_lane(
    app: InProcess, monkeypatch: pytest.MonkeyPatch, peers: list[str], params: dict[str, str]
) -> tuple[list[Any], list[str]]:
    """Each of ``peers`` asks for the large render ``params`` while batches or jobs hold every
    lane; once the first waits for one and the others have joined it, the clients at GONE_PEER
    leave and the lanes are given back. The answers, and the tasks the inference pool was asked
    to run meanwhile."""
    ran = tasks_run(app, monkeypatch)

    in_line = asyncio.Event()
    real_take = lanes_module.take_in_turn

    async def take_in_turn(lanes: lanes_module.Lanes, wanted: int) -> int:
        in_line.set()
        return await real_take(lanes, wanted)

    left = False

    async def is_disconnected(self: Request) -> bool:
        return left and self.client is not None and self.client.host == GONE_PEER

    monkeypatch.setattr(service_lanes, "take_in_turn", take_in_turn)
    monkeypatch.setattr(Request, "is_disconnected", is_disconnected)
    work = PhotoRouteOptions.model_validate(params).work()
    key = cache_key_from_hash(params["source"], Operation.ID_PHOTO.value, work.cache_params())
    lanes = app.services.lanes
    held = await take_free(lanes, 100)
    released = False
    try:

        async def ask(peer: str) -> Any:
            async with app.client(peer) as client:
                return await client.post("/v1/id-photo", params=params)

        answers = [asyncio.create_task(ask(peer)) for peer in peers]
        async with asyncio.timeout(60):
            await in_line.wait()
            while app.services.cache.callers(key) < len(peers):  # noqa: ASYNC110 - no event to wait on
                await asyncio.sleep(0.01)
        left = True
        for _ in range(held):
            lanes.release()
        released = True
        return [await answer for answer in answers], ran
    finally:
        if not released:
            for _ in range(held):
                lanes.release()


async def test_a_large_render_whose_client_left_while_it_waited_for_a_lane_is_not_made(
    app: InProcess, face_jpeg: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Renders asked for by source= with the connection closed at once queued for the lane
    # without bound, each made in turn for nobody: another client's batches answered 503.
    source = await _source_of(app, fresh(face_jpeg))
    params = {**LARGE, "source": source, "background": "#102030"}

    (answer,), ran = await _renders_waiting_for_a_lane(app, monkeypatch, [GONE_PEER], params)

    assert answer.status_code == 499  # logged as the client's closing, not as served
    assert ran == []
    await assert_every_lane_free(app)  # its lane was given back


async def test_a_large_render_another_request_joined_is_made_when_its_first_client_left(
    app: InProcess, face_jpeg: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = await _source_of(app, fresh(face_jpeg))
    params = {**LARGE, "source": source, "background": "#102031"}

    answers, ran = await _renders_waiting_for_a_lane(
        app, monkeypatch, [GONE_PEER, "127.0.0.10"], params
    )

    assert [a.status_code for a in answers] == [200, 200]  # the one made, for the one who waits
    assert ran == ["render_task"]
