"""The lanes queued-up work (batches, embedded jobs) shares (runtime/lanes.py): one process of
the pool always left to single requests."""

from __future__ import annotations

import asyncio

import pytest

from faceflow.runtime.lanes import background_lanes, lane_count, take_free

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
