"""A loopback cluster survives a dead worker group and a queue Redis restart: nothing is lost,
nothing is done twice.

Two ``faceflow serve`` API processes, two worker groups (each the real supervisor with one worker
process), a queue Redis with an AOF and a cache Redis, all real. 40 detect jobs of a small photo
are submitted through both API nodes; mid-run one worker group is SIGKILLed whole (supervisor
and worker, mid-job) and the queue Redis is SIGKILLed and restarted from its AOF. Every job must
finish, each exactly once (one ``Job OK`` per job across both groups' logs), and the recovery
times are printed. Bounded: every wait has a deadline. 40 jobs (100 until issue 12.7) are enough
for each event to land with jobs submitted before and after it; every one more costs time.

The job the kill lands in holds its worker on a gate (tests/jobs/faults.py) rather than for a
fixed 4 s: it is running when its group is killed whatever the load, and a retry of it that
starts before the queue Redis is back holds the surviving worker till then. (Until issue 12.7
every 10th job slept 4 s, retries included: most of the test's time was spent waiting.)
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from faceflow.config import ModelSettings
from faceflow.operations.registry import prepare
from tests.fixtures.live_server import LiveServer, LiveServerFactory
from tests.fixtures.redis_server import RedisProcess, RedisServerFactory
from tests.jobs.faults import Gate
from tests.jobs.support import QUEUE, WorkerFleet, job_settings, variant, worker_env

pytestmark = [pytest.mark.redis, pytest.mark.slow]

JOBS = 40
TARGET = 20  # held on the gate: the group running it is killed once it has started
REDIS_KILLED_BEFORE = 28  # the queue Redis is killed and restarted before this job is submitted
DEADLINE_S = 180.0
# A lease a little longer than the tests' usual 2 s: the surviving worker on a loaded machine
# must not lose its own lease while it renews it.
CLUSTER_ENV = {"JOBS__LEASE_S": "3"}


@pytest.fixture
def loop_cluster(
    redis_server_factory: RedisServerFactory,
    live_server_factory: LiveServerFactory,
    pulled_model_settings: ModelSettings,
    tmp_path: Path,
) -> Iterator[tuple[list[LiveServer], list[WorkerFleet], RedisProcess]]:
    queue_redis = redis_server_factory(appendonly=True)
    cache_redis = redis_server_factory()
    api_env: dict[str, str | int | float] = {
        "JOBS__REDIS_URL": queue_redis.url,
        "JOBS__QUEUE_NAME": QUEUE,
        "JOBS__RETRY_BACKOFF_S": "[0, 1]",
        "CACHE__REDIS_URL": cache_redis.url,
    }
    apis = [live_server_factory(wait=False, **api_env) for _ in range(2)]
    fleets = [
        WorkerFleet(
            worker_env(
                pulled_model_settings.dir,
                queue_redis.url,
                CACHE__REDIS_URL=cache_redis.url,
                **CLUSTER_ENV,
            ),
            1,
            tmp_path / f"group-{index}.log",
        ).start(wait=False)
        for index in range(2)
    ]
    try:
        for api in apis:
            api.wait_ready()
        for fleet in fleets:
            fleet.wait_workers(2)
        yield apis, fleets, queue_redis
    finally:
        for api in apis:  # shutting down while the worker groups do
            api.request_stop()
        for fleet in fleets:
            fleet.stop()
        for api in apis:
            api.stop()


def _submit(client: httpx.Client, data: bytes, deadline: float) -> str:
    """POST the job, retrying 503s (the queue Redis restarting) until the deadline."""
    while True:
        try:
            response = client.post(
                "/v1/jobs?operation=detect",
                content=data,
                headers={"Content-Type": "image/jpeg"},
            )
            if response.status_code == 202:
                handle: str = response.json()["handle"]
                return handle
            assert response.status_code == 503, response.text
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "submissions refused until the deadline"
        time.sleep(0.2)


def _statuses(clients: list[httpx.Client], handles: list[str]) -> dict[str, str]:
    seen: dict[str, str] = {}
    for index, handle in enumerate(handles):
        try:
            response = clients[index % 2].get(f"/v1/jobs/{handle}")
        except httpx.TransportError:
            continue
        if response.status_code == 200:
            seen[handle] = response.json()["status"]
    return seen


def test_cluster_loses_nothing_and_runs_nothing_twice(
    loop_cluster: tuple[list[LiveServer], list[WorkerFleet], RedisProcess],
    face_jpeg: bytes,
    gate: Gate,
) -> None:
    apis, fleets, queue_redis = loop_cluster
    deadline = time.monotonic() + DEADLINE_S
    settings = job_settings(queue_redis.url)
    images = [
        variant(face_jpeg, gate.marker) if i == TARGET else variant(face_jpeg) for i in range(JOBS)
    ]
    job_ids = [prepare("detect", data, {}, settings).job_id for data in images]
    clients = [httpx.Client(base_url=api.url, timeout=30.0) for api in apis]
    try:
        handles = [_submit(clients[i % 2], images[i], deadline) for i in range(TARGET + 1)]

        # Kill the group running job TARGET (held) mid-job: its supervisor and its worker.
        pid = fleets[0].pid_running(job_ids[TARGET], timeout_s=DEADLINE_S / 2)
        victim = next(f for f in fleets if f.owns(pid))
        survivor = fleets[1] if victim is fleets[0] else fleets[0]
        os.killpg(victim.pid, signal.SIGKILL)
        killed_at = time.monotonic()

        # The queue Redis dies and comes back from its AOF while the rest is submitted.
        handles += [
            _submit(clients[i % 2], images[i], deadline)
            for i in range(TARGET + 1, REDIS_KILLED_BEFORE)
        ]
        queue_redis.kill()
        queue_redis.start()
        restarted_at = time.monotonic()
        handles.append(_submit(clients[0], images[REDIS_KILLED_BEFORE], deadline))
        api_back_s = time.monotonic() - restarted_at
        gate.release()  # a retry of the killed job that started meanwhile goes on
        handles += [
            _submit(clients[i % 2], images[i], deadline)
            for i in range(REDIS_KILLED_BEFORE + 1, JOBS)
        ]

        killed_job_done_s = None
        while True:
            seen = _statuses(clients, handles)
            if killed_job_done_s is None and seen.get(handles[TARGET]) == "finished":
                killed_job_done_s = time.monotonic() - killed_at
            if len(seen) == JOBS and all(s in ("finished", "failed") for s in seen.values()):
                break
            assert time.monotonic() < deadline, Counter(seen.values())
            time.sleep(0.1)
        drained_s = time.monotonic() - restarted_at
    finally:
        for client in clients:
            client.close()

    assert Counter(seen.values()) == {"finished": JOBS}
    ok = re.compile(r"Job OK\S*\s*\(([^)]+)\)")  # RQ's line for each completed job
    completed = Counter(
        ok.findall(victim.log_path.read_text(errors="replace"))
        + ok.findall(survivor.log_path.read_text(errors="replace"))
    )
    assert set(completed) <= set(job_ids)
    # Every job finished (above); one may lack RQ's "Job OK" line: the surviving worker (one
    # process) can be in the script that records a job's end when the queue Redis is killed,
    # the script reaches the AOF, and its reply is lost with the process, so RQ never logs the
    # job it did finish (the likely cause of what a fresh clone's CI run saw once: 39 of 40
    # lines, all 40 jobs finished, none run twice; not reproduced in 8 runs since).
    # A job whose end did not reach the AOF is retried from its lease and logs its line then.
    assert len(set(job_ids) - set(completed)) <= 1, set(job_ids) - set(completed)
    twice = {job: n for job, n in completed.items() if n != 1}
    assert not twice, twice
    print(
        f"\ncluster recovery: SIGKILLed group's held job finished elsewhere "
        f"{killed_job_done_s:.1f} s after the kill; API accepted jobs again "
        f"{api_back_s:.1f} s after the queue Redis restart; "
        f"all {JOBS} done {drained_s:.1f} s after it"
    )
