"""Where a cache hit's p99 comes from, against the bare-ASGI floor's, in one run.

    .venv/bin/python bench/hit_tail.py [--seconds 6] [--rounds 3] [--before OTHER/src]

faceflow (2 HTTP workers) and bench/bare_asgi.py (2 uvicorn workers) run with bench/gc_probe/
first in ``PYTHONPATH`` and ``FACEFLOW_TAIL_PROBE_DIR`` set, so each worker records its requests'
time inside the server, its event loop's lag, its slow collections and its read pauses
(bench/gc_probe/tail_probe.py). ``wrk -t2 -c200`` drives the floor, raw-body hits and multipart
hits in turn, round after round, as bench/service.py does. Per target and round: requests/s,
server CPU µs per request (whole process tree), wrk's p99 beside the server's own p50/p99, the
loop lag's p99 and maximum, read pauses per request, requests per worker, connections per
worker (wrk's 200, counted half-way through the run), the machine's TCP events during the run
(tail-loss probes, retransmission timeouts, zero windows wanted, listen-queue overflows; from
/proc/net/netstat, so other traffic counts too) and the slowest collections.
A p99 that wrk sees but the server does not is spent outside the request's own
handling: waiting in the socket for the loop's next turn, or in the load generator.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

import hit_cpu
from faceflow.loadgen.procs import ServiceProcess, cpu_seconds, load_average
from hit_cpu import _script, _wrk
from service import BARE_ASGI, FORM_CONTENT_TYPE, add_image_option, form_body, jpeg_near

PROBE = Path(__file__).resolve().parent / "gc_probe"
_ESTABLISHED = "01"
_WRITE_WAIT_S = 2.5  # the probes write every 2 s


@dataclass
class Tally:
    latency_ms: Counter[int] = field(default_factory=Counter)
    lag_ms: Counter[int] = field(default_factory=Counter)
    counts: Counter[str] = field(default_factory=Counter)
    slow_gc: list[tuple[int, float]] = field(default_factory=list)
    per_worker: dict[str, int] = field(default_factory=dict)


def read_tally(directory: Path) -> Tally:
    tally = Tally()
    for path in sorted(directory.glob("tail-*.json")):
        state: dict[str, Any] = json.loads(path.read_text())
        tally.latency_ms.update({int(k): v for k, v in state["latency_ms"].items()})
        tally.lag_ms.update({int(k): v for k, v in state["lag_ms"].items()})
        tally.counts.update(state["counts"])
        tally.slow_gc += [(int(g), float(ms)) for g, ms in state["slow_gc"]]
        tally.per_worker[path.name] = int(state["counts"].get("requests", 0))
    return tally


def since(after: Tally, before: Tally) -> Tally:
    return Tally(
        after.latency_ms - before.latency_ms,
        after.lag_ms - before.lag_ms,
        after.counts - before.counts,
        after.slow_gc[len(before.slow_gc) :],
        {k: v - before.per_worker.get(k, 0) for k, v in after.per_worker.items()},
    )


def connections_per_worker(pids: list[int], port: int) -> list[int]:
    """Established connections to ``port`` held by each of ``pids`` that holds any, fewest
    first (IPv4 loopback)."""
    established = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == _ESTABLISHED and int(fields[1].rsplit(":", 1)[1], 16) == port:
            established.add(fields[9])
    counts = []
    for pid in pids:
        held = 0
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    inode = re.fullmatch(r"socket:\[(\d+)\]", str(fd.readlink()))
                    held += inode is not None and inode.group(1) in established
        if held:
            counts.append(held)
    return sorted(counts)


TCP_EVENTS = ("TCPLossProbes", "TCPTimeouts", "TCPWantZeroWindowAdv", "ListenOverflows")


def tcp_events() -> dict[str, int]:
    """The machine's TcpExt counters named in TCP_EVENTS, so far."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    counters: dict[str, int] = {}
    for names, values in zip(lines[::2], lines[1::2], strict=True):
        if names.startswith("TcpExt:"):
            counters = dict(zip(names.split()[1:], map(int, values.split()[1:]), strict=True))
    return {name: counters.get(name, 0) for name in TCP_EVENTS}


def quantile(histogram: Counter[int], q: float) -> int:
    total = sum(histogram.values())
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= q * total:
            return value
    return -1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_image_option(parser)
    parser.add_argument(
        "--seconds",
        type=int,
        default=6,
        help="length of each wrk run, one per target per round (default: %(default)s)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds over all targets, each printed (default: %(default)s)",
    )
    parser.add_argument("--before", type=Path, default=None, help="another checkout's src/")
    args = parser.parse_args()
    hit_cpu.PINNED = False  # as bench/service.py runs: nothing pinned, wrk -t2
    image = jpeg_near(args.image)
    with (
        tempfile.TemporaryDirectory(prefix="faceflow-hittail-") as tmp,
        contextlib.ExitStack() as st,
    ):
        work = Path(tmp)
        raw = _script(work, "raw", image, "image/jpeg")
        form = _script(work, "form", form_body(image), FORM_CONTENT_TYPE)

        def serve(name: str, env: dict[str, str], src: Path | None = None) -> tuple[Path, Any]:
            probes = work / name
            probes.mkdir()
            path = f"{PROBE}:{src.resolve()}" if src is not None else str(PROBE)
            env = {**env, "PYTHONPATH": path, "FACEFLOW_TAIL_PROBE_DIR": str(probes)}
            if name == "floor":
                server = ServiceProcess(env, work / f"{name}.log", args=BARE_ASGI)
            else:
                server = ServiceProcess(env, work / f"{name}.log")
            return probes, st.enter_context(server)

        two = {"FACEFLOW_SERVER__HTTP_WORKERS": "2"}
        floor_probes, floor = serve("floor", {})
        targets = {"floor": (floor, floor.url, raw, floor_probes)}
        servers = [("", None)] + ([("before ", args.before)] if args.before else [])
        for label, src in servers:
            probes, server = serve(f"faceflow{len(targets)}", two, src)
            analyze = f"{server.url}/v1/analyze"
            _wrk(analyze, raw, 2, 20)  # every HTTP worker answers its miss once
            httpx.post(analyze, content=image, headers={"Content-Type": "image/jpeg"}, timeout=60)
            targets[f"{label}hit raw"] = (server, analyze, raw, probes)
            targets[f"{label}hit multipart"] = (server, analyze, form, probes)
        time.sleep(_WRITE_WAIT_S)
        print(f"load average {load_average()}; wrk -t2 -c200, {args.seconds} s per target")
        print(
            f"{'round target':26} {'req/s':>6} {'µs/req':>6} {'wrk p99':>8} "
            f"{'server p50/p99':>14} {'lag p99/max':>12} {'pauses':>6}  "
            "requests, connections per worker; slowest GC ms; "
            "TCP loss probes, timeouts, zero windows, listen overflows"
        )
        for round_ in range(args.rounds):
            for name, (server, url, script, probes) in targets.items():
                before = read_tally(probes)
                pids = server.pids()
                split: list[int] = []
                sample = threading.Timer(
                    args.seconds / 2,
                    lambda s=server, p=pids, into=split: into.extend(
                        connections_per_worker(p, s.port)
                    ),
                )
                cpu = cpu_seconds(pids)
                events = tcp_events()
                sample.start()
                requests, elapsed, p99 = _wrk(url, script, args.seconds, 200)
                sample.join()
                tcp = {k: v - events[k] for k, v in tcp_events().items()}
                cpu = cpu_seconds(pids) - cpu
                time.sleep(_WRITE_WAIT_S)
                t = since(read_tally(probes), before)
                gcs = sorted(ms for _, ms in t.slow_gc)[-3:]
                served = max(1, t.counts["requests"])
                p50_in, p99_in = quantile(t.latency_ms, 0.5), quantile(t.latency_ms, 0.99)
                print(
                    f"{round_} {name:24} {requests / elapsed:6.0f} {cpu / requests * 1e6:6.0f} "
                    f"{p99:6.0f}ms {p50_in:5}/{p99_in:4}ms "
                    f"{quantile(t.lag_ms, 0.99):5}/{max(t.lag_ms, default=-1):4}ms "
                    f"{t.counts['pauses'] / served:6.2f}  "
                    f"{sorted(v for v in t.per_worker.values() if v)}, {split}; {gcs}; "
                    f"TCP {' '.join(str(tcp[k]) for k in TCP_EVENTS)}",
                    flush=True,
                )
        print(f"load average {load_average()}")


if __name__ == "__main__":
    main()
