"""Job throughput and crash recovery against the compute ceiling, on this machine.

    .venv/bin/python bench/jobs.py [--jobs 500] [--backlog 200] [--image PATH] [--operation analyze]

Run it from the repository root (the recovery rows start ``python -m tests.jobs.faults``).

Starts its own ``redis-server`` (AOF, on a free loopback port) and ``faceflow worker`` processes,
stops them by PID, and prints one table:

* compute ceiling: the pipeline in this process (under the workers' malloc tunables), one image
  at a time, one thread, × cores, rated by its CPU per job over 200 distinct images: a drain's
  rate is jobs over its whole time, so it pays the mean job, not the median one (the rate from
  the median, which this bench used before, is printed beside it);
* the same compute in as many processes as cores at once (no queue either): what the cores cost
  a job computing side by side, as the drain with that many workers runs them;
* drain: ``--jobs`` distinct jobs (the same photo with a unique JPEG comment each) queued while 1,
  then 2 worker processes that have loaded their models are suspended, then let go; throughput
  counts the jobs started after the let-go (a worker already blocked in its dequeue takes one
  during the enqueue), from the first one's start to the last one's end (RQ's own timestamps),
  and is compared with the ceiling for as many cores; the workers' CPU per job (from /proc)
  shows the queue's overhead even on a busy machine;
* recovery: a job held in a worker for a few seconds (the test fault hook of
  ``tests/jobs/faults.py``, injected in code) is SIGKILLed mid-job while a backlog of
  ``--backlog`` jobs waits behind it; the time from the kill to the job finished on another
  worker (which first finishes its own held job), (a) killing only the worker process, (b)
  killing the whole group whose supervisor holds RQ's scheduler lock, for the default settings
  (lease 10 s) and a tight tuning (lease 3 s).
  Target: under 2 × ``jobs.lease_s`` + the job's own time.

Needs ``redis-server`` on PATH and the models pulled (``faceflow models pull``).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redis import Redis
from rq import Worker
from rq.job import Job
from rq.registry import FailedJobRegistry, FinishedJobRegistry
from rq.serializers import JSONSerializer
from rq.suspension import resume, suspend

from faceflow.cache.tiered import ResultCache
from faceflow.config import CacheSettings, Settings, load_settings
from faceflow.jobs.rq_runner import RqRunner
from faceflow.operations.registry import prepare
from faceflow.runtime.context import WorkerContext, load_context, warm_up
from faceflow.runtime.pool import CHILD_GLIBC_TUNABLES, child_glibc_tunables

QUEUE = "faceflow-bench"
# The fault hook of tests/jobs/faults.py (run as a module in the worker groups): a job whose
# image holds this marker sleeps HOLD_S seconds first.
HOLD_MARKER = "FF-HOLD"
HOLD_S = 4.0
REPO_ROOT = Path(__file__).resolve().parents[1]
DEQUEUE_WAIT_S = 7.0
DEFAULT_IMAGE = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "obama_small.jpg"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def with_comment(jpeg: bytes, text: str) -> bytes:
    payload = text.encode()
    return jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


class RedisServer:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed")
        self.proc = subprocess.Popen(
            [
                binary,
                *("--port", str(self.port), "--bind", "127.0.0.1", "--save", ""),
                *("--appendonly", "yes", "--maxmemory-policy", "noeviction", "--dir", str(workdir)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"redis://127.0.0.1:{self.port}/0"
        client = Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                client.ping()
                break
            except Exception:
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


class Fleet:
    """``faceflow worker -n N`` (or, with ``faults``, the same supervisor with the test fault
    hook injected: ``python -m tests.jobs.faults -n N``)."""

    def __init__(
        self, url: str, processes: int, log: Path, env: dict[str, str], *, faults: bool = False
    ) -> None:
        full = {k: v for k, v in os.environ.items() if not k.startswith("FACEFLOW_")}
        full.update({"FACEFLOW_JOBS__REDIS_URL": url, "FACEFLOW_JOBS__QUEUE_NAME": QUEUE})
        full.update({f"FACEFLOW_{k}": v for k, v in env.items()})
        command = ["tests.jobs.faults"] if faults else ["faceflow", "worker"]
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", *command, "-n", str(processes)],
                env=full,
                cwd=REPO_ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.redis = Redis.from_url(url)
        self.processes = processes

    def workers(self) -> list[int]:
        found = Worker.all(connection=self.redis, serializer=JSONSerializer)
        pids = []
        for worker in found:
            if worker.pid is None:
                continue
            try:
                os.kill(worker.pid, 0)
            except ProcessLookupError:
                continue
            pids.append(worker.pid)
        return pids

    def kill_group(self) -> None:
        """SIGKILL the supervisor and every worker process of this group at once."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def wait_ready(self, count: int, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.workers()) < count:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit("workers did not start; see the log")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.redis.close()


@dataclass(frozen=True, slots=True)
class Ceiling:
    """The compute ceiling: ``n`` jobs' work on the image in this process, one at a time."""

    cpu_ms: float
    """CPU milliseconds per job: the whole run's CPU over the jobs run."""
    mean_ms: float
    """Mean wall milliseconds per job (above ``cpu_ms`` when something else took the core)."""
    median_ms: float
    """The median job's wall milliseconds (below the mean: a few jobs cost more than most)."""

    def rate(self, cores: int) -> float:
        """Jobs per second on ``cores`` cores, from the CPU per job: a drain's rate is jobs over
        its whole time, so it pays every job's compute, the slower ones included; and CPU time
        leaves out what other processes took of the core."""
        return cores * 1000 / self.cpu_ms

    def median_rate(self, cores: int) -> float:
        """What :meth:`rate` read before 2026-12-05: from the median job, which leaves out the
        slower jobs the drain pays for (it overstated the ceiling by 5–6 % on a quiet machine)."""
        return cores * 1000 / self.median_ms


def ceiling(
    settings: Settings,
    data: bytes,
    operation: str,
    n: int = 200,
    ready: Any = None,
    context: WorkerContext | None = None,
) -> Ceiling:
    """The compute ceiling (in-process pipeline, one image at a time, one thread), from ``n``
    distinct images: enough that the mean settles (the slow jobs are a few in a hundred).

    The same work a worker's job does on the image (decode, detect, age and gender, the JSON
    body); not the job's own work around it, which is what the drain's figures weigh: its cache
    key (SHA-256 of the image, computed here before the timing), the payload and outcome
    (msgpack) and the queue Redis round trips. Run under the workers' malloc tunables (see
    :func:`run_like_workers`), so the compute costs what it costs in a worker. ``context``: models
    already loaded and warmed up in this process (else loaded here)."""
    from faceflow.runtime.tasks import run_face_request

    if context is None:
        context = load_context(settings.model_dump_json())
        warm_up(context)
    requests = [prepare(operation, with_comment(data, str(i)), {}, settings) for i in range(n)]
    if ready is not None:
        ready.wait()
    times = []
    cpu_start = time.process_time()
    for submission in requests:
        start = time.perf_counter()
        run_face_request(context, submission.request)
        times.append(time.perf_counter() - start)
    cpu_ms = 1000 * (time.process_time() - cpu_start) / n
    return Ceiling(cpu_ms, 1000 * statistics.mean(times), 1000 * statistics.median(times))


def _ceiling_process(settings_json: str, data: bytes, operation: str, ready: Any, out: Any) -> None:
    out.put(ceiling(Settings.model_validate_json(settings_json), data, operation, ready=ready))


def concurrent_ceiling(settings: Settings, data: bytes, operation: str, processes: int) -> Ceiling:
    """The same compute in ``processes`` processes at once (each its own models, one thread),
    started together once all have loaded: what that many cores computing side by side cost a
    job, as a drain by that many workers runs them (they share the machine's caches and memory
    bandwidth). Still no queue and no Redis. The CPU and mean wall per job are the processes'
    averages; the median is the highest of their medians."""
    spawn = multiprocessing.get_context("spawn")
    ready = spawn.Barrier(processes)
    out = spawn.Queue()
    children = [
        spawn.Process(
            target=_ceiling_process,
            args=(settings.model_dump_json(), data, operation, ready, out),
        )
        for _ in range(processes)
    ]
    for child in children:
        child.start()
    try:
        found: list[Ceiling] = [out.get(timeout=600) for _ in children]
    finally:
        for child in children:
            child.join(timeout=30)
            if child.is_alive():
                child.kill()
    return Ceiling(
        statistics.mean(c.cpu_ms for c in found),
        statistics.mean(c.mean_ms for c in found),
        max(c.median_ms for c in found),
    )


def run_like_workers() -> None:
    """Re-execute this script with the worker processes' malloc tunables, unless it has them, so
    that the ceiling computes as a worker does (``faceflow worker`` spawns its job processes with
    :data:`~faceflow.runtime.pool.CHILD_GLIBC_TUNABLES`; glibc reads them only at a process's
    start). A tunable already set is left as it is, so this runs at most once."""
    have = {item.split("=", 1)[0] for item in os.environ.get("GLIBC_TUNABLES", "").split(":")}
    if all(item.split("=", 1)[0] in have for item in CHILD_GLIBC_TUNABLES):
        return
    with child_glibc_tunables():
        os.execv(sys.executable, [sys.executable, *sys.argv])


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the processes have used so far (from /proc)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / os.sysconf("SC_CLK_TCK")


async def enqueue(
    settings: Settings, data: bytes, count: int, operation: str = "detect"
) -> list[str]:
    runner = RqRunner(settings, ResultCache.from_settings(CacheSettings(memory_bytes=1 << 20)))
    ids = []
    for _ in range(count):
        submission = prepare(operation, with_comment(data, uuid.uuid4().hex), {}, settings)
        await runner.submit(submission, None)
        ids.append(submission.job_id)
    await runner.close()
    return ids


def drain(
    url: str, workdir: Path, data: bytes, operation: str, jobs: int, processes: int
) -> tuple[float, float, float]:
    """Jobs per second from the first job's start to the last one's end, the workers' CPU
    milliseconds per job (the queue's overhead shows as CPU above the ceiling's), and the share
    of the workers' time over the drain they spent off the CPU (waiting for the queue Redis, or
    for a core another process held)."""
    settings = Settings.model_validate(
        {"jobs": {"redis_url": url, "queue_name": QUEUE, "max_queued": jobs + 10}}
    )
    Redis.from_url(url).flushall()
    fleet = Fleet(url, processes, workdir / f"drain-{processes}.log", {})
    try:
        fleet.wait_ready(processes)
        pids = fleet.workers()
        connection = Redis.from_url(url)
        # The queue is filled first, with the workers suspended, so the drain measures the
        # workers and not the enqueuing client beside them on the same cores (which had cost
        # one worker a third of its rate). An idle worker blocked in its dequeue still takes
        # the first job (RQ 3 blocks again after a dequeue timeout without looking at the
        # suspension), so each worker may run one job during the enqueue: those are left out
        # of the drain (they had stretched it by the whole enqueue and the wake-up after it).
        suspend(connection)
        ids = asyncio.run(enqueue(settings, data, jobs, operation))
        cpu_before = cpu_seconds(pids)
        resumed_at = datetime.now(UTC)
        resume(connection)
        # Polled by two registry counts, not by fetching every job: that cost this process tens
        # of CPU ms per poll on the cores the workers drain on.
        registries = (FinishedJobRegistry(QUEUE, connection), FailedJobRegistry(QUEUE, connection))
        deadline = time.monotonic() + 600
        while sum(r.get_job_count(cleanup=False) for r in registries) < jobs:
            if time.monotonic() > deadline:
                raise SystemExit("drain did not finish in 600 s")
            time.sleep(0.5)
        found = Job.fetch_many(ids, connection=connection, serializer=JSONSerializer)
        if not all(j is not None and j.get_status(refresh=False) == "finished" for j in found):
            raise SystemExit("some jobs of the drain failed; see the worker log")
        drained = [j for j in found if j is not None and _utc(j.started_at) >= resumed_at]
        cpu_s = cpu_seconds(pids) - cpu_before
        started = min(_utc(j.started_at) for j in drained)
        ended = max(_utc(j.ended_at) for j in drained)
        connection.close()
        wall_s = (ended - started).total_seconds()
        waiting = max(0.0, 1 - cpu_s / (processes * wall_s))
        return len(drained) / wall_s, 1000 * cpu_s / len(drained), waiting
    finally:
        fleet.stop()


def _utc(stamp: datetime | None) -> datetime:
    """An RQ timestamp (naive UTC in some versions) as an aware one."""
    assert stamp is not None
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)


def _started_pid(connection: Redis, job_id: str, timeout_s: float = 300) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = Job.fetch(job_id, connection=connection, serializer=JSONSerializer)
        pid = job.get_meta().get("pid")
        if job.get_status() == "started" and isinstance(pid, int):
            return pid
        time.sleep(0.02)
    raise SystemExit(f"job {job_id} never seen running (finished before it was looked at?)")


def _wait_finished(connection: Redis, job_id: str, since: float) -> float:
    while True:
        job = Job.fetch(job_id, connection=connection, serializer=JSONSerializer)
        if job.get_status() == "finished":
            return time.monotonic() - since
        if time.monotonic() - since > 600:
            raise SystemExit("the killed job never finished")
        time.sleep(0.05)


def recovery(
    url: str, workdir: Path, data: bytes, env: dict[str, str], backlog: int, *, whole_group: bool
) -> float:
    """Seconds from SIGKILL to a held job finished on another worker, ``backlog`` jobs queued
    behind it. Two worker groups (one worker process each); with the workers suspended, two held
    jobs and the backlog are queued; on resume each worker takes a held job; then the worker
    running the held job of the group whose supervisor holds RQ's scheduler lock is killed
    (with ``whole_group``: that whole group, supervisor included)."""
    connection = Redis.from_url(url)
    connection.flushall()
    settings = Settings.model_validate(
        {"jobs": {"redis_url": url, "queue_name": QUEUE, "max_queued": backlog + 10}}
    )
    logs = [workdir / f"recovery-{i}.log" for i in range(2)]
    for log in logs:
        log.unlink(missing_ok=True)
    groups = [Fleet(url, 1, log, env, faults=True) for log in logs]
    try:
        for group in groups:
            group.wait_ready(2)
        holder = None
        while holder is None:
            holder = next(
                (
                    g
                    for g, log in zip(groups, logs, strict=True)
                    if "Acquired scheduler lock" in log.read_text(errors="replace")
                ),
                None,
            )
            time.sleep(0.1)
        suspend(connection)
        # An idle worker is already blocked in its dequeue (worker_ttl_s - 15 s = 5 s) and would
        # take the next job despite the suspension: let those dequeues time out first.
        time.sleep(DEQUEUE_WAIT_S)
        held = asyncio.run(enqueue(settings, with_comment(data, HOLD_MARKER), 2))
        asyncio.run(enqueue(settings, data, backlog))
        resume(connection)
        pids = {job_id: _started_pid(connection, job_id) for job_id in held}
        target = next(j for j, pid in pids.items() if _parent(pid) == holder.proc.pid)
        if whole_group:
            holder.kill_group()
        else:
            os.kill(pids[target], signal.SIGKILL)
        return _wait_finished(connection, target, time.monotonic())
    finally:
        connection.close()
        for group in groups:
            group.stop()


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def main() -> None:
    run_like_workers()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--jobs", type=int, default=500, help="distinct jobs per drain (default: %(default)s)"
    )
    parser.add_argument("--backlog", type=int, default=200, help="jobs queued during a kill")
    parser.add_argument(
        "--image",
        type=Path,
        default=DEFAULT_IMAGE,
        help="the photo every job carries, a unique JPEG comment each (default: %(default)s)",
    )
    parser.add_argument(
        "--operation",
        default="analyze",
        choices=["detect", "analyze"],
        help="what the ceiling and drain jobs run: detect or analyze (default: %(default)s)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="SIGKILL recovery rounds")
    parser.add_argument("--only", choices=["drain", "recovery"], help="run one part")
    args = parser.parse_args()
    data = args.image.read_bytes()
    settings = load_settings()
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="faceflow-bench-jobs-") as tmp:
        workdir = Path(tmp)
        server = RedisServer(workdir)
        try:
            if args.only != "recovery":
                rows += drain_rows(server.url, workdir, data, args, settings)
            if args.only != "drain":
                rows += recovery_rows(server.url, workdir, data, args)
        finally:
            server.stop()
    width = max(len(name) for name, _ in rows)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nfaceflow jobs benchmark: {args.operation} on {args.image.name}; load {load}\n")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")


def drain_rows(
    url: str, workdir: Path, data: bytes, args: argparse.Namespace, settings: Settings
) -> list[tuple[str, str]]:
    top = ceiling(settings, data, args.operation)
    cores = os.cpu_count() or 1
    rows = [
        (
            f"compute ceiling ({cores} cores × 1 thread)",
            f"{top.rate(cores):8.1f} jobs/s, {top.cpu_ms:.1f} CPU ms/job "
            f"(wall per job: mean {top.mean_ms:.1f} ms, median {top.median_ms:.1f} ms; "
            f"by the median, {top.median_rate(cores):.1f} jobs/s)",
        )
    ]
    side_by_side = concurrent_ceiling(settings, data, args.operation, cores)
    rows.append(
        (
            f"the same compute in {cores} processes at once",
            f"{side_by_side.rate(cores):8.1f} jobs/s, {side_by_side.cpu_ms:.1f} CPU ms/job "
            f"(wall per job: mean {side_by_side.mean_ms:.1f} ms)",
        )
    )
    for processes in (1, 2):
        rate, cpu_ms, waiting = drain(url, workdir, data, args.operation, args.jobs, processes)
        beside = (
            f" ({100 * rate / side_by_side.rate(processes):.0f}% of the same compute in "
            f"{processes} processes at once)"
            if processes == cores
            else ""
        )
        rows.append(
            (
                f"{args.jobs} jobs drained by {processes} worker process(es)",
                f"{rate:8.1f} jobs/s = {100 * rate / top.rate(processes):.0f}% of the "
                f"ceiling for {processes} core(s){beside} "
                f"({100 * rate / top.median_rate(processes):.0f}% of the median's), "
                f"{cpu_ms:.1f} CPU ms/job "
                f"(ceiling's CPU / this = {100 * top.cpu_ms / cpu_ms:.0f}%), "
                f"{100 * waiting:.0f}% of the time off the CPU",
            )
        )
    return rows


def recovery_rows(
    url: str, workdir: Path, data: bytes, args: argparse.Namespace
) -> list[tuple[str, str]]:
    tunings = {
        "lease 10 s (default)": ({}, 10),
        "lease 3 s, maintenance 1 s": (
            {"JOBS__LEASE_S": "3", "JOBS__MAINTENANCE_INTERVAL_S": "1"},
            3,
        ),
    }
    rows = []
    for name, (env, lease_s) in tunings.items():
        for whole_group, what in ((False, "worker process"), (True, "scheduler-lock holder group")):
            times = [
                recovery(url, workdir, data, env, args.backlog, whole_group=whole_group)
                for _ in range(args.rounds)
            ]
            target = 2 * lease_s + HOLD_S
            rows.append(
                (
                    f"SIGKILL {what} → job finished elsewhere, {args.backlog} queued, {name}",
                    f"{statistics.median(times):6.1f} s median (max {max(times):.1f} s, "
                    f"{args.rounds} rounds; target < {target:g} s incl. the {HOLD_S:g} s job)",
                )
            )
    return rows


if __name__ == "__main__":
    main()
