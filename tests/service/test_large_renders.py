"""A photo rendered at more than LARGE_RENDER_PX (service/routes/idphoto.py), and attributes for
more than MANY_FACES faces (service/routes/faces.py), take a lane of queued-up work, as a batch
does: such work leaves the single requests a process."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from faceflow.pipeline.idphoto.specs import list_specs
from faceflow.runtime import lanes as lanes_module
from faceflow.runtime.lanes import lane_count, take_free
from faceflow.service.routes.faces import MANY_FACES
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


@contextlib.asynccontextmanager
async def every_lane_held(app: InProcess, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """Batches or jobs hold every lane of the app meanwhile; a request waiting its turn for one
    gives up after 0.05 s."""
    monkeypatch.setattr(lanes_module, "LANE_WAIT_S", 0.05)
    lanes = app.services.lanes
    held = await take_free(lanes, 100)
    try:
        yield
    finally:
        for _ in range(held):
            lanes.release()


async def test_a_large_render_waits_for_a_lane_and_a_preset_does_not(
    app: InProcess, face_jpeg: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with every_lane_held(app, monkeypatch), app.client() as client:
        large = await client.post("/v1/id-photo", params=LARGE, content=fresh(face_jpeg))
        preset = await client.post("/v1/id-photo", content=fresh(face_jpeg))

    assert_error(large, 503, "overloaded")
    assert int(large.headers["Retry-After"]) >= 1
    assert preset.status_code == 200, preset.text


async def test_a_print_sheet_takes_a_lane(
    app: InProcess, face_jpeg: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An A4 sheet of one 1200 dpi photo cost 3 s for 125 bytes by source=, and took no lane.
    async with every_lane_held(app, monkeypatch), app.client() as client:
        sheet = await client.post(
            "/v1/id-photo/sheet", params={"layout": "cn-1inch:4"}, content=fresh(face_jpeg)
        )

    assert_error(sheet, 503, "overloaded")


async def assert_every_lane_free(app: InProcess) -> None:
    """Every lane of the app is free: taken all at once, then given back."""
    free = await take_free(app.services.lanes, 100)
    for _ in range(free):
        app.services.lanes.release()
    assert free == lane_count(app.services.settings.runtime.processes)


async def test_a_large_render_gives_its_lane_back(app: InProcess, face_jpeg: bytes) -> None:
    async with app.client() as client:
        response = await client.post("/v1/id-photo", params=LARGE, content=fresh(face_jpeg))
    assert response.status_code == 200, response.text

    await assert_every_lane_free(app)


def tasks_run(app: InProcess, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the tasks the app's inference pool is asked to run from now on."""
    pool = app.services.pool
    ran: list[str] = []
    real_run = pool.run

    async def counted(fn: Any, request: Any, **kwargs: Any) -> Any:
        ran.append(fn.__name__)
        return await real_run(fn, request, **kwargs)

    monkeypatch.setattr(pool, "run", counted)
    return ran


@pytest.mark.parametrize(
    ("path", "params", "lane"),
    [
        ("/v1/analyze", {"max_faces": str(MANY_FACES + 1)}, True),
        ("/v1/annotate", {"max_faces": "1000"}, True),
        ("/v1/analyze", {"max_faces": str(MANY_FACES)}, False),
        ("/v1/analyze", {"max_faces": "1000", "attributes": "none"}, False),
        ("/v1/detect", {"max_faces": "1000"}, False),
    ],
)
async def test_attributes_for_many_faces_wait_for_a_lane(
    app: InProcess,
    face_jpeg: bytes,
    monkeypatch: pytest.MonkeyPatch,
    path: str,
    params: dict[str, str],
    lane: bool,
) -> None:
    # A 14 KB WebP of 1,000 faces cost 2.2 s of attributes a request; three connections asking
    # for it left another client's detects at p99 4.6 s.
    async with every_lane_held(app, monkeypatch), app.client() as client:
        response = await client.post(path, params=params, content=fresh(face_jpeg))

    if lane:
        assert_error(response, 503, "overloaded")
        assert int(response.headers["Retry-After"]) >= 1
    else:
        assert response.status_code == 200, response.text


async def test_attributes_for_many_faces_give_their_lane_back(
    app: InProcess, face_jpeg: bytes
) -> None:
    async with app.client() as client:
        response = await client.post(
            "/v1/analyze", params={"max_faces": "1000"}, content=fresh(face_jpeg)
        )
    assert response.status_code == 200, response.text

    await assert_every_lane_free(app)


async def test_attributes_for_many_faces_whose_client_has_gone_are_not_made(
    app: InProcess, face_jpeg: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Asked for with the connection closed at once, through the hot path, whose catch-all
    # answered the client's leaving as a 500 (internal, its traceback logged) in a first draft.
    ran = tasks_run(app, monkeypatch)

    upload = fresh(face_jpeg)
    headers = [(b"content-length", str(len(upload)).encode())]
    body = {"type": "http.request", "body": upload, "more_body": False}

    # The body, then a disconnect for ever: its client left once it had sent it.
    sent = await app.raw("POST", "/v1/analyze", headers, [body], query=b"max_faces=1000")

    assert sent == []  # nobody to answer: counted and logged 499
    assert ran == []
