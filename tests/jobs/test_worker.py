"""The worker's parts that need no worker process: its queue's intermediate-queue sightings, its
job class."""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import rq.registry
from redis import Redis
from rq.job import Job
from rq.serializers import JSONSerializer

from faceflow.cache.entry import CacheEntry, encode_entry
from faceflow.cache.redis_cache import entry_key, unshared_key
from faceflow.config import Settings
from faceflow.jobs.redis_store import JOB_FUNCTION
from faceflow.jobs.worker import (
    FaceflowIntermediateQueue,
    FaceflowJob,
    FaceflowQueue,
    WorkerState,
    _fill_cache,
)
from faceflow.runtime.context import WorkerContext
from tests.fixtures.redis_server import RedisProcess

pytestmark = pytest.mark.redis

QUEUE_KEY = "rq:queue:sightings"


@pytest.fixture
def intermediate(queue_redis: RedisProcess) -> FaceflowIntermediateQueue:
    return FaceflowIntermediateQueue(QUEUE_KEY, connection=Redis.from_url(queue_redis.url))


def test_a_job_in_the_intermediate_queue_is_sighted_once(
    intermediate: FaceflowIntermediateQueue,
) -> None:
    intermediate.connection.rpush(intermediate.key, "job-1")

    assert intermediate.set_first_seen("job-1")  # recorded now: nothing more this pass
    assert not intermediate.set_first_seen("job-1")  # seen before: the cleanup judges it
    assert intermediate.get_first_seen("job-1") is not None
    assert 0 < intermediate.connection.ttl(intermediate.get_first_seen_key("job-1")) <= 24 * 3600


def test_a_job_started_after_the_cleanup_listed_it_leaves_no_sighting(
    intermediate: FaceflowIntermediateQueue,
) -> None:
    """The cleanup lists the queue, then sights each job: a job a worker started in between
    (out of the queue, its sighting deleted) must not get one back, or a later retry of the
    same job id would look stuck the moment the cleanup saw it."""
    intermediate.connection.rpush(intermediate.key, "job-1")
    listed = intermediate.get_job_ids()
    intermediate.connection.lrem(intermediate.key, 1, "job-1")  # what the start does

    assert listed == ["job-1"]
    assert intermediate.set_first_seen("job-1")  # nothing to do: it left the queue
    assert intermediate.get_first_seen("job-1") is None


# What RQ's Job.restore sets from a job's hash.
_RESTORED = (
    "data",
    "created_at",
    "origin",
    "worker_name",
    "description",
    "enqueued_at",
    "started_at",
    "ended_at",
    "last_heartbeat",
    "timeout",
    "result_ttl",
    "failure_ttl",
    "_status",
    "meta",
    "retries_left",
    "retry_intervals",
)


def _stored_hash(connection: Redis, **dates: datetime | None) -> dict[bytes, bytes]:
    job = Job.create(
        JOB_FUNCTION,
        connection=connection,
        serializer=JSONSerializer,
        id="job-1",
        meta={"owner": "été"},
        result_ttl=86400,
    )
    for name, value in dates.items():
        setattr(job, name, value)
    job.save()
    stored = connection.hgetall(job.key)
    return {k: v for k, v in stored.items() if isinstance(k, bytes) and isinstance(v, bytes)}


def _restored(cls: type[Job], connection: Redis, stored: dict[bytes, bytes]) -> dict[str, object]:
    job = cls("job-1", connection=connection, serializer=JSONSerializer)
    job.restore(dict(stored))
    return {name: getattr(job, name) for name in _RESTORED}


@pytest.mark.parametrize(
    "dates",
    [
        {},
        {
            "started_at": datetime(2026, 12, 5, 13, 53, 4, 273000, tzinfo=UTC),
            "ended_at": datetime(2026, 12, 5, 13, 53, 5, tzinfo=UTC),
            "last_heartbeat": datetime(2026, 12, 5, 13, 53, 5, 1, tzinfo=UTC),
        },
        {"created_at": None},
    ],
    ids=["queued", "ran", "no-creation-date"],
)
def test_a_job_is_restored_as_rqs_own_job_restores_it(
    queue_redis: RedisProcess, dates: dict[str, datetime | None]
) -> None:
    connection = Redis.from_url(queue_redis.url)
    stored = _stored_hash(connection, **dates)
    if "created_at" in dates:
        del stored[b"created_at"]  # RQ then takes the time of the restore

    ours, rqs = (_restored(cls, connection, stored) for cls in (FaceflowJob, Job))

    if "created_at" in dates:
        assert isinstance(ours.pop("created_at"), datetime)
        rqs.pop("created_at")
    assert ours == rqs
    for name in ("created_at", "enqueued_at", "started_at", "ended_at", "last_heartbeat"):
        stamp = ours.get(name)
        assert stamp is None or (isinstance(stamp, datetime) and stamp.tzinfo is UTC), name
    assert ours["meta"] == {"owner": "été"}


@pytest.mark.parametrize(
    ("stamp", "read"),
    [
        (b"2026-12-05T13:53:04Z", datetime(2026, 12, 5, 13, 53, 4, tzinfo=UTC)),  # RQ's old form
        (b"2026-12-05", None),  # refused by RQ, so by us
        (b"2026-12-05T13:53:04.273000", None),
        (b"yesterday", None),
    ],
)
def test_a_job_date_reads_as_rq_reads_it(
    queue_redis: RedisProcess, stamp: bytes, read: datetime | None
) -> None:
    connection = Redis.from_url(queue_redis.url)
    stored = _stored_hash(connection)
    stored[b"enqueued_at"] = stamp
    if read is None:
        for cls in (FaceflowJob, Job):
            with pytest.raises(ValueError, match="does not match format"):
                _restored(cls, connection, stored)
    else:
        assert _restored(FaceflowJob, connection, stored)["enqueued_at"] == read
        assert _restored(Job, connection, stored)["enqueued_at"] == read


@pytest.mark.parametrize("serializer", [JSONSerializer, None, "rq.serializers.JSONSerializer"])
def test_a_job_is_built_as_rqs_own_job_builds_it(
    queue_redis: RedisProcess, serializer: object
) -> None:
    connection = Redis.from_url(queue_redis.url)

    ours, rqs = (
        cls("job-1", connection=connection, serializer=serializer) for cls in (FaceflowJob, Job)
    )

    assert ours.serializer is rqs.serializer
    built = {name: value for name, value in vars(ours).items() if name != "created_at"}
    assert built == {name: value for name, value in vars(rqs).items() if name != "created_at"}


def test_a_job_with_something_else_as_serializer_is_refused_as_rq_refuses_it(
    queue_redis: RedisProcess,
) -> None:
    connection = Redis.from_url(queue_redis.url)
    for cls in (FaceflowJob, Job):
        with pytest.raises(NotImplementedError, match="dumps, loads"):
            cls("job-1", connection=connection, serializer=object())


def test_a_worker_marks_an_answer_too_large_to_read_back_as_the_api_nodes_do(
    queue_redis: RedisProcess, worker_context: WorkerContext
) -> None:
    """The API nodes read the shared cache within cache.redis_timeout_ms: a worker storing a
    larger answer there had them time out on it (a miss each, toward the breaker). It leaves the
    API nodes' mark instead, as long as the answer would have been kept; the worker left
    nothing, so nodes waiting on a lock for that work waited it out."""
    small = CacheEntry("application/json", b"{}")
    settings = Settings.model_validate(
        {"cache": {"redis_max_entry_bytes": len(encode_entry(small))}}
    )
    cache = Redis.from_url(queue_redis.url)
    state = WorkerState(settings, worker_context, cache, cache)
    try:
        _fill_cache(state, "small", small)
        _fill_cache(state, "large", CacheEntry("image/png", b"\0" * 4096))
        assert cache.exists(entry_key("small")) == 1
        assert cache.exists(entry_key("large")) == 0
        assert cache.exists(unshared_key("small")) == 0
        assert cache.pttl(unshared_key("large")) > 0.9 * settings.cache.ttl_s * 1000 - 60_000
    finally:
        cache.close()


def _registries_cleaned(function: Callable[..., object]) -> set[str]:
    """The registry classes ``function``'s code names (not its docstring, nor a type variable)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    return {
        node.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Name) and node.id.endswith("Registry") and node.id[0] != "_"
    }


def test_a_pass_cleans_the_registries_rqs_own_clean_up_cleans() -> None:
    # FaceflowQueue.clean_registries is RQ's clean_registries with leases judged as of the hang
    # check: a registry a later RQ 3.x adds to its own would go uncleaned here, unseen.
    assert _registries_cleaned(FaceflowQueue.clean_registries) == _registries_cleaned(
        rq.registry.clean_registries
    )
