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


async def _first_served(tasks: list[asyncio.Task[int]]) -> int:
    """Which of ``tasks`` (waiting in line) got a lane first: its index."""
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    [first] = done
    assert first.result() == 1
    return tasks.index(first)


async def _b_in_line_after_a(
    lanes: Lanes, a_count: int
) -> tuple[asyncio.Task[int], list[asyncio.Task[int]]]:
    """Client a's ``a_count`` requests get in line, then client b's first: (b's, a's)."""
    a_waiting = [asyncio.create_task(_as("a", lanes, 1)) for _ in range(a_count)]
    await asyncio.sleep(0)
    b_first = asyncio.create_task(_as("b", lanes, 1))
    await asyncio.sleep(0)
    return b_first, a_waiting


async def test_a_clients_requests_in_line_step_back_for_another_clients_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Client a, alone, got three more requests in line behind its lane; client b's first
    # request, getting in line after them, waited for all three (large renders: 503 after its
    # 5 s). Had b come first, the rule would have kept a's three out of line.
    monkeypatch.setattr(lanes_module, "LANE_WAIT_S", 30.0)
    lanes = background_lanes(2, keep_for_others=True)  # one lane
    assert await asyncio.create_task(_as("a", lanes, 1)) == 1
    b_first, a_waiting = await _b_in_line_after_a(lanes, 3)
    in_line = [b_first, *a_waiting]

    await asyncio.create_task(_release_as("a", lanes))
    assert await _first_served(in_line) == 0  # b's, before every one of a's

    # Then a's, in their order, each when the one before gives its lane back.
    in_line.remove(b_first)
    await asyncio.create_task(_release_as("b", lanes))
    for _ in range(3):
        assert await _first_served(in_line) == 0
        in_line.pop(0)
        await asyncio.create_task(_release_as("a", lanes))
    assert lanes.owned == {}
    assert not lanes.locked()


async def test_a_client_holding_no_lane_keeps_its_first_request_in_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A job holds the lane: a's oldest request is its fair share, ahead of b's; its others
    # step back behind b's.
    monkeypatch.setattr(lanes_module, "LANE_WAIT_S", 30.0)
    lanes = background_lanes(2, keep_for_others=True)
    await lanes.acquire()  # a job
    b_first, a_waiting = await _b_in_line_after_a(lanes, 2)
    in_line = [*a_waiting, b_first]

    lanes.release()  # the job ends
    assert await _first_served(in_line) == 0  # a's oldest
    await asyncio.create_task(_release_as("a", lanes))
    assert await _first_served(in_line[1:]) == 1  # b's, before a's second
    await asyncio.create_task(_release_as("b", lanes))
    assert await _first_served(in_line[1:2]) == 0
    await asyncio.create_task(_release_as("a", lanes))
    assert lanes.owned == {}


async def test_a_request_stepped_back_that_gives_up_leaves_the_line_and_its_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lanes_module, "LANE_WAIT_S", 30.0)
    lanes = background_lanes(2, keep_for_others=True)
    assert await asyncio.create_task(_as("a", lanes, 1)) == 1
    a_second = asyncio.create_task(_as("a", lanes, 1))
    await asyncio.sleep(0)
    b_first = asyncio.create_task(_as("b", lanes, 1))
    await asyncio.sleep(0)
    await asyncio.create_task(_release_as("a", lanes))
    assert await b_first == 1
    a_second.cancel()  # its client left (a timeout ends the same way)
    with pytest.raises(asyncio.CancelledError):
        await a_second
    await asyncio.create_task(_release_as("b", lanes))
    assert lanes.owned == {}
    assert not lanes.locked()
