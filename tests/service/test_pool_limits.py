"""Work in the service's inference pool is bounded (issue 10.1), with the app in process (one
inference process, one waiting place) and its real models.

* A deadline ends the work, not just the wait: a task the test injects that ignores its caller
  giving up is killed after the grace period and its process replaced; ``faceflow_pool_in_flight``
  returns to 0 and the next request is served.
* An ID photo admitted to the pool is never refused half-way: two photos of one new upload at
  once (from two clients); one makes the matte, the other, admitted too, waits for it; while
  both hold their places a newcomer is refused at once, and then both render (before, the second
  one's render trip could answer 503).
* A photo known to have no face (its cut-out's failure cached) is answered 422 ``no_face`` for a
  new size or a print sheet while the pool is full and every lane held: the cached failure is
  found before a place is asked for (before, 503 ``overloaded``).
* The last free place is kept for another client (``runtime.keep_last_place``): while one
  client's request holds the process and another client is about, the first client's next
  request is refused and the other's is admitted and served (before, three connections of one
  client making ID photos left other clients' detects 503 at 127 of 131).
"""

from __future__ import annotations

import asyncio
import contextvars
import io
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from PIL import Image
from starlette.types import ASGIApp

from faceflow.config import ModelSettings, RuntimeSettings, Settings
from faceflow.errors import DeadlineExceeded
from faceflow.runtime import lanes as lanes_module
from faceflow.runtime.context import WorkerContext
from faceflow.runtime.lanes import take_free
from faceflow.runtime.pool import PLACE_OWNER, InferencePool
from faceflow.service.app import create_app
from faceflow.service.security import address_identity
from tests.fixtures.live_server import Scrape, pulled_model_dir
from tests.service import slow_tasks
from tests.service.support import assert_error, fresh

pytestmark = [pytest.mark.timeout(300), pytest.mark.asyncio(loop_scope="module")]

BOUND_S = 120.0
GRACE_S = 1.0
JPEG = {"Content-Type": "image/jpeg"}

Service = tuple[InferencePool[WorkerContext], httpx.AsyncClient, ASGIApp]
OTHER_CLIENT = ("192.0.2.7", 40000)
"""Another client's address: the ``service`` client's requests come from ASGITransport's
default, 127.0.0.1."""


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
            yield pool, client, app


def other_client(app: ASGIApp) -> httpx.AsyncClient:
    """A client of ``app`` from :data:`OTHER_CLIENT`'s address."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=OTHER_CLIENT),
        base_url="http://faceflow",
        timeout=BOUND_S,
    )


async def until(condition: Callable[[], Awaitable[bool]]) -> None:
    async with asyncio.timeout(BOUND_S):
        while not await condition():  # noqa: ASYNC110 - other processes change it
            await asyncio.sleep(0.005)


async def test_two_photos_of_one_upload_are_both_served(service: Service, face_jpeg: bytes) -> None:
    pool, client, app = service
    upload = fresh(face_jpeg)
    one_inch = asyncio.create_task(
        client.post("/v1/id-photo?spec=cn-1inch", content=upload, headers=JPEG)
    )
    other = other_client(app)
    two_inch = asyncio.create_task(
        other.post("/v1/id-photo?spec=cn-2inch", content=upload, headers=JPEG)
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
    await other.aclose()


def no_face_jpeg() -> bytes:
    """A never-seen photo of a plain wall."""
    out = io.BytesIO()
    Image.new("RGB", (320, 240), (120, 130, 140)).save(out, "JPEG", comment=uuid.uuid4().hex)
    return out.getvalue()


async def test_a_photo_known_to_have_no_face_is_refused_422_with_the_pool_full(
    service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool, client, app = service
    upload = no_face_jpeg()
    first = await client.post("/v1/id-photo?spec=cn-1inch", content=upload, headers=JPEG)
    assert_error(first, 422, "no_face")

    gate = tmp_path / "gate"
    monkeypatch.setattr(lanes_module, "LANE_WAIT_S", 0.05)
    lanes = app.api.state.services.lanes  # type: ignore[attr-defined]
    held = await take_free(lanes, 100)
    # Two other clients' tasks fill the pool: one runs, one takes the waiting place.
    busy = []
    for address in (OTHER_CLIENT[0], "192.0.2.8"):
        owned = contextvars.copy_context()
        owned.run(PLACE_OWNER.set, address_identity(address))
        busy.append(asyncio.create_task(pool.run(slow_tasks.held, str(gate)), context=owned))

    async def full() -> bool:
        stats = pool.stats()
        return stats.in_flight == 1 and stats.waiting == 1

    try:
        await until(full)
        answers = [
            await client.post(f"/v1/id-photo?{query}", content=upload, headers=JPEG)
            for query in ("spec=us-passport&background=blue", "spec=cn-1inch&sheet=6inch")
        ]
        newcomer = await client.post("/v1/detect", content=fresh(upload), headers=JPEG)
    finally:
        gate.touch()
        for _ in range(held):
            lanes.release()
        await asyncio.gather(*busy)

    for answer in answers:
        assert (answer.status_code, answer.content) == (first.status_code, first.content)
        assert answer.headers["X-Cache"] == "miss"  # the size's own answer, from the cut-out's
    assert_error(newcomer, 503, "overloaded")  # the pool was full


async def test_the_last_place_is_kept_for_another_client(
    service: Service, face_jpeg: bytes, tmp_path: Path
) -> None:
    pool, client, app = service
    gate = tmp_path / "gate"

    async def holding() -> bool:
        return pool.stats().in_flight == 1

    async def waiting() -> bool:
        return pool.stats().waiting == 1

    async with other_client(app) as other:
        seen = await other.post("/v1/detect", content=fresh(face_jpeg), headers=JPEG)
        assert seen.status_code == 200, seen.text  # another client is about
        # A request of the service client's address holds the one process (a task the test
        # injects, owned as the service would own it).
        owned = contextvars.copy_context()
        owned.run(PLACE_OWNER.set, address_identity("127.0.0.1"))
        busy = asyncio.create_task(pool.run(slow_tasks.held, str(gate)), context=owned)
        await until(holding)

        for refused in (
            await client.post("/v1/detect", content=fresh(face_jpeg), headers=JPEG),
            await client.post("/v1/id-photo?spec=cn-1inch", content=fresh(face_jpeg), headers=JPEG),
        ):
            assert "other clients" in assert_error(refused, 503, "overloaded")["message"]
            assert int(refused.headers["retry-after"]) >= 1

        detect = asyncio.create_task(
            other.post("/v1/detect", content=fresh(face_jpeg), headers=JPEG)
        )
        await until(waiting)  # admitted, waiting its turn
        gate.touch()
        answer = await detect
    assert answer.status_code == 200, answer.text
    assert await busy == str(gate)


async def test_after_deadline_exceeded_the_process_is_freed_and_the_next_request_served(
    service: Service, face_jpeg: bytes
) -> None:
    pool, client, _ = service

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
