"""Real ``faceflow worker`` processes for the job tests, and helpers to submit and wait.

:class:`WorkerFleet` runs the real supervisor with test faults injected in code
(``python -m tests.jobs.faults -n N``, see :mod:`tests.jobs.faults`) in its own session, waits
until N RQ workers have registered on the queue, tells which pid runs which job, and stops by
PID (SIGTERM to the supervisor, SIGKILL to its process group after a bounded wait). Every wait
is bounded.
"""

from __future__ import annotations

import asyncio
import os
import signal
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from redis import Redis
from rq import Worker
from rq.job import Job
from rq.serializers import JSONSerializer
from rq.worker import BaseWorker

from faceflow.cache.tiered import ResultCache
from faceflow.config import CacheSettings, Settings
from faceflow.jobs.records import JobPayload, JobRecord
from faceflow.jobs.rq_runner import RqRunner
from faceflow.jobs.worker import build_worker
from faceflow.operations.registry import prepare
from faceflow.runtime.context import WorkerContext

# A bound, not a margin: ready in seconds when idle, but under a load average of 17 (2 cores, a
# second xdist worker starting its own servers) loading the models took over 90 s.
READY_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 30.0
QUEUE = "faceflow-test"
REPO_ROOT = Path(__file__).resolve().parents[2]

# Fast recovery for tests: a dead worker's job is retried within ~2-3 s (first retry at once).
FAST = {
    "JOBS__QUEUE_NAME": QUEUE,
    "JOBS__LEASE_S": "2",
    "JOBS__MAINTENANCE_INTERVAL_S": "1",
    "JOBS__WORKER_TTL_S": "16",
    "JOBS__RETRY_BACKOFF_S": "[0, 1]",
    "JOBS__MAX_RETRIES": "3",
    "RUNTIME__WARMUP": "false",
}


def jpeg_with_comment(jpeg: bytes, text: str) -> bytes:
    """``jpeg`` with a COM segment after SOI: new bytes (a new cache key), the same pixels."""
    assert jpeg[:2] == b"\xff\xd8", "not a JPEG"
    payload = text.encode()
    return jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def variant(jpeg: bytes, *markers: str) -> bytes:
    """A never-seen variant of ``jpeg`` (same pixels), carrying ``markers`` in a comment."""
    return jpeg_with_comment(jpeg, " ".join((*markers, uuid.uuid4().hex)))


def worker_env(model_dir: Path, redis_url: str, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEFLOW_")}
    env.update(
        {
            "FACEFLOW_MODELS__DIR": str(model_dir),
            "FACEFLOW_JOBS__REDIS_URL": redis_url,
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update({f"FACEFLOW_{k}": v for k, v in {**FAST, **overrides}.items()})
    return env


def job_settings(redis_url: str, **jobs: object) -> Settings:
    """Settings for an in-process RqRunner matching :data:`FAST` workers."""
    values: dict[str, object] = {
        "redis_url": redis_url,
        "queue_name": QUEUE,
        "lease_s": 2,
        "maintenance_interval_s": 1,
        "worker_ttl_s": 16,
        "retry_backoff_s": [0, 1],
        "max_retries": 3,
        **jobs,
    }
    return Settings.model_validate({"jobs": values, "cache": {"memory_bytes": 1 << 20}})


def work_burst(
    settings: Settings,
    context: WorkerContext,
    before_job: Callable[[JobPayload], None] | None = None,
) -> None:
    """Run every queued job in this process (a burst FaceflowWorker on ``context``'s models,
    calling ``before_job`` in each attempt), then return."""
    build_worker(settings, context, before_job).work(burst=True, logging_level="WARNING")


def runner_for(settings: Settings) -> RqRunner:
    return RqRunner(settings, ResultCache.from_settings(CacheSettings(memory_bytes=1 << 20)))


async def submit(runner: RqRunner, settings: Settings, data: bytes, op: str = "detect") -> str:
    record = await runner.submit(prepare(op, data, {}, settings), None)
    return record.handle


async def wait_done(runner: RqRunner, handles: list[str], timeout_s: float) -> dict[str, JobRecord]:
    """Poll until every handle is finished, failed or canceled (a 503 while Redis restarts is
    tolerated); raises TimeoutError with the statuses seen last."""
    deadline = time.monotonic() + timeout_s
    seen: dict[str, JobRecord] = {}
    while time.monotonic() < deadline:
        for handle in handles:
            if handle in seen and seen[handle].status.done:
                continue
            try:
                seen[handle] = await runner.status(handle, None)
            except Exception:  # Unavailable while the queue Redis restarts
                continue
        if len(seen) == len(handles) and all(r.status.done for r in seen.values()):
            return seen
        await asyncio.sleep(0.1)
    statuses = {h: (r.status.value if r else None) for h, r in seen.items()}
    raise TimeoutError(f"jobs not done within {timeout_s} s: {statuses}")


class WorkerFleet:
    """One ``faceflow worker -n N`` supervisor and its worker processes."""

    def __init__(self, env: dict[str, str], processes: int, log_path: Path) -> None:
        self.env = env
        self.processes = processes
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._redis = Redis.from_url(env["FACEFLOW_JOBS__REDIS_URL"], socket_timeout=5)

    def start(self, *, wait: bool = True) -> WorkerFleet:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.jobs.faults", "-n", str(self.processes)],
                env=self.env,
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if wait:
            try:
                self.wait_workers(self.processes)
            except BaseException:
                # Not ready in time (a busy machine) or gone: stopped here, else the supervisor
                # and its workers went on loading models beside the tests that came next.
                self.stop()
                raise
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def live_workers(self) -> list[BaseWorker]:
        """RQ workers registered on the test queue whose process is alive."""
        workers = Worker.all(connection=self._redis, serializer=JSONSerializer)
        return [w for w in workers if QUEUE in w.queue_names() and _alive(w.pid)]

    def owns(self, pid: int) -> bool:
        """Whether ``pid`` is one of this fleet's worker processes (a child of its supervisor).
        :meth:`live_workers` cannot tell: it lists every worker on the test queue, whichever
        fleet runs it."""
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        # After the command name in parentheses: the state, then the parent's pid.
        return int(stat.rsplit(")", 1)[1].split()[1]) == self.pid

    def wait_workers(self, count: int, timeout_s: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"faceflow worker exited early; log:\n{self.log_tail()}")
            if len(self.live_workers()) >= count:
                return
            time.sleep(0.1)
        raise RuntimeError(f"{count} workers not ready in {timeout_s} s; log:\n{self.log_tail()}")

    def pid_running(self, job_id: str, timeout_s: float = 30.0) -> int:
        """The pid of the worker process running ``job_id`` (waits until one has started it)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                job = Job.fetch(job_id, connection=self._redis, serializer=JSONSerializer)
            except Exception:
                job = None
            if job is not None and job.get_status() == "started":
                pid = job.get_meta().get("pid")
                if isinstance(pid, int):
                    return pid
            time.sleep(0.05)
        raise TimeoutError(f"no worker started job {job_id} within {timeout_s} s")

    def wait_log(self, text: str, timeout_s: float = 30.0) -> None:
        """Wait until ``text`` is in the fleet's log (e.g. a worker saying it got a signal)."""
        deadline = time.monotonic() + timeout_s
        while text not in self.log_path.read_text(errors="replace"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{text!r} not logged in {timeout_s} s:\n{self.log_tail()}")
            time.sleep(0.05)

    def request_stop(self) -> None:
        """SIGTERM the supervisor and return at once (see :meth:`stop` to wait for the exit)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM the supervisor (warm shutdown); SIGKILL its group after ``timeout_s``.

        A job held on a gate (:mod:`tests.jobs.faults`) keeps its worker, and so this, waiting:
        release the gate first."""
        proc = self.process
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=timeout_s)
        self._redis.close()
        return proc.returncode

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


FleetFactory = Callable[..., WorkerFleet]
