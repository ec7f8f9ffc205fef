"""Server CPU per cache hit, against the bare-ASGI floor: µs of process CPU per request.

    .venv/bin/python bench/hit_cpu.py [--image PATH] [--seconds 6] [--rounds 3] [--connections 200]
    .venv/bin/python bench/hit_cpu.py --profile DIR   # also a py-spy profile per target

Requests per second on this shared 2-core VM move by ±20 % between runs; the CPU a server spends
per request moves far less, because it does not count the time the server waits for a core. So
each server (faceflow with 2 HTTP workers, as bench/service.py runs it, and bench/bare_asgi.py
under uvicorn with 2 workers) is pinned to core 0 and ``wrk`` to core 1, and the figure is the
server's user + system CPU (every process of its tree, from /proc) divided by the requests wrk
completed. Targets alternate round by round (floor, raw-body hit, multipart hit, echo-size), so
slow and fast spells of the machine fall on all of them alike; the table gives each target's
median over the rounds.

``--profile DIR`` samples one HTTP worker of each server with py-spy (``pip install --target``
anywhere, then ``--py-spy PATH``) during one extra run and writes its collapsed stacks to DIR.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx

from faceflow.loadgen.procs import ServiceProcess, cpu_seconds
from service import BARE_ASGI, FORM_CONTENT_TYPE, add_image_option, form_body, jpeg_near

SERVER_CORE = 0
CLIENT_CORE = 1


@dataclass
class Sample:
    requests: int
    seconds: float
    cpu_s: float
    p99_ms: float

    @property
    def us_per_request(self) -> float:
        return self.cpu_s / max(1, self.requests) * 1e6

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def _pin(server: ServiceProcess) -> None:
    if not PINNED:
        return
    for pid in server.pids():
        try:
            os.sched_setaffinity(pid, {SERVER_CORE})
        except OSError:
            continue


PINNED = True


def _wrk(url: str, script: Path, seconds: int, connections: int) -> tuple[int, float, float]:
    pin = ("taskset", "-c", str(CLIENT_CORE), "wrk", "-t1") if PINNED else ("wrk", "-t2")
    command = [
        *pin,
        f"-c{connections}",
        *(f"-d{seconds}s", "--latency", "-s", str(script), url),
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    done = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
    assert done is not None, out
    elapsed = float(done.group(2)) / (1000 if done.group(3) == "ms" else 1)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    p99_ms = float("nan")
    if p99 is not None:
        scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[p99.group(2)]
        p99_ms = float(p99.group(1)) * scale
    return int(done.group(1)), elapsed, p99_ms


def _script(work: Path, name: str, body: bytes, content_type: str) -> Path:
    data = work / f"{name}.bin"
    data.write_bytes(body)
    script = work / f"{name}.lua"
    script.write_text(
        f'local f = io.open("{data}", "rb")\nwrk.body = f:read("*all")\nf:close()\n'
        f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "{content_type}"\n'
    )
    return script


def measure(server: ServiceProcess, url: str, script: Path, seconds: int, conns: int) -> Sample:
    pids = server.pids()
    before = cpu_seconds(pids)
    requests, elapsed, p99 = _wrk(url, script, seconds, conns)
    return Sample(requests, elapsed, cpu_seconds(pids) - before, p99)


def _workers(server: ServiceProcess) -> list[int]:
    """The uvicorn worker processes: the server's direct children that are not
    multiprocessing helpers."""
    workers = []
    for pid in server.pids():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == server.pid and b"resource_tracker" not in cmdline:
            workers.append(pid)
    return workers


def profile(
    py_spy: str, server: ServiceProcess, url: str, script: Path, seconds: int, conns: int, out: Path
) -> None:
    worker = _workers(server)[0]
    spy = subprocess.Popen(
        [
            *(py_spy, "record", "--pid", str(worker), "--format", "raw", "-r", "200"),
            *("--duration", str(seconds), "-o", str(out), "--nonblocking"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wrk(url, script, seconds, conns)
    spy.wait(timeout=seconds + 30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_image_option(parser)
    parser.add_argument(
        "--seconds", type=int, default=6, help="length of each wrk run (default: %(default)s)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds over all targets, the median kept (default: %(default)s)",
    )
    parser.add_argument(
        "--connections", type=int, default=200, help="wrk's connections (default: %(default)s)"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="also sample one HTTP worker per target with py-spy; collapsed stacks to this folder",
    )
    parser.add_argument(
        "--no-pin", action="store_true", help="as bench/service.py runs: no pinning, wrk -t2"
    )
    parser.add_argument(
        "--before",
        type=Path,
        action="append",
        default=[],
        help="the src/ of another checkout: its hit path measured too, interleaved (repeatable)",
    )
    parser.add_argument(
        "--py-spy",
        default=shutil.which("py-spy") or "py-spy",
        help="the py-spy program --profile runs (default: %(default)s)",
    )
    args = parser.parse_args()
    global PINNED
    PINNED = not args.no_pin
    image = jpeg_near(args.image)
    samples: dict[str, list[Sample]] = {}
    with tempfile.TemporaryDirectory(prefix="faceflow-hitcpu-") as tmp:
        work = Path(tmp)
        raw = _script(work, "raw", image, "image/jpeg")
        form = _script(work, "form", form_body(image), FORM_CONTENT_TYPE)
        env = {"FACEFLOW_SERVER__HTTP_WORKERS": "2"}
        with contextlib.ExitStack() as stack:
            faceflow = stack.enter_context(ServiceProcess(env, work / "serve.log"))
            bare = stack.enter_context(ServiceProcess({}, work / "bare.log", args=BARE_ASGI))
            servers = {"": faceflow}
            for n, before in enumerate(args.before):
                before_env = {**env, "PYTHONPATH": str(before.resolve())}
                label = "before: " if len(args.before) == 1 else f"before {n + 1}: "
                servers[label] = stack.enter_context(
                    ServiceProcess(before_env, work / f"before-{n}.log")
                )
            _pin(bare)
            targets = {"floor (bare ASGI)": (bare, bare.url, raw)}
            for label, server in servers.items():
                _pin(server)
                analyze = f"{server.url}/v1/analyze"
                # Every HTTP worker's own cache must hold the answer: each answers a miss once.
                _wrk(analyze, raw, 2, 20)
                httpx.post(
                    analyze, content=image, headers={"Content-Type": "image/jpeg"}, timeout=60
                )
                targets[f"{label}hit, raw body"] = (server, analyze, raw)
                targets[f"{label}hit, multipart"] = (server, analyze, form)
                targets[f"{label}echo-size"] = (server, f"{server.url}/v1/echo-size", raw)
            for _ in range(args.rounds):
                for name, (server, url, script) in targets.items():
                    sample = measure(server, url, script, args.seconds, args.connections)
                    samples.setdefault(name, []).append(sample)
            if args.profile is not None:
                args.profile.mkdir(parents=True, exist_ok=True)
                for name, (server, url, script) in targets.items():
                    slug = re.sub(r"[^a-z]+", "-", name).strip("-")
                    out = args.profile / f"{slug}.txt"
                    profile(args.py_spy, server, url, script, args.seconds, args.connections, out)
    placement = (
        f"server pinned to core {SERVER_CORE}, wrk (1 thread) to core {CLIENT_CORE}"
        if PINNED
        else "nothing pinned, wrk 2 threads"
    )
    print(
        f"{placement}, {args.connections} connections; {len(image)} B JPEG; medians of "
        f"{args.rounds} rounds of {args.seconds} s"
    )
    floor_us = statistics.median(s.us_per_request for s in samples["floor (bare ASGI)"])
    floor_rate = statistics.median(s.rate for s in samples["floor (bare ASGI)"])
    print(
        f"{'target':28} {'µs CPU/req':>11} {'vs floor':>9} {'req/s':>8} {'share':>6} {'p99 ms':>7}"
    )
    for name, runs in samples.items():
        us = statistics.median(s.us_per_request for s in runs)
        rate = statistics.median(s.rate for s in runs)
        p99 = statistics.median(s.p99_ms for s in runs)
        print(
            f"{name:28} {us:11.0f} {us - floor_us:+9.0f} {rate:8.0f} {rate / floor_rate:6.0%} "
            f"{p99:7.0f}"
        )
        print("    rounds:", ", ".join(f"{s.us_per_request:.0f} µs/{s.rate:.0f}/s" for s in runs))


if __name__ == "__main__":
    main()
