"""The load generator: never-seen variants, closed-loop steps and open-loop arrivals, against the
real service (and, for Retry-After, a server that only ever refuses)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceflow.cache.keys import content_hash
from faceflow.loadgen.load import LoadGenerator, LoadPlan, unique_variant
from tests.fixtures.images import load_rgb, solid_png
from tests.fixtures.live_server import LiveServer


@pytest.fixture(scope="module")
def photo(testdata: Path) -> bytes:
    return (testdata / "obama_small.jpg").read_bytes()


def test_a_jpeg_variant_has_new_bytes_and_the_same_pixels(photo: bytes) -> None:
    first, second = unique_variant(photo, 1), unique_variant(photo, 2)

    assert len({content_hash(photo), content_hash(first), content_hash(second)}) == 3
    assert np.array_equal(np.asarray(load_rgb(first)), np.asarray(load_rgb(photo)))


def test_a_png_variant_is_re_encoded_as_a_jpeg_of_the_same_size() -> None:
    png = solid_png(40, 30)

    variant = unique_variant(png, 1)

    assert variant[:2] == b"\xff\xd8"
    with Image.open(io.BytesIO(variant)) as decoded:
        assert decoded.size == (40, 30)
    assert unique_variant(png, 2) != variant


def test_plans_need_images_it_can_vary_and_a_length(photo: bytes) -> None:
    with pytest.raises(ValueError, match="image"):
        LoadGenerator(LoadPlan(url="http://127.0.0.1:1/", images=[]))
    with pytest.raises(ValueError, match="duration"):
        LoadGenerator(LoadPlan(url="http://127.0.0.1:1/", images=[photo], duration_s=None))
    with pytest.raises(ValueError, match="image 2 is not a JPEG"):
        LoadGenerator(LoadPlan(url="http://127.0.0.1:1/", images=[photo, b"plain text"]))


def test_a_warmed_hit_step_counts_every_request_as_a_hit(
    live_server: LiveServer, photo: bytes
) -> None:
    plan = LoadPlan(
        url=f"{live_server.url}/v1/detect",
        images=[photo],
        hit_ratio=1.0,
        duration_s=None,
        requests_per_step=12,
        hot_set=2,
    )
    generator = LoadGenerator(plan)

    async def run() -> None:
        await generator.warm()
        result = await generator.step(3)
        assert result.requests == 12
        assert result.statuses == {200: 12}
        assert (result.cache_hits, result.cache_misses) == (12, 0)
        assert result.hit_ratio == 1.0
        assert len(result.latencies_s) == 12
        assert result.client_cpu_s > 0
        assert result.to_dict()["ok"] == 12

    asyncio.run(run())


def test_a_miss_step_sends_bytes_the_server_never_saw(
    live_server: LiveServer, photo: bytes
) -> None:
    plan = LoadPlan(
        url=f"{live_server.url}/v1/detect", images=[photo], duration_s=None, requests_per_step=3
    )

    result = asyncio.run(LoadGenerator(plan).step(1))

    assert (result.cache_hits, result.cache_misses) == (0, 3)


def test_the_open_loop_starts_requests_at_the_rate_whatever_the_answers(
    live_server: LiveServer, photo: bytes
) -> None:
    plan = LoadPlan(url=f"{live_server.url}/v1/echo-size", images=[photo])

    result = asyncio.run(LoadGenerator(plan).open_loop(rate_per_s=20, duration_s=1.0))

    # One request is due at the start and one every 1/20 s after it, for one second.
    assert 20 <= result.requests <= 21
    assert result.ok == result.requests
    assert result.concurrency >= 1


@asynccontextmanager
async def refusing_server() -> AsyncIterator[tuple[str, list[float]]]:
    """An HTTP server that answers every request 503 with ``Retry-After: 1``; yields its URL and
    the loop time of each request it received."""
    arrivals: list[float] = []
    loop = asyncio.get_running_loop()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.lower().split(b"\r\n")
                    if line.startswith(b"content-length:")
                )
                await reader.readexactly(length)
                arrivals.append(loop.time())
                writer.write(
                    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n"
                    b"X-Error-Code: overloaded\r\nContent-Length: 0\r\n\r\n"
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}/v1/analyze", arrivals


@pytest.mark.parametrize("honor", [True, False])
def test_clients_wait_out_retry_after_unless_told_not_to(honor: bool) -> None:
    async def run() -> tuple[int, list[float]]:
        async with refusing_server() as (url, arrivals):
            plan = LoadPlan(
                url=url, images=[b"\xff\xd8body"], duration_s=1.5, honor_retry_after=honor
            )
            result = await LoadGenerator(plan).step(1)
            assert result.error_codes.keys() == {"overloaded"}
            return result.requests, arrivals

    requests, arrivals = asyncio.run(run())

    if honor:
        # At 0 s, then after the 1 s Retry-After; the wait is cut short at the step's end.
        assert requests == 2
        assert arrivals[1] - arrivals[0] >= 1.0
    else:
        assert requests > 10
