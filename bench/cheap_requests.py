"""What one cheap request costs the API process's event loop: requests that the parsers before the
routes walk in Python (a path's and a query's percent-escapes, a form's Content-Type, the hops of
X-Forwarded-For), and answers made from the whole app's state (``/metrics``, ``/openapi.json``),
each sent for a few seconds over keep-alive connections to a real
`faceflow serve`, beside a cache hit.

    .venv/bin/python bench/cheap_requests.py [--seconds 5] [--connections 4]
                                             [--pythonpath OTHER/src] [--only TEXT]

Starts `faceflow serve` (1 inference process, 127.0.0.1 and 10.0.0.0/8 trusted as proxies) on a
free loopback port, stopped by PID at the end. For each case it prints the answers' statuses,
the API process's CPU per request (from ``/proc``), and the time another client's ``/healthz``
took meanwhile (one request every 20 ms on a connection of its own), at the median and p99.
``--pythonpath`` runs another checkout's code (its ``src``), to compare before and after.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from faceflow.loadgen.procs import ServiceProcess

_TESTDATA = Path(__file__).resolve().parents[2] / "shared" / "testdata"


def cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def flood(port: int, request: bytes, connections: int, seconds: float) -> Counter[int]:
    """Send ``request`` again and again on ``connections`` keep-alive connections (a new one
    whenever the server closes one) for ``seconds``; the statuses answered."""
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def one() -> None:
        while time.monotonic() < stop:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                reader = sock.makefile("rb")
                while time.monotonic() < stop:
                    sock.sendall(request)
                    status = int(reader.readline().split()[1])
                    length, close = 0, False
                    while (line := reader.readline()) not in (b"\r\n", b""):
                        name, _, value = line.partition(b":")
                        if name.lower() == b"content-length":
                            length = int(value)
                        elif name.lower() == b"connection" and b"close" in value.lower():
                            close = True
                    reader.read(length)
                    with lock:
                        statuses[status] += 1
                    if close:
                        break

    threads = [threading.Thread(target=one) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


class Prober(threading.Thread):
    """Another client: ``GET /healthz`` every 20 ms on its own connection, timed."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.ms: list[float] = []
        self.done = threading.Event()

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        while not self.done.is_set():
            start = time.perf_counter()
            connection.request("GET", "/healthz")
            connection.getresponse().read()
            self.ms.append((time.perf_counter() - start) * 1000)
            time.sleep(0.02)


def cases(image: bytes) -> dict[str, bytes]:
    def post(target: bytes, headers: bytes = b"", body: bytes = image) -> bytes:
        head = b"POST %s HTTP/1.1\r\nhost: x\r\n%scontent-length: %d\r\n\r\n"
        return head % (target, headers, len(body)) + body

    def get(target: bytes) -> bytes:
        return b"GET %s HTTP/1.1\r\nhost: x\r\n\r\n" % target

    boundary = b"XyZ"
    form = (
        b"--XyZ\r\ncontent-disposition: form-data; name=image\r\n\r\n" + image + b"\r\n--XyZ--\r\n"
    )
    form_type = b"content-type: multipart/form-data; boundary=" + boundary
    trusted = b", ".join([b"127.0.0.1"] * 5_800)
    written = b", ".join([b"1.2.3.4"] * 6_300) + b", 198.51.100.7"
    return {
        "a cache hit": post(b"/v1/detect"),
        "a hit, query of 21,000 escapes": post(b"/v1/detect?threshold=" + b"%31" * 21_000),
        "a path of 21,000 escapes": b"GET /v1/jobs/"
        + b"%41" * 21_000
        + b" HTTP/1.1\r\nhost: x\r\n\r\n",
        "a hit, as a form": post(b"/v1/detect", form_type + b"\r\n", form),
        "a form's content-type of 60,000 ;": post(
            b"/v1/detect", form_type + b";" * 60_000 + b"\r\n", form
        ),
        "a hit, X-Forwarded-For of 5,800 trusted hops": post(
            b"/v1/detect", b"x-forwarded-for: " + trusted + b"\r\n"
        ),
        "a hit, 6,300 hops written ahead of the client's": post(
            b"/v1/detect", b"x-forwarded-for: " + written + b"\r\n"
        ),
        "/metrics, once each path was sent each method": get(b"/metrics"),
        "/openapi.json": get(b"/openapi.json"),
        "the web page, / (20 KB)": get(b"/"),
        "the web page's /js/i18n.js (33 KB)": get(b"/js/i18n.js"),
        "the web page's /favicon.svg (0.5 KB)": get(b"/favicon.svg"),
    }


def touch_every_path(port: int) -> None:
    """Each path of the API (and an unknown one) sent each method once, with and without an
    unknown option: the request counters /metrics renders grow from about 170 series to 900."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/openapi.json")
    paths = [*json.loads(connection.getresponse().read())["paths"], "/", "/nope"]
    for path in paths:
        path = path.replace("{handle}", "abc").replace("{name}", "zz")
        for method in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
            for query in ("", "?zz=1"):
                # A connection each: some answers close theirs.
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                connection.request(method, path + query, b"junk")
                connection.getresponse().read()
                connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5, help="per case (default: %(default)s)")
    parser.add_argument(
        "--connections", type=int, default=4, help="per case (default: %(default)s)"
    )
    parser.add_argument("--pythonpath", help="another checkout's src, run instead of this one")
    parser.add_argument("--only", help="run only the cases whose name holds this text")
    args = parser.parse_args()
    env = {
        "FACEFLOW_RUNTIME__PROCESSES": "1",
        "FACEFLOW_SERVER__TRUSTED_PROXIES": '["127.0.0.1", "10.0.0.0/8"]',
    }
    if args.pythonpath:
        env["PYTHONPATH"] = args.pythonpath
    image = (_TESTDATA / "obama_small.jpg").read_bytes()
    with (
        tempfile.TemporaryDirectory() as work,
        ServiceProcess(env, Path(work) / "serve.log") as server,
    ):
        flood(server.port, cases(image)["a cache hit"], 1, 0.5)  # computed once, then hits
        touch_every_path(server.port)
        print("| case | answers | API CPU a request | another client's /healthz p50 / p99 |")
        print("|---|---|---|---|")
        for name, request in cases(image).items():
            if args.only and args.only not in name:
                continue
            prober = Prober(server.port)
            prober.start()
            before = cpu_seconds(server.pid)
            statuses = flood(server.port, request, args.connections, args.seconds)
            spent = cpu_seconds(server.pid) - before
            prober.done.set()
            prober.join()
            answered = sum(statuses.values())
            shown = ", ".join(f"{n} × {s}" for s, n in sorted(statuses.items()))
            p99 = statistics.quantiles(prober.ms, n=100)[98]
            print(
                f"| {name} | {shown} | {1000 * spent / max(answered, 1):.2f} ms |"
                f" {statistics.median(prober.ms):.1f} / {p99:.1f} ms |",
                flush=True,
            )


if __name__ == "__main__":
    main()
