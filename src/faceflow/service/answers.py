"""Answer bodies held while their clients take them: ``limits.answer_budget_bytes``.

An answer's body is one ``bytes`` object per request, whether computed (a 17 MB annotated PNG is
too large for the memory cache and is made again for each request), copied out of the memory
cache (every hit gets its own copy, up to ``cache.memory_max_entry_bytes``) or read from Redis.
Written whole, the transport kept it until the client had taken it all: connections reading
16 KB every 5 s held one copy each in the API process until ``server.send_timeout_s`` dropped
them (20 such answers: 87 → 412 MB of RSS, with no bound but the connection cap).

So an answer over :data:`SLICE_BYTES` is written in slices, each once the transport has taken
the one before (uvicorn's ``send`` waits for its transport to drain), and its bytes count against
one budget per process from its first slice until the transport holds no more than its low-water
mark of it. An answer is taken whole while the bytes held are under the budget (they pass it by
one answer at most, and an answer larger than the budget still goes once the others are sent);
once the budget is reached, such an answer is refused ``503 overloaded`` with ``Retry-After``,
and the routes that would compute an image refuse before computing it (:func:`check_room`).
Answers of one slice or less (JSON reports, small images) are written whole, never counted nor
refused: a connection's transport holds at most one slice of them, under the connection cap.

The budget is shared between clients (``runtime.keep_last_place``; a client is the request's
:data:`~faceflow.runtime.pool.PLACE_OWNER`, its API key else its address): while another client
is about, a client holding answers already gets another only if it then holds no more than half
the budget (:class:`~faceflow.runtime.budget.ClientBudget`). One client's connections asking for
large answers and reading them slowly held the whole budget until ``server.send_timeout_s``,
and every other client's large answers were refused meanwhile; a client alone still takes it all.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.background import BackgroundTask
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from faceflow.errors import Overloaded
from faceflow.runtime.budget import ClientBudget
from faceflow.runtime.pool import PLACE_OWNER
from faceflow.service.errors import faceflow_error_response

__all__ = [
    "SLICE_BYTES",
    "Answer",
    "SharedAnswer",
    "check_room",
    "refusal",
    "send_answer",
    "send_slices",
    "send_taken",
    "try_take",
]

SLICE_BYTES = 64 * 1024
"""Answers longer than this are written in slices of it and count against the budget. The
transports' own high-water mark (64 KiB): an answer that fits is taken by the transport at once."""
_RETRY_AFTER_S = 1


def refusal(budget: ClientBudget | None) -> Overloaded:
    """What an answer ``budget`` has no room for gets instead (503, Retry-After): the budget is
    reached, or else the client's share of it (:class:`ClientBudget`) is."""
    if budget is not None and not budget.reached:
        return Overloaded(
            "your other answers still being taken hold your share of the answers the server "
            "may hold (limits.answer_budget_bytes), and the rest is kept for other clients: "
            "send this one once one of yours has been taken",
            retry_after_s=_RETRY_AFTER_S,
        )
    return Overloaded(
        "the server holds as many answers for clients still taking them as it may "
        "(limits.answer_budget_bytes); retry shortly",
        retry_after_s=_RETRY_AFTER_S,
    )


def check_room(budget: ClientBudget | None) -> None:
    """Refuse (Overloaded) before computing an answer that may need the budget, once it is
    reached or the request's client holds its share of it: the answer would be refused when
    made."""
    if budget is not None and not budget.room_for(PLACE_OWNER.get()):
        raise refusal(budget)


def try_take(budget: ClientBudget | None, size: int) -> bool:
    """Whether an answer of ``size`` bytes may be sent now: always for one of a slice or less
    (or with no budget), else if ``budget`` has room for it for the request's client
    (:meth:`ClientBudget.try_take_for`), which then holds it until :func:`send_taken`, in the same
    request's context, has sent it."""
    return size <= SLICE_BYTES or budget is None or budget.try_take_for(PLACE_OWNER.get(), size)


async def send_taken(
    send: Send,
    budget: ClientBudget | None,
    status: int,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
) -> None:
    """Send ``body`` with ``status`` and ``headers`` (Content-Length included) as ASGI messages,
    once :func:`try_take` let it through in this request's context: whole when it is one slice
    or less (or there is no budget), else in slices, giving its bytes back to ``budget`` (for the
    request's client) once the transport holds no more than its low-water mark of them (module
    doc)."""
    size = len(body)
    if size <= SLICE_BYTES or budget is None:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    owner = PLACE_OWNER.get()
    try:
        await send_slices(send, status, headers, body)
    finally:
        budget.give_for(owner, size)


async def send_slices(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    """Send ``body`` in slices of :data:`SLICE_BYTES`, each once the transport has taken the
    one before (uvicorn's ``send`` waits for its transport to drain)."""
    await send({"type": "http.response.start", "status": status, "headers": headers})
    view = memoryview(body)
    for start in range(0, len(body), SLICE_BYTES):
        piece = bytes(view[start : start + SLICE_BYTES])
        await send({"type": "http.response.body", "body": piece, "more_body": True})
    # Its send waits, as each slice's did, until the transport has taken the last slice.
    await send({"type": "http.response.body", "body": b""})


async def send_answer(
    send: Send,
    budget: ClientBudget | None,
    status: int,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
) -> None:
    """:func:`send_taken` for an answer :func:`try_take` lets through, else ``503 overloaded``
    (:func:`refusal`) instead."""
    if try_take(budget, len(body)):
        await send_taken(send, budget, status, headers, body)
        return
    refused = faceflow_error_response(refusal(budget))
    await send_taken(send, None, refused.status_code, refused.raw_headers, bytes(refused.body))


class SharedAnswer(Response):
    """Bytes every request shares for the life of the process (an example photo), written in
    slices as an :class:`Answer` over a slice is, but never counted nor refused: the bytes are
    held whatever the clients do. Written whole, the transport copied into its own buffer what
    the kernel's send buffer did not take at once: up to the photo's 773 KiB for each client not
    reading it, up to the connection cap; now a slice at most."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send_slices(send, self.status_code, self.raw_headers, bytes(self.body))
        if self.background is not None:
            await self.background()


class Answer(Response):
    """A response whose body is sent by :func:`send_answer` against ``budget``."""

    def __init__(
        self,
        content: bytes,
        *,
        budget: ClientBudget | None,
        media_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        background: BackgroundTask | None = None,
    ) -> None:
        super().__init__(content, media_type=media_type, headers=headers, background=background)
        self._budget = budget

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send_answer(send, self._budget, self.status_code, self.raw_headers, bytes(self.body))
        if self.background is not None:
            await self.background()
