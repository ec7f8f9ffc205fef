"""Fixtures of the job tests: a queue Redis with AOF, and real worker fleets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from faceflow.config import ModelSettings
from tests.fixtures.redis_server import RedisProcess, RedisServerFactory
from tests.jobs.faults import Gate
from tests.jobs.support import FleetFactory, WorkerFleet, worker_env


@pytest.fixture(scope="session")
def queue_redis_server(redis_server_factory: RedisServerFactory) -> RedisProcess:
    """A queue Redis like production's: append-only file, fsynced on every write."""
    return redis_server_factory(appendonly=True)


@pytest.fixture
def queue_redis(queue_redis_server: RedisProcess) -> RedisProcess:
    """The queue Redis, running and empty; a test may kill or restart it."""
    queue_redis_server.ensure_healthy()
    queue_redis_server.flushall()
    return queue_redis_server


@pytest.fixture
def fleet_factory(
    tmp_path: Path, pulled_model_settings: ModelSettings, queue_redis: RedisProcess
) -> Iterator[FleetFactory]:
    """``factory(processes=2, wait=True, **env)``: a running ``faceflow worker``; all stopped
    (by PID) when the test ends."""
    fleets: list[WorkerFleet] = []

    def factory(processes: int = 2, *, wait: bool = True, **env: str) -> WorkerFleet:
        fleet = WorkerFleet(
            worker_env(pulled_model_settings.dir, queue_redis.url, **env),
            processes,
            tmp_path / f"worker-{len(fleets)}.log",
        )
        fleets.append(fleet)
        return fleet.start(wait=wait)

    try:
        yield factory
    finally:
        for fleet in fleets:
            fleet.stop()


@pytest.fixture(scope="session")
def face_jpeg(testdata: Path) -> bytes:
    """A 320×240 JPEG with one face."""
    return (testdata / "obama_small.jpg").read_bytes()


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Gate]:
    """A gate for held jobs (see tests/jobs/faults.py), released when the test ends whatever
    happened, so no worker is left holding a job while its fleet is stopped."""
    held = Gate(tmp_path / "gate")
    try:
        yield held
    finally:
        held.release()
