"""One client holding more idle connections than ``server.max_connections`` (reopening each one
the server closes) against a real `faceflow serve` whose open-file limit is set: another
client's ``/healthz`` meanwhile (a new connection every 0.5 s), the API process's CPU per
connection it closed for a new one, and its descriptors.

    .venv/bin/python bench/idle_connections.py [--soft 1024] [--hard 1024] [--connections 1100]
                                               [--seconds 20] [--pythonpath OTHER/src]

The server (2 inference processes, on a free loopback port, stopped by PID at the end) runs
under the soft and hard ``RLIMIT_NOFILE`` given (a shell's default soft limit is 1,024, and so
is a Docker container's since Docker 25). ``--pythonpath`` runs another checkout's code (its
``src``), to compare before and after.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import selectors
import socket
import statistics
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from faceflow.loadgen.procs import ServiceProcess, cpu_seconds

# `faceflow serve` under the limits in BENCH_NOFILE (soft,hard); ServiceProcess appends --port.
_UNDER_LIMIT = (
    "import os, resource, runpy, sys\n"
    "soft, hard = map(int, os.environ['BENCH_NOFILE'].split(','))\n"
    "resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))\n"
    "sys.argv = ['faceflow', 'serve', *sys.argv[1:]]\n"
    "runpy.run_module('faceflow', run_name='__main__')\n"
)


def hold(port: int, connections: int, until: float) -> int:
    """Keep ``connections`` connections open, sending nothing, until ``until``; each one the
    server closes is opened again at once. How many were opened in all."""
    selector = selectors.DefaultSelector()
    opened = 0

    def open_one() -> None:
        nonlocal opened
        sock = socket.socket()
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):  # connecting: the selector sees the rest
            sock.connect(("127.0.0.1", port))
        selector.register(sock, selectors.EVENT_READ)
        opened += 1

    for _ in range(connections):
        open_one()
    while time.monotonic() < until:
        for key, _ in selector.select(0.2):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                data = sock.recv(4096)
            except OSError:
                data = b""
            if not data:
                selector.unregister(sock)
                sock.close()
                open_one()
    for key in list(selector.get_map().values()):
        key.fileobj.close()  # type: ignore[union-attr]
    selector.close()
    return opened


def probe(port: int) -> tuple[str, float]:
    """``GET /healthz`` on a new connection: its status (or the error) and milliseconds."""
    start = time.perf_counter()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/healthz")
        response = connection.getresponse()
        response.read()
        connection.close()
        outcome = str(response.status)
    except (OSError, http.client.HTTPException) as exc:
        outcome = type(exc).__name__
    return outcome, (time.perf_counter() - start) * 1000


def given_way(port: int) -> float:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/metrics")
    for line in connection.getresponse().read().decode().splitlines():
        if line.startswith("faceflow_connections_given_way_total "):
            return float(line.split()[1])
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--soft", type=int, default=1024, help="soft RLIMIT_NOFILE")
    parser.add_argument("--hard", type=int, default=1024, help="hard RLIMIT_NOFILE")
    parser.add_argument("--connections", type=int, default=1100, help="held idle")
    parser.add_argument("--seconds", type=float, default=20, help="how long (default: %(default)s)")
    parser.add_argument("--pythonpath", help="another checkout's src, run instead of this one")
    args = parser.parse_args()
    env = {"FACEFLOW_RUNTIME__PROCESSES": "2", "BENCH_NOFILE": f"{args.soft},{args.hard}"}
    if args.pythonpath:
        env["PYTHONPATH"] = args.pythonpath
    with (
        tempfile.TemporaryDirectory() as work,
        ServiceProcess(env, Path(work) / "serve.log", args=("-c", _UNDER_LIMIT)) as server,
    ):
        fds = Path(f"/proc/{server.pid}/fd")
        at_ready = sum(1 for _ in fds.iterdir())
        ways_before = given_way(server.port)
        cpu_before = cpu_seconds([server.pid])
        until = time.monotonic() + args.seconds
        opened: list[int] = []
        holder = threading.Thread(
            target=lambda: opened.append(hold(server.port, args.connections, until))
        )
        holder.start()
        time.sleep(1)
        probes: list[tuple[str, float]] = []
        most = 0
        while time.monotonic() < until - 1:
            probes.append(probe(server.port))
            most = max(most, sum(1 for _ in fds.iterdir()))
            time.sleep(0.5)
        holder.join()
        spent = cpu_seconds([server.pid]) - cpu_before
        ways = given_way(server.port) - ways_before
        limits = next(
            line.split()[3:5]
            for line in Path(f"/proc/{server.pid}/limits").read_text().splitlines()
            if line.startswith("Max open files")
        )
        statuses = Counter(outcome for outcome, _ in probes)
        ms = [ms for outcome, ms in probes if outcome == "200"] or [float("nan")]
        print(
            f"open-file limit (soft, hard) set {args.soft}, {args.hard}, serving {limits[0]},"
            f" {limits[1]}; descriptors at ready {at_ready}, at most {most}\n"
            f"held {args.connections} idle connections for {args.seconds:g} s:"
            f" {opened[0]} opened, {ways:.0f} given way"
            f" ({1000 * spent / max(ways, 1):.2f} ms of API CPU each)\n"
            f"another client's /healthz: {dict(statuses)};"
            f" answered in {statistics.median(ms):.0f} ms at the median, {max(ms):.0f} at most"
        )


if __name__ == "__main__":
    main()
