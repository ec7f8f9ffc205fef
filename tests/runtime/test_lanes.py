"""The lanes queued-up work (batches, embedded jobs) shares (runtime/lanes.py): one process of
the pool always left to single requests."""

from __future__ import annotations

import asyncio

import pytest

from faceflow.runtime import lanes as lanes_module
from faceflow.runtime.lanes import Lanes, background_lanes, lane_count, take_free, take_in_turn
from faceflow.runtime.pool import PLACE_OWNER

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


async def _as(owner: str, lanes: Lanes, wanted: int) -> int:
    """``take_in_turn`` for a request of client ``owner`` (its own context, as a request's)."""
    PLACE_OWNER.set(owner)
    return await take_in_turn(lanes, wanted)


async def _release_as(owner: str, lanes: Lanes) -> None:
    PLACE_OWNER.set(owner)
    lanes.release()


async def test_a_client_holding_a_lane_does_not_get_in_line_for_another_while_another_is_about(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # First come, first served, 100 connections of one client asking for large renders stood
    # in front of every other client's batch, which got 503 after its 5 s.
    monkeypatch.setattr(lanes_module, "LANE_WAIT_S", 30.0)
    lanes = background_lanes(2, keep_for_others=True)  # one lane
    assert await asyncio.create_task(_as("a", lanes, 1)) == 1
    other = asyncio.create_task(_as("b", lanes, 1))  # in line, and about
    await asyncio.sleep(0)
    more = asyncio.create_task(_as("a", lanes, 1))
    await asyncio.sleep(0)
    assert more.done(), "in line behind its own lane, in front of other clients"
    assert more.result() == 0
    await asyncio.create_task(_release_as("a", lanes))
    assert await other == 1
    assert lanes.owned == {"b": 1}


async def test_a_client_alone_waits_in_line_as_often_as_it_asks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lanes_module, "LANE_WAIT_S", 30.0)
    lanes = background_lanes(2, keep_for_others=True)
    assert await asyncio.create_task(_as("a", lanes, 1)) == 1
    waiting = [asyncio.create_task(_as("a", lanes, 1)) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(task.done() for task in waiting)
    for task in waiting:
        await asyncio.create_task(_release_as("a", lanes))
        assert await task == 1
    await asyncio.create_task(_release_as("a", lanes))
    assert lanes.owned == {}
    assert not lanes.locked()


async def test_without_keeping_lanes_for_others_the_line_is_first_come_first_served(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lanes_module, "LANE_WAIT_S", 30.0)
    lanes = background_lanes(2)
    assert await asyncio.create_task(_as("a", lanes, 1)) == 1
    other = asyncio.create_task(_as("b", lanes, 1))
    more = asyncio.create_task(_as("a", lanes, 1))
    await asyncio.sleep(0)
    assert not more.done()
    lanes.release()
    assert await other == 1
    lanes.release()
    assert await more == 1
