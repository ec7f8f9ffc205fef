"""Each HTTP worker of `faceflow serve --http-workers N` accepts on its own socket
(faceflow.cli.listeners): the kernel spreads connections over the sockets, a port already served
is refused, and connections queued on a worker's socket are served by its replacement."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import select
import signal
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from uvicorn.config import STARTUP_FAILURE, Config

from faceflow.cli.listeners import PortGroup, queues_migrate_on_close, run_workers
from tests.cli.test_serve_workers import spawned_children
from tests.fixtures.live_server import READY_TIMEOUT_S, LiveServer, LiveServerFactory

HOST = "127.0.0.1"
CLIENTS = 64
_TCP_LISTEN = "0A"


def accept_all(listeners: list[socket.socket], expected: int) -> list[list[socket.socket]]:
    """Accept ``expected`` connections in all from ``listeners``; per listener, what it got."""
    accepted: list[list[socket.socket]] = [[] for _ in listeners]
    deadline = time.monotonic() + 30
    while sum(map(len, accepted)) < expected and time.monotonic() < deadline:
        ready, _, _ = select.select(listeners, [], [], 1.0)
        for sock in ready:
            accepted[listeners.index(sock)].append(sock.accept()[0])
    return accepted


@pytest.fixture
def group() -> Iterator[PortGroup]:
    ports = PortGroup(HOST, 0, 2)
    yield ports
    for sock in ports.sockets:
        sock.close()


def test_the_kernel_spreads_connections_over_the_groups_sockets(group: PortGroup) -> None:
    for sock in group.sockets:
        sock.listen(CLIENTS)
    clients = [socket.create_connection((HOST, group.port)) for _ in range(CLIENTS)]
    accepted = accept_all(group.sockets, CLIENTS)
    try:
        counts = [len(got) for got in accepted]
        assert sum(counts) == CLIENTS
        # Hashed by address and port: all 64 on one socket has a chance of 2 ** -63.
        assert min(counts) > 0, counts
    finally:
        for conn in [*clients, *(c for got in accepted for c in got)]:
            conn.close()


@pytest.fixture
def served(group: PortGroup) -> PortGroup:
    """A group whose workers listen (a port bound but not yet listening is not taken)."""
    for sock in group.sockets:
        sock.listen()
    return group


def test_a_port_already_served_is_refused(served: PortGroup) -> None:
    with pytest.raises(OSError, match="in use") as refused:
        PortGroup(HOST, served.port, 2)
    assert refused.value.errno == errno.EADDRINUSE
    with socket.socket() as plain:
        plain.bind((HOST, 0))
        plain.listen()
        with pytest.raises(OSError, match="in use") as refused:
            PortGroup(HOST, plain.getsockname()[1], 2)
        assert refused.value.errno == errno.EADDRINUSE


def test_the_workers_refuse_to_start_on_a_port_already_served(served: PortGroup) -> None:
    config = Config("faceflow.service.app:app_from_env", host=HOST, port=served.port, workers=2)
    with pytest.raises(SystemExit) as stopped:
        run_workers(config)
    assert stopped.value.code == STARTUP_FAILURE


def test_a_connection_queued_on_a_slot_outlives_the_worker_that_listened(
    group: PortGroup,
) -> None:
    """What a worker's exit does to its slot: the worker's copy of the socket closes, the
    supervisor's stays open, and the replacement accepts what was queued meanwhile."""
    slot = group.sockets[0]
    worker = slot.dup()
    worker.listen(8)
    group.sockets[1].close()  # only the slot under test takes connections
    with socket.create_connection((HOST, group.port)) as client:
        client.sendall(b"queued")
        worker.close()
        replacement = slot.dup()
        with replacement:
            conn, _ = replacement.accept()
            with conn:
                assert conn.recv(16) == b"queued"


def listening_sockets(port: int) -> set[str]:
    """Inodes of the TCP sockets listening on ``port`` (IPv4)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == _TCP_LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
            found.add(fields[9])
    return found


def sockets_held(pid: int) -> set[str]:
    held = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                match = re.fullmatch(r"socket:\[(\d+)\]", str(fd.readlink()))
                if match:
                    held.add(match.group(1))
    return held


def listener_of_each_worker(server: LiveServer) -> dict[int, set[str]]:
    listeners = listening_sockets(server.port)
    return {pid: sockets_held(pid) & listeners for pid in spawned_children(server.pid)}


@pytest.fixture(scope="module")
def two_workers(live_server_factory: LiveServerFactory) -> Iterator[LiveServer]:
    server = live_server_factory(SERVER__HTTP_WORKERS=2, RUNTIME__PROCESSES=1)
    yield server
    server.stop()


@pytest.mark.slow
def test_each_http_worker_accepts_on_its_own_socket(two_workers: LiveServer) -> None:
    held = listener_of_each_worker(two_workers)
    assert len(held) == 2
    first, second = held.values()
    assert len(first) == len(second) == 1
    assert first != second
    assert first | second == listening_sockets(two_workers.port)


@pytest.mark.slow
def test_a_worker_slot_is_kept_unless_its_queue_can_move(two_workers: LiveServer) -> None:
    if queues_migrate_on_close():
        pytest.skip("this machine moves a closed listener's queue: SIGTTOU retires a worker")
    before = listener_of_each_worker(two_workers)
    os.kill(two_workers.pid, signal.SIGTTOU)
    deadline = time.monotonic() + 30
    while "Keeping 2 processes" not in two_workers.log_tail() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "Keeping 2 processes" in two_workers.log_tail(), two_workers.log_tail()
    assert listener_of_each_worker(two_workers) == before


@pytest.mark.slow
def test_connections_queued_for_a_killed_worker_are_served_by_its_replacement(
    two_workers: LiveServer,
) -> None:
    held = listener_of_each_worker(two_workers)
    victim, survivor = held
    os.kill(victim, signal.SIGKILL)

    def echo(_: int) -> int:
        # A connection of its own each: the kernel hashes each to one of the two sockets.
        with httpx.Client(timeout=READY_TIMEOUT_S) as http:
            return http.post(f"{two_workers.url}/v1/echo-size", content=b"x" * 100).status_code

    with ThreadPoolExecutor(8) as threads:
        statuses = list(threads.map(echo, range(32)))
    assert statuses == [200] * 32
    now = listener_of_each_worker(two_workers)
    assert survivor in now
    (replacement,) = set(now) - {survivor}
    # The replacement serves the killed worker's own socket: what was queued on it survived.
    assert now[replacement] == held[victim]
    assert re.search(rf"Child process \[{victim}\] died", two_workers.log_tail(200))
