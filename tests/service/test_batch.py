"""/v1/batch under load and at its size limit (routes/faces.py ``batch``): admitted to the pool
once and whole, never shed item by item, and its answer bounded by
``limits.batch_max_answer_bytes``."""

from __future__ import annotations

import base64
import contextvars
import gc
import io
import json
import os
import threading
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from PIL import Image
from starlette.requests import Request

from faceflow.cache import keys
from faceflow.domain import Operation
from faceflow.errors import DeadlineExceeded, Overloaded, UnsupportedFormat
from faceflow.operations.faces import FACE_OPTIONS
from faceflow.runtime import lanes as lanes_module
from faceflow.runtime.lanes import lane_count, take_free
from faceflow.runtime.pool import PLACE_OWNER, Admission
from faceflow.service import upload as upload_module
from faceflow.service.routes import faces
from faceflow.service.routes.faces import _batch_item
from faceflow.service.state import Services
from faceflow.service.upload import SPLIT_ON_THE_LOOP_BYTES, Upload
from tests.service.in_process import InProcess, app_settings, running_app
from tests.service.support import assert_error, fresh

pytestmark = pytest.mark.asyncio(loop_scope="session")

ANSWER_BUDGET = 1024 * 1024  # the least the setting allows


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def app() -> AsyncIterator[InProcess]:
    """One inference process with one waiting place (room for two requests) and the smallest
    answer budget."""
    settings = app_settings(
        runtime={"processes": 1, "max_waiting": 1},
        limits={"batch_max_answer_bytes": ANSWER_BUDGET},
    )
    async with running_app(settings) as running:
        await running.wait_ready()
        yield running


def noise_png(side: int, seed: int) -> bytes:
    """A PNG of noise: its annotated PNG is as large as its pixels (3 bytes each)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG", compress_level=1)
    return out.getvalue()


def _inferences(app: InProcess) -> float:
    """Inference-pool tasks run so far."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in app.metrics.render().decode().splitlines()
        if line.startswith("faceflow_inferences_total{")
    )


def images(*uploads: bytes) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("images", (f"{i}.png", data, "image/png")) for i, data in enumerate(uploads)]


async def test_the_items_past_the_answer_budget_are_refused_alone(app: InProcess) -> None:
    # 500 × 500 noise annotated as PNG: about 750 kB each, so the second would pass 1 MiB; the
    # third is then not computed at all.
    first, second, third = noise_png(500, 1), noise_png(500, 2), noise_png(500, 3)
    inferences = _inferences(app)
    async with app.client() as client:
        response = await client.post(
            "/v1/batch",
            files=images(first, second, third),
            params={"operation": "annotate", "format": "png"},
        )

    assert _inferences(app) - inferences == 2
    assert response.status_code == 200, response.text
    kept, refused, skipped = response.json()["items"]
    assert (skipped["status"], skipped["error"]["code"]) == (413, "too_large")
    assert kept["status"] == 200
    assert len(base64.b64decode(kept["image_base64"])) > ANSWER_BUDGET // 2
    assert refused["status"] == 413
    assert refused["error"]["code"] == "too_large"
    assert refused["error"]["max_bytes"] == ANSWER_BUDGET
    assert "batch_max_answer_bytes" in refused["error"]["message"]
    assert "image_base64" not in refused


def uploads_in_cycles() -> int:
    """Upload objects that only reference cycles hold: freed by nothing but a full collection."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        return sum(isinstance(thing, Upload) for thing in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


async def test_a_batch_of_failing_images_leaves_no_cycle_holding_them(
    app: InProcess, face_jpeg: bytes
) -> None:
    """An item's error was kept with its traceback, whose frames (the batch's own, whose
    outcomes held the error) made a cycle that kept every image of the batch until the next
    full collection: 160 MB a batch at the limits."""
    broken = fresh(face_jpeg)[:2000]  # truncated: the inference process refuses it
    gc.collect()
    gc.disable()  # no collection frees a cycle before it is counted
    try:
        async with app.client() as client:
            response = await client.post(
                "/v1/batch",
                files=images(b"", broken, fresh(face_jpeg)),
                params={"operation": "detect"},
            )
        assert [item["status"] for item in response.json()["items"]] == [400, 422, 200]
        assert uploads_in_cycles() == 0
    finally:
        gc.enable()


async def test_a_large_batch_is_hashed_beside_the_event_loop(
    app: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sixteen images of 10 MiB held the event loop 46-56 ms of CPU while they were hashed."""
    hashed_in: list[threading.Thread] = []

    def content_hash(data: bytes | memoryview) -> str:
        hashed_in.append(threading.current_thread())
        return keys.content_hash(data)

    monkeypatch.setattr(upload_module, "content_hash", content_hash)
    half = SPLIT_ON_THE_LOOP_BYTES // 2 + 1
    jpeg = b"\xff\xd8\xff"  # a JPEG's signature: bytes that are no image are not hashed
    async with app.client() as client:
        response = await client.post(
            "/v1/batch",
            files=images(jpeg + os.urandom(half), jpeg + os.urandom(half)),  # over the bound
            params={"operation": "detect"},
        )

    assert response.status_code == 200, response.text
    assert len(hashed_in) == 2
    assert threading.current_thread() not in hashed_in  # the event loop's


async def test_a_batch_without_room_in_the_pool_is_refused_whole(
    app: InProcess, face_jpeg: bytes
) -> None:
    pool = app.services.pool
    with pool.admit(), pool.admit():  # other requests hold the pool's whole room
        async with app.client() as client:
            response = await client.post(
                "/v1/batch", files=images(fresh(face_jpeg)), params={"operation": "detect"}
            )

    assert_error(response, 503, "overloaded")
    assert int(response.headers["Retry-After"]) >= 1


async def test_a_batch_of_cached_images_is_answered_without_room_in_the_pool(
    app: InProcess, face_jpeg: bytes
) -> None:
    # Single images' hits are served under any load; their batch was refused whole.
    uploads = images(fresh(face_jpeg), fresh(face_jpeg))
    async with app.client() as client:
        first = await client.post("/v1/batch", files=uploads, params={"operation": "detect"})
        assert first.status_code == 200, first.text
        inferences = _inferences(app)
        pool = app.services.pool
        with pool.admit(), pool.admit():  # other requests hold the pool's whole room
            again = await client.post("/v1/batch", files=uploads, params={"operation": "detect"})

    assert again.status_code == 200, again.text
    assert [item["cache"] for item in again.json()["items"]] == ["hit", "hit"]
    assert [item["result"] for item in again.json()["items"]] == [
        item["result"] for item in first.json()["items"]
    ]
    assert _inferences(app) == inferences


@pytest.mark.parametrize("operation", ["detect", "annotate"])
async def test_bytes_no_decoder_takes_are_refused_without_the_pool(
    app: InProcess, operation: str
) -> None:
    # A 415 is not cached, and each repeat of such bytes went to an inference process to be
    # sniffed: a place in the pool and a round trip each (a batch of 16: 11 ms of the API
    # process, 4.4 ms of the pool), and with the pool full a 503 instead of the 415.
    junk = [b"hello %d" % i for i in range(3)]
    inferences = _inferences(app)
    pool = app.services.pool
    with pool.admit(), pool.admit():  # other requests hold the pool's whole room
        async with app.client() as client:
            batch = await client.post(
                "/v1/batch", files=images(*junk), params={"operation": operation}
            )
            single = await client.post(f"/v1/{operation}", content=junk[0])

    assert batch.status_code == 200, batch.text
    codes = [item["error"]["code"] for item in batch.json()["items"]]
    assert codes == ["unsupported_format"] * 3
    assert_error(single, 415, "unsupported_format")
    assert _inferences(app) == inferences


@pytest.mark.parametrize("path", ["/v1/id-photo", "/v1/id-photo/sheet"])
async def test_bytes_no_decoder_takes_are_no_id_photo_even_with_the_pool_full(
    app: InProcess, path: str
) -> None:
    inferences = _inferences(app)
    pool = app.services.pool
    with pool.admit(), pool.admit():
        async with app.client() as client:
            response = await client.post(path, content=b"hello")
    assert_error(response, 415, "unsupported_format")
    assert _inferences(app) == inferences


async def test_bytes_no_decoder_takes_are_refused_before_the_cache(
    app: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Their 415 is never cached, so looking them up could find nothing: on the routed path (API
    # keys or a rate limit on) each junk upload cost a cache lookup, and a Redis round trip.
    looked_up: list[str] = []
    cached_output = Services.cached_output

    async def recording(self: Services, key: str, *args: Any, **kwargs: Any) -> Any:
        looked_up.append(key)
        return await cached_output(self, key, *args, **kwargs)

    async def stays() -> bool:
        return False

    monkeypatch.setattr(Services, "cached_output", recording)
    work = FACE_OPTIONS[Operation.DETECT]().work(Operation.DETECT, app.services.settings.detection)
    with pytest.raises(UnsupportedFormat):
        await faces.answer(app.services, "key", work, b"hello", gone=stays)
    async with app.client() as client:
        response = await client.post("/v1/id-photo", content=b"hello")
    assert_error(response, 415, "unsupported_format")
    assert looked_up == []


async def test_a_batch_of_cached_and_new_images_computes_only_the_new(
    app: InProcess, face_jpeg: bytes
) -> None:
    cached = fresh(face_jpeg)
    async with app.client() as client:
        response = await client.post(
            "/v1/batch", files=images(cached), params={"operation": "detect"}
        )
        assert response.status_code == 200, response.text
        inferences = _inferences(app)
        response = await client.post(
            "/v1/batch",
            files=images(cached, fresh(face_jpeg), cached),
            params={"operation": "detect"},
        )

    assert response.status_code == 200, response.text
    assert [item["cache"] for item in response.json()["items"]] == ["hit", "miss", "hit"]
    assert _inferences(app) - inferences == 1


async def test_once_admitted_no_item_is_shed_for_others_load(
    app: InProcess, face_jpeg: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = app.services.pool
    admit = pool.admit
    others: list[Admission] = []

    def admit_then_fill() -> Admission:
        # The batch's admission, then other requests take every place left: each item of the
        # batch was shed 503 at this load before (7 of 8 in the attacker's run).
        admission = admit()
        other_client = contextvars.copy_context()
        other_client.run(PLACE_OWNER.set, "ip:192.0.2.7")
        while True:
            try:
                others.append(other_client.run(admit))
            except Overloaded:
                return admission

    monkeypatch.setattr(pool, "admit", admit_then_fill)
    try:
        async with app.client() as client:
            response = await client.post(
                "/v1/batch",
                files=images(*(fresh(face_jpeg) for _ in range(4))),
                params={"operation": "detect"},
            )
    finally:
        for other in others:
            other.close()

    assert others, "the pool had no place left to fill"
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [item["status"] for item in items] == [200] * 4, items
    assert all(item["result"]["face_count"] == 1 for item in items)


async def test_a_retryable_item_error_says_when_to_retry() -> None:
    item = _batch_item(0, Upload(b"x", "a.jpg"), DeadlineExceeded("too slow", retry_after_s=3))

    error = json.loads(item)["error"]
    assert (error["code"], error["retry_after_s"]) == ("deadline_exceeded", 3)


async def test_a_batch_while_batches_or_jobs_hold_every_lane_is_refused_whole(
    app: InProcess, face_jpeg: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two clients' batches at once took both processes of two (12 % of others' detects
    # answered): the lanes are counted over all of this process's batches and embedded jobs.
    monkeypatch.setattr(lanes_module, "LANE_WAIT_S", 0.05)  # its turn does not come
    lanes = app.services.lanes
    held = await take_free(lanes, 100)
    try:
        async with app.client() as client:
            response = await client.post(
                "/v1/batch", files=images(fresh(face_jpeg)), params={"operation": "detect"}
            )
    finally:
        for _ in range(held):
            lanes.release()

    assert held == lane_count(app.services.settings.runtime.processes)
    assert_error(response, 503, "overloaded")
    assert int(response.headers["Retry-After"]) >= 1


async def test_a_batch_gives_its_lanes_back(app: InProcess, face_jpeg: bytes) -> None:
    async with app.client() as client:
        for _ in range(2):
            response = await client.post(
                "/v1/batch", files=images(fresh(face_jpeg)), params={"operation": "detect"}
            )
            assert response.status_code == 200, response.text

    free = await take_free(app.services.lanes, 100)
    for _ in range(free):
        app.services.lanes.release()
    assert free == lane_count(app.services.settings.runtime.processes)


async def test_an_image_over_the_answer_budget_alone_is_refused_alone(app: InProcess) -> None:
    # 700 × 700 noise annotated as PNG: about 1.5 MB, over the 1 MiB budget on its own; the
    # small image after it is answered.
    big, small = noise_png(700, 4), noise_png(100, 5)
    async with app.client() as client:
        response = await client.post(
            "/v1/batch", files=images(big, small), params={"operation": "annotate", "format": "png"}
        )

    assert response.status_code == 200, response.text
    assert [item["status"] for item in response.json()["items"]] == [413, 200]


async def test_a_batch_past_its_deadline_answers_the_images_left_with_when_to_retry(
    app: InProcess, face_jpeg: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The batch's own clock only: the pool keeps the deadline it was made with.
    monkeypatch.setattr(app.services.settings.runtime, "deadline_s", 1e-9)
    async with app.client() as client:
        response = await client.post(
            "/v1/batch",
            files=images(*(fresh(face_jpeg) for _ in range(3))),
            params={"operation": "detect"},
        )

    assert response.status_code == 200, response.text
    late = response.json()["items"][1:]  # the first may start in time; the rest cannot
    for item in late:
        assert item["status"] == 503
        assert item["error"]["code"] == "deadline_exceeded"
        assert item["error"]["retry_after_s"] >= 1


async def test_a_batch_whose_client_has_gone_takes_no_more_images(
    app: InProcess, face_jpeg: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    run: list[object] = []
    real_run_one = faces.run_one

    async def counted(*args: Any, **kwargs: Any) -> Any:
        run.append(args)
        return await real_run_one(*args, **kwargs)

    async def gone(self: Request) -> bool:
        return True

    monkeypatch.setattr(faces, "run_one", counted)
    monkeypatch.setattr(Request, "is_disconnected", gone)
    async with app.client() as client:
        response = await client.post(
            "/v1/batch",
            files=images(*(fresh(face_jpeg) for _ in range(3))),
            params={"operation": "detect"},
        )

    assert response.status_code == 499  # logged as the client's closing, not as served
    assert run == []
