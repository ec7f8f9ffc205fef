"""The inference processes that work queued up by a client (a batch's images, embedded jobs) or
large at once (an ID photo over 2 MP, a print sheet) may hold at once in one API process: one
fewer than the pool's processes, at least one, so that the single requests always find one.
Batches took every process (10 % of other clients' detects answered while one client sent
batches back to back), and 20 embedded ID-photo jobs, posted in a quarter of a second, made
others' detects take 5 s for the minute the jobs ran."""

from __future__ import annotations

import asyncio

LANE_WAIT_S = 5.0
"""How long a batch (or a large render) with no lane free waits its turn for one, in line with
the jobs waiting: refused at once, eight queued ID-photo jobs kept every other client's batches
out (503) for the 42 s the jobs took, as they took each lane given back."""


def lane_count(processes: int) -> int:
    return max(1, processes - 1)


def background_lanes(processes: int) -> asyncio.Semaphore:
    """The lanes of a pool of ``processes``, shared by the batches, the large renders and the
    embedded job runner of an API process: a job waits for one
    (:meth:`asyncio.Semaphore.acquire`), the others take those free now or one in turn
    (:func:`take_in_turn`)."""
    return asyncio.Semaphore(lane_count(processes))


async def take_free(lanes: asyncio.Semaphore, wanted: int) -> int:
    """Up to ``wanted`` lanes free now, without waiting: none while a job waits for one. The
    caller gives each back with ``lanes.release()``."""
    taken = 0
    while taken < wanted and not lanes.locked():
        await lanes.acquire()  # free: returns at once
        taken += 1
    return taken


async def take_in_turn(lanes: asyncio.Semaphore, wanted: int) -> int:
    """Up to ``wanted`` lanes free now; when none is, one lane in turn with the jobs waiting
    (first come, first served), waiting at most :data:`LANE_WAIT_S`; 0 when none came in that
    time. The caller gives each back with ``lanes.release()``."""
    taken = await take_free(lanes, wanted)
    if taken:
        return taken
    try:
        async with asyncio.timeout(LANE_WAIT_S):
            await lanes.acquire()
    except TimeoutError:
        return 0
    return 1
