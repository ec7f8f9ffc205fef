"""CPU per cache hit of faceflow's ASGI stack against the bare floor app, in one process.

    .venv/bin/python bench/hit_stack.py [--image PATH] [--requests 5000] [--rounds 3]

No server, no socket, no load generator: the app is called with the messages uvicorn would hand
it (the 95 KB upload in two chunks, as a raw body and as a form) and its answers are dropped,
under uvloop as `faceflow serve` runs. What is left is what faceflow's own code costs per hit on
top of bench/bare_asgi.py (read, hash, dict), in process CPU µs, with none of the noise a shared
machine puts into requests per second. Also split by layer: the hot path alone
(service/hotpath.py), with the body limits (service/upload.py BodyLimits), with the request
context (request ids, access log and request metrics: the layered path every request took before
2026-12-05 11:30), and the whole app (whose first layer, hotpath.Entry, serves a hit itself).
The shared-metrics directory of several HTTP workers is set up as `faceflow serve
--http-workers 2` sets it up.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message

import bare_asgi
from service import FORM_CONTENT_TYPE, add_image_option, form_body, jpeg_near

CHUNK = 65536
_READY_TIMEOUT_S = 300


def _scope(path: str, content_type: str, body: bytes) -> dict[str, object]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": "POST",
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"user-agent", b"wrk"),
            (b"content-length", b"%d" % len(body)),
            (b"content-type", content_type.encode()),
        ],
        "state": {},
    }


async def drive(app: ASGIApp, path: str, content_type: str, body: bytes, n: int) -> float:
    """µs of process CPU per request over ``n`` requests."""
    chunks = [body[i : i + CHUNK] for i in range(0, len(body), CHUNK)]
    statuses: set[int] = set()

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.add(message["status"])

    start = time.process_time()
    for _ in range(n):
        pending: list[Message] = [
            {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
            for i, c in enumerate(chunks)
        ]

        async def receive(pending: list[Message] = pending) -> Message:
            return pending.pop(0) if pending else {"type": "http.disconnect"}

        await app(_scope(path, content_type, body), receive, send)
    spent = time.process_time() - start
    if statuses != {200}:
        raise RuntimeError(f"{path} answered {statuses}")
    return spent / n * 1e6


@asynccontextmanager
async def running_app() -> AsyncIterator[ASGIApp]:
    """``create_app`` with its lifespan running and its inference process ready."""
    from faceflow.config import load_settings
    from faceflow.service.app import create_app

    app = create_app(load_settings(runtime={"processes": 1}))
    to_app: asyncio.Queue[Message] = asyncio.Queue()
    from_app: asyncio.Queue[Message] = asyncio.Queue()
    to_app.put_nowait({"type": "lifespan.startup"})
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    lifespan = asyncio.create_task(app(scope, to_app.get, from_app.put))
    if (await from_app.get())["type"] != "lifespan.startup.complete":
        raise RuntimeError("the app did not start")
    await app.api.state.services.pool.wait_ready(timeout_s=_READY_TIMEOUT_S)
    try:
        yield app
    finally:
        await to_app.put({"type": "lifespan.shutdown"})
        await from_app.get()
        await lifespan


async def measure(image: bytes, requests: int, rounds: int) -> dict[str, list[float]]:
    from prometheus_client import values

    # As with several HTTP workers: every value in the shared directory (set before the import).
    if "Mmaped" not in values.ValueClass.__qualname__:
        raise RuntimeError("prometheus_client was imported before the shared directory was set")
    form = form_body(image)
    async with running_app() as app:
        entry = app._app  # type: ignore[attr-defined]  # Entry, or the layers behind it
        context = entry._context  # RequestContext → BodyLimits → HotPath
        limits = context.app
        hot = limits.app
        await drive(app, "/v1/analyze", "image/jpeg", image, 1)  # the miss that caches it
        targets: list[tuple[str, ASGIApp, str, str, bytes]] = [
            ("floor (bare ASGI)", bare_asgi.app, "/", "image/jpeg", image),
            ("hit, raw: hot path alone", hot, "/v1/analyze", "image/jpeg", image),
            ("hit, raw: + body limits", limits, "/v1/analyze", "image/jpeg", image),
            ("hit, raw: + request context", context, "/v1/analyze", "image/jpeg", image),
            ("hit, raw: whole app", app, "/v1/analyze", "image/jpeg", image),
            ("hit, multipart: layers", context, "/v1/analyze", FORM_CONTENT_TYPE, form),
            ("hit, multipart: whole app", app, "/v1/analyze", FORM_CONTENT_TYPE, form),
            ("echo-size: whole app", app, "/v1/echo-size", "image/jpeg", image),
        ]
        for _, target, path, content_type, body in targets:  # warm up
            await drive(target, path, content_type, body, 200)
        results: dict[str, list[float]] = {}
        for _ in range(rounds):
            for name, target, path, content_type, body in targets:
                us = await drive(target, path, content_type, body, requests)
                results.setdefault(name, []).append(us)
    return results


def run_rounds(
    description: str,
    measure: Callable[[bytes, int, int], Coroutine[Any, Any, dict[str, list[float]]]],
    floor_name: str,
) -> None:
    """Parse the command line, run ``measure(image, requests, rounds)`` on uvloop with a private
    Prometheus directory in /dev/shm (as `faceflow serve --http-workers 2` sets it up), and print
    each target's median CPU per request against ``floor_name``'s."""
    parser = argparse.ArgumentParser(description=description)
    add_image_option(parser)
    parser.add_argument(
        "--requests",
        type=int,
        default=5000,
        help="requests to each target per round (default: %(default)s)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds over all targets, the median kept (default: %(default)s)",
    )
    args = parser.parse_args()
    shm = Path("/dev/shm")
    directory = tempfile.mkdtemp(prefix="faceflow-metrics-", dir=shm if shm.is_dir() else None)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    try:
        import uvloop

        image = jpeg_near(args.image)
        results = uvloop.run(measure(image, args.requests, args.rounds))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    floor = statistics.median(results[floor_name])
    print(f"{len(image)} B JPEG; medians of {args.rounds} rounds of {args.requests} requests")
    print(f"{'target':28} {'µs CPU/req':>11} {'vs floor':>9}")
    for name, runs in results.items():
        us = statistics.median(runs)
        print(f"{name:28} {us:11.1f} {us - floor:+9.1f}   rounds {[round(r, 1) for r in runs]}")


def main() -> None:
    run_rounds(__doc__.split("\n\n")[0], measure, "floor (bare ASGI)")


if __name__ == "__main__":
    main()
