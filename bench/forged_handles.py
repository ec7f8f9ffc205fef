"""Forged job handles against a scale-out `faceflow serve` (RQ runner): what each costs the API
process, and how long another client's job (submitted, then polled once) takes meanwhile.

    .venv/bin/python bench/forged_handles.py [--seconds 5] [--connections 0,8,32]
                                             [--pythonpath OTHER/src]

Starts its own ``redis-server`` (a free loopback port, the queue Redis) and `faceflow serve`
(1 inference process, no cache Redis), both stopped by PID at the end; no worker: the other
client's job is of a photo the server has cached, so it finishes at its submission. A forged
handle has the shape of the handles this server mints (read from one it answered), its
characters all ``A``. For each number of flooding connections: their answers, the API
process's CPU per forged request (from ``/proc``), and the other client's submission + poll
at the median and p99. ``--pythonpath`` runs another checkout's code, to compare.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5, help="per case (default: %(default)s)")
    parser.add_argument("--connections", default="0,8,32", help="flooding connections, each case")
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
                print(f"handles of {shape} characters")
                print("| flooding connections | answers | API CPU a forged request |"
                      " another client's job, submit + poll, p50 / p99 |")
                print("|---|---|---|---|")
                for count in (int(n) for n in args.connections.split(",")):
                    client = JobClient(server.port, photo)
                    client.start()
                    before = cpu_seconds(server.pid)
                    if count:
                        statuses = flood(server.port, forged, count, args.seconds)
                    else:
                        statuses = {}
                        time.sleep(args.seconds)
                    spent = cpu_seconds(server.pid) - before
                    client.done.set()
                    client.join()
                    answered = sum(statuses.values())
                    shown = ", ".join(f"{n} × {s}" for s, n in sorted(statuses.items())) or "-"
                    cost = f"{1000 * spent / answered:.2f} ms" if answered else "-"
                    p99 = statistics.quantiles(client.ms, n=100)[98]
                    print(
                        f"| {count} | {shown} | {cost} |"
                        f" {statistics.median(client.ms):.1f} / {p99:.1f} ms |",
                        flush=True,
                    )
        finally:
            redis.stop()


if __name__ == "__main__":
    main()
