"""Forged job handles against a scale-out `faceflow serve` (RQ runner): what each costs the API
process, and how long another client's job (submitted, then polled once) takes meanwhile.

    .venv/bin/python bench/forged_handles.py [--seconds 5] [--connections 0,8,32]
                                             [--rate N] [--pythonpath OTHER/src]

Starts its own ``redis-server`` (a free loopback port, the queue Redis) and `faceflow serve`
(1 inference process, no cache Redis), both stopped by PID at the end; no worker: the other
client's job is of a photo the server has cached, so it finishes at its submission. A forged
handle has the shape of the handles this server mints (read from one it answered), its
characters all ``A``; ``GET /healthz`` is flooded the same way for reference. For each number
of flooding connections: their answers, the API process's CPU per request (from ``/proc``), the
queue Redis's commands per request (``INFO stats``, the other client's among them), and the
other client's submission + poll at the median and p99. ``--rate`` paces the flood (N
requests a second in all) instead of sending each as soon as the last is answered.
``--pythonpath`` runs another checkout's code, to compare.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import statistics
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from redis import Redis

from cheap_requests import cpu_seconds, flood
from faceflow.loadgen.procs import ServiceProcess
from jobs import QUEUE, RedisServer

_TESTDATA = Path(__file__).resolve().parents[2] / "shared" / "testdata"


class JobClient(threading.Thread):
    """Another client: a detect job of a cached photo, then one poll of it, every 20 ms."""

    def __init__(self, port: int, photo: bytes) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.photo = photo
        self.ms: list[float] = []
        self.done = threading.Event()

    def one(self, connection: http.client.HTTPConnection) -> None:
        connection.request("POST", "/v1/jobs?operation=detect", self.photo)
        body = json.loads(connection.getresponse().read())
        connection.request("GET", f"/v1/jobs/{body['handle']}")
        connection.getresponse().read()

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        while not self.done.is_set():
            start = time.perf_counter()
            self.one(connection)
            self.ms.append((time.perf_counter() - start) * 1000)
            time.sleep(0.02)


def paced_flood(
    port: int, request: bytes, connections: int, seconds: float, rate: float
) -> Counter[int]:
    """``request`` at ``rate`` a second in all over ``connections`` keep-alive connections (each
    sends its next when its slot comes, or at once when late), for ``seconds``: an attacker
    whose rate is its own, whatever the server's speed; the statuses answered."""
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    start = time.monotonic()
    gap = connections / rate

    def one(offset: float) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            reader = sock.makefile("rb")
            due = start + offset
            while due < start + seconds:
                time.sleep(max(0.0, due - time.monotonic()))
                sock.sendall(request)
                status = int(reader.readline().split()[1])
                length = 0
                while (line := reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                reader.read(length)
                with lock:
                    statuses[status] += 1
                due += gap

    threads = [
        threading.Thread(target=one, args=(i * gap / connections,)) for i in range(connections)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def commands_processed(url: str) -> int:
    client = Redis.from_url(url)
    try:
        return int(client.info("stats")["total_commands_processed"])
    finally:
        client.close()


def row(
    server: ServiceProcess,
    url: str,
    photo: bytes,
    name: str,
    request: bytes,
    connections: int,
    seconds: float,
    rate: float | None,
) -> None:
    """One flood of ``request`` beside the other client, printed as a table row."""
    client = JobClient(server.port, photo)
    client.start()
    before, sent = cpu_seconds(server.pid), commands_processed(url)
    if connections and rate:
        statuses = paced_flood(server.port, request, connections, seconds, rate)
    elif connections:
        statuses = flood(server.port, request, connections, seconds)
    else:
        statuses = Counter()
        time.sleep(seconds)
    spent, sent = cpu_seconds(server.pid) - before, commands_processed(url) - sent
    client.done.set()
    client.join()
    answered = sum(statuses.values())
    shown = ", ".join(f"{n} × {s}" for s, n in sorted(statuses.items())) or "-"
    cost = f"{1000 * spent / answered:.2f} ms" if answered else "-"
    # The other client's own commands are in the count: about as many as with no flood.
    commands = f"{sent / answered:.2f} ({sent:,})" if answered else f"({sent:,})"
    p99 = statistics.quantiles(client.ms, n=100)[98]
    print(
        f"| {name} | {connections} | {shown} | {cost} | {commands} |"
        f" {statistics.median(client.ms):.1f} / {p99:.1f} ms |",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5, help="per case (default: %(default)s)")
    parser.add_argument("--connections", default="0,8,32", help="flooding connections, each case")
    parser.add_argument(
        "--rate", type=float, help="requests a second in all, paced (default: as fast as answered)"
    )
    parser.add_argument("--pythonpath", help="another checkout's src, run instead of this one")
    args = parser.parse_args()
    photo = (_TESTDATA / "obama_small.jpg").read_bytes()
    with tempfile.TemporaryDirectory() as work:
        redis = RedisServer(Path(work))
        env = {
            "FACEFLOW_JOBS__REDIS_URL": redis.url,
            "FACEFLOW_JOBS__QUEUE_NAME": QUEUE,
            "FACEFLOW_RUNTIME__PROCESSES": "1",
        }
        if args.pythonpath:
            env["PYTHONPATH"] = args.pythonpath
        try:
            with ServiceProcess(env, Path(work) / "serve.log") as server:
                connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
                connection.request("POST", "/v1/detect", photo)  # cached from now on
                connection.getresponse().read()
                connection.request("POST", "/v1/jobs?operation=detect", photo)
                shape = len(json.loads(connection.getresponse().read())["handle"])
                forged = b"GET /v1/jobs/%s HTTP/1.1\r\nhost: x\r\n\r\n" % (b"A" * shape)
                floods = {
                    "a forged handle": forged,
                    "/healthz (reference)": b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n",
                }
                print(f"handles of {shape} characters")
                print(
                    "| flood | connections | answers | API CPU a request |"
                    " queue Redis commands a request |"
                    " another client's job, submit + poll, p50 / p99 |"
                )
                print("|---|---|---|---|---|---|")
                for count in (int(n) for n in args.connections.split(",")):
                    for name, request in floods.items() if count else [("none", b"")]:
                        row(server, redis.url, photo, name, request, count, args.seconds, args.rate)
        finally:
            redis.stop()


if __name__ == "__main__":
    main()
