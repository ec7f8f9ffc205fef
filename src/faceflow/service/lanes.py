"""The lane wait of the requests that take a lane of queued-up work one at a time (large renders
and print sheets, attributes of many faces): :func:`in_a_lane`. Batches take theirs in
``routes/faces.py``; the lanes themselves are :mod:`faceflow.runtime.lanes`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.requests import ClientDisconnect

from faceflow.errors import Overloaded
from faceflow.runtime.lanes import take_in_turn
from faceflow.service.state import Services

Gone = Callable[[], Awaitable[bool]]
"""Whether a request's client has gone (``Request.is_disconnected``)."""


@contextlib.asynccontextmanager
async def in_a_lane(services: Services, key: str, gone: Gone, what: str) -> AsyncIterator[None]:
    """A lane of queued-up work (:mod:`faceflow.runtime.lanes`) for the request computing
    ``key``, taken in turn; 503 when none comes in time (``what`` says what uses them).

    A request whose client has gone by then, with no other request waiting for the same result
    (:meth:`~faceflow.cache.tiered.ResultCache.callers`), gives its lane on at once, unmade
    (:class:`ClientDisconnect`, logged 499): work asked for with the connection closed at once
    queued for the lane without bound, costing nothing to hold, and was made in turn for nobody
    while other clients' batches waited out their turn behind it (``source=`` sheets, 20 a
    second: another client's batches 1 answered and 3 × 503 in 20 s; then 270, none 503)."""

    async def unwanted() -> bool:
        # Callers counted after the await: one joining while it waits gets the work made.
        return await gone() and services.cache.callers(key) <= 1

    if await unwanted():
        raise ClientDisconnect()
    if not await take_in_turn(services.lanes, 1):
        raise Overloaded(
            f"the inference processes {what} may use are busy",
            retry_after_s=services.pool.retry_after_s(),
        )
    try:
        if await unwanted():
            raise ClientDisconnect()
        yield
    finally:
        services.lanes.release()
