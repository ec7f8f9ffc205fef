"""Servers and uploads shared by the HTTP tests (the fixtures themselves are in
tests/fixtures/live_server.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from tests.fixtures.live_server import CLIENT_TLS, LiveServer, LiveServerFactory
from tests.service.in_process import InProcess, app_settings, running_app

# Generous: a loaded 2-core machine runs these servers side by side with the test client.
CLIENT_TIMEOUT_S = 60.0
SMALL_UPLOAD_CAP = 200_000
IN_PROCESS_UPLOAD_CAP = 2 * 1024 * 1024


@pytest.fixture(scope="session")
def face_jpeg(testdata: Path) -> bytes:
    """A 320×240 JPEG with one face."""
    return (testdata / "obama_small.jpg").read_bytes()


@pytest.fixture(scope="session")
def constrained_server(live_server_factory: LiveServerFactory) -> LiveServer:
    """One inference process, one waiting slot and a 200 kB upload cap."""
    return live_server_factory(
        RUNTIME__PROCESSES=1,
        RUNTIME__MAX_WAITING=1,
        LIMITS__MAX_UPLOAD_BYTES=SMALL_UPLOAD_CAP,
    )


@pytest.fixture
def client(live_server: LiveServer) -> Iterator[httpx.Client]:
    """A client of the session's default server."""
    with httpx.Client(
        base_url=live_server.url, timeout=CLIENT_TIMEOUT_S, verify=CLIENT_TLS
    ) as http:
        yield http


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def service_app() -> AsyncIterator[InProcess]:
    """The real app in this process (see tests/service/in_process.py), shared by the session:
    one inference process, a 2 MiB upload cap. Tests using it run on the session's event loop
    (``pytestmark = pytest.mark.asyncio(loop_scope="session")``)."""
    settings = app_settings(limits={"max_upload_bytes": IN_PROCESS_UPLOAD_CAP})
    async with running_app(settings) as running:
        yield running
