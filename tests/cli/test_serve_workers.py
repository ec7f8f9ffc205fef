"""`faceflow serve --http-workers 2` becomes ready on a machine whose cores are all busy.

uvicorn kills an HTTP worker that misses its health check (5 s by default); a worker still
starting on a busy machine used to be killed and replaced forever. The timeout now comes from
``server.worker_healthcheck_timeout_s`` (30 s) and the CLI imports little before serving.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.fixtures.live_server import LiveServerFactory

pytestmark = pytest.mark.slow

# Generous: two workers' start-up (each loading and warming one inference process) on cores
# that two busy loops keep saturated; on an idle machine it takes a few seconds.
READY_BOUND_S = 240.0


@pytest.fixture
def busy_cores() -> Iterator[None]:
    """One busy-loop process per core for the test's duration (stopped by PID)."""
    loops = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL)
        for _ in range(os.cpu_count() or 1)
    ]
    try:
        yield
    finally:
        for loop in loops:
            loop.send_signal(signal.SIGKILL)
            loop.wait(timeout=10)


def test_two_http_workers_become_ready_with_every_core_busy(
    busy_cores: None, live_server_factory: LiveServerFactory
) -> None:
    server = live_server_factory(wait=False, SERVER__HTTP_WORKERS=2, RUNTIME__PROCESSES=1)
    try:
        server.wait_ready(timeout_s=READY_BOUND_S)
        log = server.log_tail(400)
        assert not re.search(r"Child process \[\d+\] died", log), log
        assert httpx.get(f"{server.url}/healthz", timeout=30.0).status_code == 200
    finally:
        server.stop()
