"""The connection cap against the open-file limit (service/descriptors.py): each check runs in
a fresh interpreter whose limit is lowered, so the test session's own is never touched."""

from __future__ import annotations

import http.client
import json
import resource
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Bounds, not margins: each is seconds when idle.
START_TIMEOUT_S = 60.0
ANSWER_TIMEOUT_S = 30.0

_FIT = """
import json, logging, resource
from faceflow.service.descriptors import fit_connections, open_descriptors
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
resource.setrlimit(resource.RLIMIT_NOFILE, ({soft}, {hard}))
fitted = fit_connections(1000)
print(json.dumps([fitted, resource.getrlimit(resource.RLIMIT_NOFILE)[0], open_descriptors()]))
"""


def _fit(soft: int, hard: int) -> tuple[int, int, int, str]:
    """``fit_connections(1000)`` in a fresh interpreter whose limit is (soft, hard): the cap,
    the soft limit after, the descriptors open, and what it logged."""
    run = subprocess.run(
        [sys.executable, "-c", _FIT.format(soft=soft, hard=hard)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=START_TIMEOUT_S,
        check=True,
    )
    fitted, after, in_use = json.loads(run.stdout)
    return fitted, after, in_use, run.stderr


def _hard_limit() -> int:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return sys.maxsize if hard == resource.RLIM_INFINITY else hard


def test_a_soft_limit_below_the_cap_is_raised_within_the_hard_one() -> None:
    if _hard_limit() < 2048:
        pytest.skip("the hard open-file limit here is below 2,048")
    fitted, soft, in_use, logged = _fit(256, 2048)
    assert fitted == 1000
    assert soft >= 1000 + in_use
    assert logged == ""


def test_a_hard_limit_below_the_cap_lowers_the_cap_to_fit_and_says_so() -> None:
    fitted, soft, in_use, logged = _fit(512, 512)
    assert soft == 512
    assert 1 <= fitted < 512 - in_use
    assert "server.max_connections 1000 does not fit" in logged


@contextmanager
def _server(limit: int) -> Iterator[int]:
    """tests/service/descriptor_server.py under ``limit`` open files; its port."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.service.descriptor_server", str(limit)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                _get(port)
                break
            except OSError:
                assert time.monotonic() < deadline, "the server did not answer"
                time.sleep(0.1)
        yield port
    finally:
        process.kill()
        process.wait(timeout=START_TIMEOUT_S)


def _get(port: int) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=ANSWER_TIMEOUT_S)
    try:
        connection.request("GET", "/")
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def test_idle_connections_past_the_open_file_limit_leave_room_for_another_client() -> None:
    """Under an open-file limit of 400, the cap of 1,000 was never reached: 450 idle
    connections took every descriptor, and uvloop accepted and at once closed each connection
    beyond (another client's request: connection reset). Fitted under the limit, the cap is
    reached first and the idle connection that moved longest ago gives way."""
    with _server(400) as port:
        held = selectors.DefaultSelector()
        try:
            for _ in range(450):
                sock = socket.create_connection(("127.0.0.1", port), timeout=ANSWER_TIMEOUT_S)
                held.register(sock, selectors.EVENT_READ)
            statuses = [_get(port) for _ in range(3)]
        finally:
            for key in list(held.get_map().values()):
                key.fileobj.close()  # type: ignore[union-attr]
            held.close()
    assert statuses == [200, 200, 200]
