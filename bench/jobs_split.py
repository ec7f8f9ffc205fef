"""Where a drained job's CPU goes beyond its compute, in one worker, readable on a busy machine.

    .venv/bin/python bench/jobs_split.py [--jobs 150] [--rounds 3] [--before DIR/src] [--no-compute]

Run it from the repository root. Starts its own ``redis-server`` (as ``bench/jobs.py`` does) and,
in this process, one burst :class:`~faceflow.jobs.worker.FaceflowWorker` on models loaded once;
each round runs the compute on ``--jobs`` distinct images in a loop (``bench/jobs.py``'s ceiling,
"bare compute"), then queues as many analyze jobs and drains them. Per job it prints the bare
compute, the compute in the worker (the task's thread CPU), the worker thread's CPU beyond it
(RQ, redis-py, the queue Redis round trip, the job's own payload, key and outcome) and
``redis-server``'s CPU. (Each round runs in a subprocess of its own, models loaded there.)

The last two come from the same jobs in the same thread, so the machine's load, which moves
the compute's cost by ±10 % between runs minutes apart (``bench/jobs.py``'s ceiling), moves the
difference far less than it moves a ratio to a ceiling measured beside it. The wall-clock share of
``bench/jobs.py`` needs a quiet machine; this does not.

``--no-compute``: every job's task returns the first job's output at once, so "beyond it" is the
worker's own cost per job alone (RQ, redis-py, the round trip, the payload, key and outcome),
without the compute between jobs evicting its code and data from the caches; many more jobs a
round then cost no more time (e.g. ``--jobs 600``).

``--before PATH`` runs the same rounds with ``PYTHONPATH=PATH`` (another checkout's ``src``) in
a subprocess, alternating with this checkout's rounds, as ``bench/hit_cpu.py --before`` does.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import faceflow.jobs.worker as worker_module
from faceflow.config import Settings
from faceflow.runtime.context import load_context, warm_up

sys.path.insert(0, str(Path(__file__).resolve().parent))
import jobs


class TaskClock:
    """The thread CPU seconds spent in jobs' tasks (the compute), by wrapping the task that the
    worker module looks up per job."""

    def __init__(self, compute: bool = True) -> None:
        self.seconds = 0.0
        self._compute = compute
        self._output: Any = None
        # The worker module's own name for it (imported there from the operations registry).
        self._spec_for = vars(worker_module)["spec_for"]

    def install(self) -> None:
        def spec_for(operation: str) -> Any:
            found, spec = self._spec_for(operation)
            task = spec.task

            def timed(*args: Any, **kwargs: Any) -> Any:
                start = time.thread_time()
                try:
                    if self._compute or self._output is None:
                        self._output = task(*args, **kwargs)
                    return self._output
                finally:
                    self.seconds += time.thread_time() - start

            return found, dataclasses.replace(spec, task=timed)

        vars(worker_module)["spec_for"] = spec_for


def rounds(count: int, jobs_per_round: int, compute: bool = True) -> list[dict[str, float]]:
    clock = TaskClock(compute)
    clock.install()
    data = jobs.DEFAULT_IMAGE.read_bytes()
    logging.basicConfig(level="WARNING")
    out = []
    with tempfile.TemporaryDirectory(prefix="faceflow-bench-split-") as tmp:
        server = jobs.RedisServer(Path(tmp))
        try:
            settings = Settings.model_validate(
                {
                    "jobs": {
                        "redis_url": server.url,
                        "queue_name": jobs.QUEUE,
                        "max_queued": jobs_per_round + 10,
                    }
                }
            )
            context = load_context(settings.model_dump_json())
            warm_up(context)
            for _ in range(count):
                n_bare = jobs_per_round if compute else 20
                bare = jobs.ceiling(settings, data, "analyze", n=n_bare, context=context)
                asyncio.run(jobs.enqueue(settings, data, jobs_per_round, "analyze"))
                worker = worker_module.build_worker(settings, context)
                clock.seconds = 0.0
                server_before = jobs.cpu_seconds([server.proc.pid])
                thread_before = time.thread_time()
                wall_before = time.perf_counter()
                worker.work(burst=True, logging_level="WARNING", with_scheduler=False)
                n = jobs_per_round
                thread_s = time.thread_time() - thread_before
                out.append(
                    {
                        "bare": bare.cpu_ms,
                        "compute": 1000 * clock.seconds / n,
                        "computed": 1.0 if compute else 0.0,
                        "beyond": 1000 * (thread_s - clock.seconds) / n,
                        "server": 1000 * (jobs.cpu_seconds([server.proc.pid]) - server_before) / n,
                        "wall": 1000 * (time.perf_counter() - wall_before) / n,
                        "load": os.getloadavg()[0],
                    }
                )
                worker.connection.close()
        finally:
            server.stop()
    return out


def _share(row: dict[str, float]) -> float:
    """The CPU beyond the compute, in % of the compute in the worker (of the bare compute with
    ``--no-compute``, where the worker computed once)."""
    return 100 * row["beyond"] / (row["compute"] if row.get("computed", 1.0) else row["bare"])


def _line(label: str, row: dict[str, float]) -> str:
    return (
        f"  {label:<7} load {row['load']:5.1f}  bare compute {row['bare']:6.2f}  "
        f"in the worker {row['compute']:6.2f}  "
        f"beyond it {row['beyond']:5.2f} ({_share(row):4.1f} %)  "
        f"redis-server {row['server']:5.2f}  wall {row['wall']:6.1f}  (ms per job)"
    )


def main() -> None:
    jobs.run_like_workers()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=150, help="jobs per round")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds per checkout, each in a subprocess of its own, the median kept "
        "(default: %(default)s)",
    )
    parser.add_argument("--before", type=Path, help="another checkout's src, run alternately")
    parser.add_argument(
        "--no-compute", action="store_true", help="tasks return the first output: overhead alone"
    )
    parser.add_argument("--one-round", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_round:  # a --before subprocess: one round, its figures on stdout
        print(json.dumps(rounds(1, args.jobs, not args.no_compute)[0]))
        return
    results: dict[str, list[dict[str, float]]] = {"this": [], "before": []}
    image = jobs.DEFAULT_IMAGE.name
    print(f"\nfaceflow jobs split: analyze on {image}, {args.jobs} jobs a round\n")
    for _ in range(args.rounds):
        variants = [("this", None), ("before", args.before)] if args.before else [("this", None)]
        for label, path in variants:
            env = dict(os.environ)
            if path is not None:
                env["PYTHONPATH"] = str(path)
            command = [sys.executable, __file__, "--one-round", "--jobs", str(args.jobs)]
            command += ["--no-compute"] if args.no_compute else []
            done = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=900, check=True
            )
            row: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
            results[label].append(row)
            print(_line(label, row), flush=True)
    for label, rows in results.items():
        if rows:
            beyond = statistics.median(r["beyond"] for r in rows)
            share = statistics.median(_share(r) for r in rows)
            print(f"  {label}: median beyond the compute {beyond:.2f} ms per job ({share:.1f} %)")


if __name__ == "__main__":
    main()
