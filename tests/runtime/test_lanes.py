"""The lanes queued-up work (batches, embedded jobs) shares (runtime/lanes.py): one process of
the pool always left to single requests."""

from __future__ import annotations

import asyncio

import pytest

from faceflow.runtime import lanes as lanes_module
from faceflow.runtime.lanes import background_lanes, lane_count, take_free, take_in_turn

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.mark.parametrize(("processes", "lanes"), [(1, 1), (2, 1), (4, 3)])
async def test_queued_up_work_leaves_one_process_to_other_clients(
    processes: int, lanes: int
) -> None:
    assert lane_count(processes) == lanes
    assert await take_free(background_lanes(processes), 100) == lanes


async def test_a_batch_takes_the_lanes_free_and_none_while_a_job_waits_for_one() -> None:
    lanes = background_lanes(4)
    assert await take_free(lanes, 2) == 2
    assert await take_free(lanes, 2) == 1
    job = asyncio.create_task(lanes.acquire())
    await asyncio.sleep(0)
    assert not job.done()
    lanes.release()
    lanes.release()
    # The job waiting is first in line: a batch arriving now takes what the job leaves.
    assert await take_free(lanes, 5) == 0
    await job
    assert await take_free(lanes, 5) == 1


async def test_a_batch_with_no_lane_free_takes_its_turn_before_the_jobs_that_come_after_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Refused at once, batches were kept out for as long as jobs were queued: each lane given
    # back went to the next job.
    monkeypatch.setattr(lanes_module, "LANE_WAIT_S", 30.0)
    lanes = background_lanes(2)  # one lane
    await lanes.acquire()  # a job runs
    batch = asyncio.create_task(take_in_turn(lanes, 3))
    await asyncio.sleep(0)
    next_job = asyncio.create_task(lanes.acquire())  # the job's consumer comes back for more
    await asyncio.sleep(0)
    lanes.release()  # the job ends
    assert await batch == 1
    assert not next_job.done()
    lanes.release()  # the batch ends
    await next_job


async def test_a_batch_that_waited_its_while_for_a_lane_gets_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lanes_module, "LANE_WAIT_S", 0.01)
    lanes = background_lanes(1)
    await lanes.acquire()
    assert await take_in_turn(lanes, 2) == 0
    lanes.release()
    assert await take_in_turn(lanes, 2) == 1
