"""A photo rendered at more than LARGE_RENDER_PX (service/routes/idphoto.py) takes a lane of
queued-up work, as a batch does: such renders leave the single requests a process."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from faceflow.pipeline.idphoto.specs import list_specs
from faceflow.runtime import lanes as lanes_module
from faceflow.runtime.lanes import lane_count, take_free
from faceflow.service.routes.idphoto import LARGE_RENDER_PX
from tests.service.in_process import InProcess, app_settings, running_app
from tests.service.support import assert_error, fresh

pytestmark = pytest.mark.asyncio(loop_scope="session")

LARGE = {"width": "2000", "height": "1500", "unit": "px"}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def app() -> AsyncIterator[InProcess]:
    async with running_app(app_settings(runtime={"processes": 1})) as running:
        await running.wait_ready()
        yield running


async def test_the_large_size_of_these_tests_is_large_and_every_preset_small() -> None:
    assert int(LARGE["width"]) * int(LARGE["height"]) > LARGE_RENDER_PX
    # Presets never take a lane.
    assert max(spec.width_px * spec.height_px for spec in list_specs()) < LARGE_RENDER_PX


async def test_a_large_render_waits_for_a_lane_and_a_preset_does_not(
    app: InProcess, face_jpeg: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lanes_module, "LANE_WAIT_S", 0.05)
    lanes = app.services.lanes
    held = await take_free(lanes, 100)  # batches or jobs hold every lane
    try:
        async with app.client() as client:
            large = await client.post("/v1/id-photo", params=LARGE, content=fresh(face_jpeg))
            preset = await client.post("/v1/id-photo", content=fresh(face_jpeg))
    finally:
        for _ in range(held):
            lanes.release()

    assert_error(large, 503, "overloaded")
    assert int(large.headers["Retry-After"]) >= 1
    assert preset.status_code == 200, preset.text


async def test_a_print_sheet_takes_a_lane(
    app: InProcess, face_jpeg: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An A4 sheet of one 1200 dpi photo cost 3 s for 125 bytes by source=, and took no lane.
    monkeypatch.setattr(lanes_module, "LANE_WAIT_S", 0.05)
    lanes = app.services.lanes
    held = await take_free(lanes, 100)
    try:
        async with app.client() as client:
            sheet = await client.post(
                "/v1/id-photo/sheet", params={"layout": "cn-1inch:4"}, content=fresh(face_jpeg)
            )
    finally:
        for _ in range(held):
            lanes.release()

    assert_error(sheet, 503, "overloaded")


async def test_a_large_render_gives_its_lane_back(app: InProcess, face_jpeg: bytes) -> None:
    async with app.client() as client:
        response = await client.post("/v1/id-photo", params=LARGE, content=fresh(face_jpeg))
    assert response.status_code == 200, response.text

    free = await take_free(app.services.lanes, 100)
    for _ in range(free):
        app.services.lanes.release()
    assert free == lane_count(app.services.settings.runtime.processes)
