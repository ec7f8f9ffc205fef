"""How long faceflow takes to start: the light CLI commands, and `faceflow serve` until ready.

    .venv/bin/python bench/startup.py [--rounds 5] [--serve-rounds 5] [--processes N] [--env K=V]

* CLI: ``faceflow --help``, ``faceflow id-photo-specs`` and ``faceflow models list`` (the
  installed command, a fresh interpreter each time), ``--rounds`` times each, interleaved:
  wall-clock seconds and the CPU seconds the command used (user + system).
* serve: ``faceflow serve`` on a free loopback port, ``--serve-rounds`` times; ``GET /readyz``
  is polled every 20 ms from the moment the process is spawned, and the time to its first 200
  (every inference process has loaded and warmed up its models) is reported, with the time to
  the first HTTP answer of any status and the CPU seconds the server's process tree had used by
  then. The server is stopped (SIGTERM, then SIGKILL by PID) after each round.

Wall-clock times depend on what else the machine runs: the load average is printed before and
after each part; the CPU seconds do not (much).
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from faceflow.loadgen.procs import cpu_seconds, free_port, load_average, process_tree

FACEFLOW = Path(sys.executable).with_name("faceflow")
COMMANDS = (("--help",), ("id-photo-specs",), ("models", "list"))
POLL_S = 0.02
READY_TIMEOUT_S = 120.0


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_command(args: tuple[str, ...]) -> tuple[float, float]:
    """Wall and CPU seconds of one run of ``faceflow *args``."""
    cpu = children_cpu_s()
    started = time.perf_counter()
    subprocess.run(
        [str(FACEFLOW), *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True
    )
    return time.perf_counter() - started, children_cpu_s() - cpu


def tree_cpu_s(root: int) -> tuple[float, list[float]]:
    """CPU seconds used so far by ``root`` and by each of its live descendants (from /proc)."""
    descendants = [pid for pid in process_tree(root) if pid != root]
    each = sorted((cpu_seconds([pid]) for pid in descendants), reverse=True)
    return cpu_seconds([root]), each


def serve_round(env: dict[str, str], log: Path) -> tuple[float, float, tuple[float, list[float]]]:
    """Seconds to the first HTTP answer, to /readyz 200, and the CPU seconds the server and each
    of its child processes had used by then."""
    port = free_port()
    with log.open("ab") as out:
        started = time.perf_counter()
        process = subprocess.Popen(
            [str(FACEFLOW), "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    first_answer = float("nan")
    try:
        with httpx.Client(timeout=2.0) as client:
            while time.perf_counter() - started < READY_TIMEOUT_S:
                if process.poll() is not None:
                    raise RuntimeError(f"faceflow serve exited ({process.returncode}); see {log}")
                try:
                    status = client.get(f"http://127.0.0.1:{port}/readyz").status_code
                except httpx.HTTPError:
                    status = None
                now = time.perf_counter() - started
                if status is not None and first_answer != first_answer:
                    first_answer = now
                if status == 200:
                    return first_answer, now, tree_cpu_s(process.pid)
                time.sleep(POLL_S)
        raise RuntimeError(f"faceflow serve not ready within {READY_TIMEOUT_S:g} s; see {log}")
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # its own session: the server and its children
        process.wait(timeout=10)


def spread(values: list[float]) -> str:
    return (
        f"median {statistics.median(values):.2f} s "
        f"(min {min(values):.2f}, max {max(values):.2f}; {len(values)} runs)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="runs of each CLI command")
    parser.add_argument("--serve-rounds", type=int, default=5, help="starts of faceflow serve")
    parser.add_argument("--processes", type=int, default=None, help="inference processes")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for faceflow serve (repeatable; "
        "this shell's FACEFLOW_ variables are not passed on)",
    )
    args = parser.parse_args()

    print(f"CLI, load average before: {load_average()}")
    walls: dict[tuple[str, ...], list[float]] = {c: [] for c in COMMANDS}
    cpus: dict[tuple[str, ...], list[float]] = {c: [] for c in COMMANDS}
    for _ in range(args.rounds):
        for command in COMMANDS:
            wall, cpu = time_command(command)
            walls[command].append(wall)
            cpus[command].append(cpu)
    for command in COMMANDS:
        print(
            f"  faceflow {' '.join(command):<15} wall {spread(walls[command])}; "
            f"CPU median {statistics.median(cpus[command]):.2f} s"
        )
    print(f"  load average after: {load_average()}")

    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEFLOW_")}
    env["FACEFLOW_SERVER__LOG_LEVEL"] = "warning"
    if args.processes is not None:
        env["FACEFLOW_RUNTIME__PROCESSES"] = str(args.processes)
    env.update(item.split("=", 1) for item in args.env)
    processes = env.get("FACEFLOW_RUNTIME__PROCESSES", f"{os.cpu_count()} (one per core)")
    print(f"faceflow serve, {processes} inference processes; load average before: {load_average()}")
    firsts: list[float] = []
    readies: list[float] = []
    server_cpu: list[float] = []
    child_cpu: list[float] = []
    with tempfile.TemporaryDirectory(prefix="faceflow-startup-") as work:
        for _ in range(args.serve_rounds):
            first, ready, (server, children) = serve_round(env, Path(work) / "serve.log")
            firsts.append(first)
            readies.append(ready)
            server_cpu.append(server)
            child_cpu.append(children[0] if children else 0.0)
    print(f"  first HTTP answer  {spread(firsts)}")
    print(f"  /readyz 200        {spread(readies)}")
    # On an idle machine with a core per inference process, start-up takes about the server's
    # CPU before it spawns them plus the busiest one's: a figure the load does not move much.
    print(
        f"  CPU by then (median): server {statistics.median(server_cpu):.2f} s, busiest "
        f"inference process {statistics.median(child_cpu):.2f} s"
    )
    print(f"  load average after: {load_average()}")


if __name__ == "__main__":
    main()
