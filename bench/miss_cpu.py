"""Where a cache miss's CPU goes, process by process, against the task run alone.

    .venv/bin/python bench/miss_cpu.py [--image PATH] [--clients 20] [--warmup 500]
                                       [--requests 500] [--rounds 3] [--before OTHER/src]

``bench/service.py``'s miss row compares the service's rate with a compute ceiling: its own
``analyze`` task timed in one process. This splits the gap between the two. A ``faceflow serve``
(2 inference processes, as ``bench/service.py`` runs it) is sent ``--warmup`` never-seen uploads,
then ``--requests`` more by ``--clients`` closed-loop clients (the bench's own load generator:
each upload is the photo with a unique JPEG comment, so every one is a miss); over the measured
ones, each process's user + system CPU and minor page faults (from ``/proc``) are divided by the
misses answered 200: the API process, the inference processes together, and this process (the
load generator, on the server's own cores). The last row is the task alone, in this process, on
the inference processes' own context: what a miss would cost with no server around it.

``--before`` runs the same against another checkout's ``src/`` too, alternating with this one
round by round, so a slow spell of the machine falls on both (docs/performance.md, Service).
A refused request (503 while both processes are busy and the waiting slot is taken) is waited
out as a client would (Retry-After) and is not counted as a miss; its CPU is in the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from faceflow.config import load_settings
from faceflow.domain import Attribute, Operation
from faceflow.loadgen.load import LoadGenerator, LoadPlan, unique_variant
from faceflow.loadgen.procs import ServiceProcess, load_average, process_tree
from faceflow.pipeline.detect_options import DetectOptions
from faceflow.runtime.context import load_context, warm_up
from faceflow.runtime.tasks import FaceRequest, run_face_request
from service import TESTDATA, jpeg_near

PROCESSES = 2
_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Usage:
    """CPU seconds and minor faults, as ``/proc/PID/stat`` counts them."""

    cpu_s: float = 0.0
    faults: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.cpu_s + other.cpu_s, self.faults + other.faults)

    def __sub__(self, other: Usage) -> Usage:
        return Usage(self.cpu_s - other.cpu_s, self.faults - other.faults)


def usage_of(pid: int) -> Usage:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return Usage()
    # After the command: state is field 0, minflt 7, utime 11, stime 12 (proc(5), minus 3).
    return Usage((int(fields[11]) + int(fields[12])) / _TICKS_PER_S, int(fields[7]))


def this_process() -> Usage:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return Usage(own.ru_utime + own.ru_stime, own.ru_minflt)


@dataclass(frozen=True, slots=True)
class Split:
    """One round's cost per successful miss, by process."""

    misses: int
    refused: int
    api: Usage
    inference: Usage
    client: Usage

    def per_miss(self, usage: Usage) -> tuple[float, float]:
        """(CPU ms, minor faults) per miss."""
        n = max(1, self.misses)
        return usage.cpu_s / n * 1e3, usage.faults / n


def inference_pids(server: ServiceProcess) -> list[int]:
    """The inference processes: descendants of the server that are not multiprocessing's
    resource tracker."""
    pids = []
    for pid in process_tree(server.pid):
        if pid == server.pid:
            continue
        with contextlib.suppress(OSError):
            if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                pids.append(pid)
    return pids


def one_round(server: ServiceProcess, body: bytes, clients: int, requests: int) -> Split:
    plan = LoadPlan(
        url=f"{server.url}/v1/analyze",
        images=[body],
        duration_s=None,
        requests_per_step=requests,
        timeout_s=120.0,
    )
    children = inference_pids(server)
    api0 = usage_of(server.pid)
    inference0 = sum((usage_of(pid) for pid in children), Usage())
    client0 = this_process()
    result = asyncio.run(LoadGenerator(plan).step(clients))
    client = this_process() - client0
    inference = sum((usage_of(pid) for pid in children), Usage()) - inference0
    if inference_pids(server) != children:
        raise RuntimeError("an inference process was replaced during the round")
    return Split(
        misses=result.statuses[200],
        refused=result.requests - result.statuses[200],
        api=usage_of(server.pid) - api0,
        inference=inference,
        client=client,
    )


def task_alone(body: bytes, repeats: int) -> Usage:
    """The ``analyze`` task in this process on fresh variants of ``body``: per task."""
    settings = load_settings(runtime={"processes": PROCESSES})
    context = load_context(settings.model_dump_json())
    warm_up(context)
    options = DetectOptions.from_settings(settings.detection)
    attributes = (Attribute.AGE, Attribute.GENDER)

    def run(serial: int) -> None:
        request = FaceRequest(unique_variant(body, serial), Operation.ANALYZE, options, attributes)
        run_face_request(context, request)

    for serial in range(20):
        run(-1 - serial)
    before = this_process()
    for serial in range(repeats):
        run(serial)
    spent = this_process() - before
    return Usage(spent.cpu_s / repeats, round(spent.faults / repeats))


def _row(label: str, cpu_ms: list[float], faults: list[float]) -> str:
    return (
        f"  {label:24} {statistics.median(cpu_ms):7.2f} ms ({min(cpu_ms):.2f}–{max(cpu_ms):.2f})"
        f"   {statistics.median(faults):8.1f} faults"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--image",
        type=Path,
        default=TESTDATA / "portrait_1.jpg",
        help="the photo (sent as a JPEG of about 100 KB)",
    )
    parser.add_argument("--clients", type=int, default=20, help="closed-loop clients")
    parser.add_argument(
        "--warmup", type=int, default=500, help="misses sent to each server before measuring"
    )
    parser.add_argument("--requests", type=int, default=500, help="misses measured per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per server")
    parser.add_argument(
        "--before", type=Path, default=None, help="the src/ of another checkout, alternated"
    )
    args = parser.parse_args()
    body = jpeg_near(args.image)
    print(
        f"faceflow miss CPU: analyze on a {len(body)} B JPEG, {args.clients} clients, "
        f"{args.requests} misses a round after {args.warmup}; load {load_average()}"
    )
    env = {"FACEFLOW_RUNTIME__PROCESSES": str(PROCESSES)}
    splits: dict[str, list[Split]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="faceflow-misscpu-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        servers = {"this checkout": stack.enter_context(ServiceProcess(env, Path(tmp) / "a.log"))}
        if args.before is not None:
            before_env = {**env, "PYTHONPATH": str(args.before.resolve())}
            servers["before"] = stack.enter_context(ServiceProcess(before_env, Path(tmp) / "b.log"))
        for server in servers.values():
            one_round(server, body, args.clients, args.warmup)
        for number in range(args.rounds):
            order = list(servers.items())
            if number % 2:
                order.reverse()
            for label, server in order:
                splits.setdefault(label, []).append(
                    one_round(server, body, args.clients, args.requests)
                )
    alone = task_alone(body, repeats=100)
    print(f"load after: {load_average()}; per miss answered 200, median (range) of the rounds:")
    for label, rounds in splits.items():
        refused = ", ".join(str(s.refused) for s in rounds)
        print(f"{label} (refused and waited out per round: {refused})")
        for name in ("api", "inference", "client"):
            pairs = [s.per_miss(getattr(s, name)) for s in rounds]
            title = {
                "api": "API process",
                "inference": f"{PROCESSES} inference processes",
                "client": "load generator",
            }[name]
            print(_row(title, [p[0] for p in pairs], [p[1] for p in pairs]))
    print(_row("the task alone", [alone.cpu_s * 1e3], [float(alone.faults)]))


if __name__ == "__main__":
    main()
