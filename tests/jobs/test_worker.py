"""The worker's parts that need no worker process: its queue's intermediate-queue sightings."""

from __future__ import annotations

import pytest
from redis import Redis

from faceflow.jobs.worker import FaceflowIntermediateQueue
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
