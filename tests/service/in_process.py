"""The real app in the test's own process: ``create_app(settings)`` with its lifespan running
(inference processes, cache, job runner), reached through httpx's ASGI transport.

Cheaper than a live server (no uvicorn, no port) and it lets a test choose the peer address a
request comes from, or speak ASGI to the app directly (a client vanishing mid-upload).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx
from starlette.types import Message

from faceflow.config import Settings
from faceflow.jobs.peers import PeerGroup
from faceflow.service.app import FaceflowApp, create_app
from faceflow.service.metrics import Metrics
from faceflow.service.state import Services
from tests.fixtures.live_server import pulled_model_dir

# A bound, not a margin: ready in seconds when idle, but under a load average of 17 (2 cores, a
# second xdist worker starting its own servers) loading the models took over 90 s.
READY_TIMEOUT_S = 180.0
PEER = "127.0.0.1"


def app_settings(**groups: dict[str, Any]) -> Settings:
    """Settings for an in-process app: the pulled models, one inference process without the
    warm-up, and ``groups`` (e.g. ``server={"api_key_hashes": [...]}``) over the defaults.

    The warm-up (every operation once, ≈ 0.8 s of CPU per inference process) is what an
    operator's first requests would otherwise pay; the suite starts dozens of processes whose
    first requests it does not time, so only the tests of the warm-up itself ask for it."""
    values: dict[str, dict[str, Any]] = {
        "models": {"dir": pulled_model_dir()},
        "runtime": {"processes": 1, "warmup": False},
    }
    for group, overrides in groups.items():
        values[group] = {**values.get(group, {}), **overrides}
    return Settings.model_validate(values)


class InProcess:
    """A running app and ways to reach it."""

    def __init__(self, app: FaceflowApp) -> None:
        self.app = app

    @property
    def services(self) -> Services:
        services: Services | None = getattr(self.app.api.state, "services", None)
        assert services is not None, "the app's lifespan is not running"
        return services

    @property
    def metrics(self) -> Metrics:
        return self.services.metrics

    async def wait_ready(self) -> None:
        """Until every inference process has loaded its models, at most READY_TIMEOUT_S, then
        ``/readyz`` must answer 200.

        It waits on the pool's own readiness (raising its start-up error, if any) rather than
        polling ``/readyz``: each poll is a request through the whole app in this process, under
        coverage, dozens of them while the models load."""
        await self.services.pool.wait_ready(READY_TIMEOUT_S)
        # Then the example thumbnails, the pool's first tasks, which /readyz also waits for.
        await asyncio.wait_for(self.services.thumbnails.wait(), READY_TIMEOUT_S)
        async with self.client() as client:
            response = await client.get("/readyz")
        if response.status_code != 200:
            raise RuntimeError(f"the pool is ready but /readyz answered {response.text}")

    def client(self, peer: str = PEER, root_path: str = "", **kwargs: Any) -> httpx.AsyncClient:
        """A client whose requests reach the app from ``peer`` (the TCP peer uvicorn would
        report), under ``root_path`` (``uvicorn --root-path``; as uvicorn does, give the paths
        with it in front)."""
        transport = httpx.ASGITransport(app=self.app, client=(peer, 40_000), root_path=root_path)
        return httpx.AsyncClient(
            transport=transport, base_url="http://faceflow.test", timeout=60.0, **kwargs
        )

    async def raw(
        self,
        method: str,
        path: str,
        headers: Sequence[tuple[bytes, bytes]],
        incoming: Sequence[Message],
        query: bytes = b"",
    ) -> list[Message]:
        """Speak ASGI to the app: ``incoming`` are the messages ``receive`` hands out, in order
        (then ``http.disconnect`` for ever); returns every message the app sent."""
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query,
            "root_path": "",
            "headers": [(b"host", b"faceflow.test"), *headers],
            "client": (PEER, 40_000),
            "server": ("faceflow.test", 80),
        }
        pending = list(incoming)
        sent: list[Message] = []

        async def receive() -> Message:
            if pending:
                return pending.pop(0)
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            sent.append(message)

        await self.app(scope, receive, send)
        return sent


@asynccontextmanager
async def running_app(
    settings: Settings, *, ready: bool = True, job_peers: PeerGroup | None = None
) -> AsyncIterator[InProcess]:
    """``create_app(settings)`` with its lifespan started, then shut down on exit. With
    ``ready`` it is yielded once ``/readyz`` answers 200 (every model loaded), else at once: for
    tests of what answers without inference, or to start several apps whose inference processes
    load side by side (then :meth:`InProcess.wait_ready` each). ``job_peers``: as one of several
    HTTP workers (:mod:`faceflow.jobs.peers`)."""
    app = create_app(settings, job_peers=job_peers)
    to_app: asyncio.Queue[Message] = asyncio.Queue()
    from_app: asyncio.Queue[Message] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    lifespan = asyncio.create_task(app(scope, to_app.get, from_app.put))
    await to_app.put({"type": "lifespan.startup"})
    started = await from_app.get()
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"the app did not start: {started}")
    running = InProcess(app)
    try:
        if ready:
            await running.wait_ready()
        yield running
    finally:
        await to_app.put({"type": "lifespan.shutdown"})
        await from_app.get()
        await lifespan
