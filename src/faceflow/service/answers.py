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

Stalled answers give way (:class:`AnswerBudget`): a client alone may take the whole budget, and
its connections then taking nothing held it until ``server.send_timeout_s`` (30 s) dropped them,
every large answer of a client arriving meanwhile refused. When another client's answer finds the
budget reached, the answers of a client holding more than its half that have waited over
:data:`GIVE_WAY_IDLE_S` for their client to take a slice (under about 48 KiB/s: the transport
drains from its high-water mark to its low one, 64 → 16 KiB, for ``send`` to return) are cut,
the longest waiting first, only as many as make room and only while their client is over its
half: the connection is closed (:data:`ABORT_CONNECTION`) and the bytes given back. An answer
taken at a slice a second or faster is never cut. An image to compute is let through on the
room such cuts would make, but they are made only once its answer is taken: a computation that
failed had cut an answer for nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from starlette.background import BackgroundTask
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from faceflow.errors import Overloaded
from faceflow.runtime.budget import ClientBudget
from faceflow.runtime.pool import PLACE_OWNER
from faceflow.service.errors import faceflow_error_response

__all__ = [
    "ABORT_CONNECTION",
    "GIVE_WAY_IDLE_S",
    "SLICE_BYTES",
    "Answer",
    "AnswerBudget",
    "Sending",
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
GIVE_WAY_IDLE_S = 1.0
"""An answer whose ``send`` has waited longer than this for its client to take a slice may be
cut to make room for another client's answer (module doc)."""

ABORT_CONNECTION = "faceflow.abort_connection"
"""The ASGI scope's key for what closes the request's connection at once, its buffers dropped,
and has a ``send`` waiting on it return: put there by the HTTP protocol for each request (a key
of the scope, not a context variable: setting one for every request's task cost a cache hit
≈ 0.5 % of its instructions, its other variables' lookups made slower). Without it (another ASGI
server) a cut answer's task is cancelled while it waits, and the app returns with the answer
unfinished, which the server ends by closing the connection."""

Abort = Callable[[], None]


class Sending:
    """One answer being written against an :class:`AnswerBudget`: whose, how large, and since
    when its ``send`` has waited for the client (None: not waiting)."""

    __slots__ = ("_abort", "_task", "cut", "owner", "size", "waiting_since")

    def __init__(self, owner: str | None, size: int, abort: Abort | None) -> None:
        self.owner = owner
        self.size = size
        self.waiting_since: float | None = None
        self.cut = False
        """True once it gave way: its bytes are given back, nothing more of it is sent."""
        self._abort = abort
        self._task = asyncio.current_task()

    def waited(self, now: float) -> float:
        """How long its ``send`` has waited for the client (0 when not waiting)."""
        since = self.waiting_since
        return 0.0 if since is None else now - since

    def give_way(self) -> None:
        """Stop the answer: close its connection (or cancel its task while it waits)."""
        self.cut = True
        if self._abort is not None:
            self._abort()
        elif self.waiting_since is not None and self._task is not None:
            self._task.cancel()

    @property
    def closed(self) -> bool:
        """Whether it was cut by closing its connection (its server drops what is sent next)."""
        return self.cut and self._abort is not None

    def ours(self) -> bool:
        """After a cancellation: whether it was this answer's cut alone (uncancels it)."""
        return (
            self.cut
            and self._abort is None
            and self._task is not None
            and (self._task.uncancel() == 0)
        )


class AnswerBudget(ClientBudget):
    """The answer budget: a :class:`ClientBudget` that knows the answers being sent against it
    (:class:`Sending`), so that stalled ones give way to another client's (module doc)."""

    def __init__(self, limit_bytes: int, *, keep_for_others: bool = False) -> None:
        super().__init__(limit_bytes, keep_for_others=keep_for_others)
        self.sending: set[Sending] = set()
        self.given_way = 0
        """Answers cut to make room since start."""

    def make_room(self, owner: str | None, n: int) -> None:
        """Cut the answers :meth:`room_to_make` finds for ``owner``'s ``n`` bytes, their bytes
        given back: called only when the bytes are taken next (:func:`try_take`), so that no
        answer is cut for one that is then not sent."""
        for answer in self.room_to_make(owner, n):
            self.sending.discard(answer)
            self.give_for(answer.owner, answer.size)
            self.given_way += 1
            answer.give_way()

    def room_to_make(self, owner: str | None, n: int) -> list[Sending]:
        """Once the budget is reached, and ``owner``'s ``n`` bytes would not be kept from it for
        its share: the answers of clients over their share (other than ``owner``) that have
        waited over :data:`GIVE_WAY_IDLE_S`, the longest waiting first, whose cut would bring
        the budget under its limit; none when all of them would not (cutting them would help
        no one), and none of a client once it is down to its share. Nothing is cut."""
        if not self.reached or owner is None or not self.keep_for_others or not self.sending:
            return []
        if self._kept_from(owner, n):
            return []
        now = time.monotonic()
        stalled = [
            (waited, holder, answer)
            for answer in self.sending
            if (holder := answer.owner) is not None
            and holder != owner
            and (waited := answer.waited(now)) > GIVE_WAY_IDLE_S
        ]
        stalled.sort(key=lambda found: found[0], reverse=True)
        shortfall = self.used_bytes - self.limit_bytes + 1
        held = {holder: self.held_by(holder) for _, holder, _ in stalled}
        cut: list[Sending] = []
        for _, holder, answer in stalled:
            if shortfall <= 0:
                break
            if held[holder] <= self.share_bytes:
                continue  # down to its share: what it holds now is its own
            held[holder] -= answer.size
            shortfall -= answer.size
            cut.append(answer)
        return [] if shortfall > 0 else cut

    def begin(self, owner: str | None, size: int, abort: Abort | None) -> Sending:
        """An answer of ``size`` bytes taken for ``owner`` starts being sent on the connection
        ``abort`` closes (:data:`ABORT_CONNECTION`)."""
        answer = Sending(owner, size, abort)
        self.sending.add(answer)
        return answer

    @contextmanager
    def holding(self, size: int) -> Iterator[None]:
        """Room for ``size`` bytes of an answer held while it is read from another HTTP worker
        (:data:`~faceflow.jobs.peers.HoldAnswer`), taken and refused as the answer itself would
        be (:func:`try_take`: ``503 overloaded`` when there is none), given back after."""
        owner = PLACE_OWNER.get()
        if not try_take(self, size):
            raise refusal(self)
        try:
            yield
        finally:
            if size > SLICE_BYTES:  # what try_take took
                self.give_for(owner, size)

    def end(self, answer: Sending) -> None:
        """It is sent (or failed): its bytes back, unless it gave way (already back)."""
        if not answer.cut:
            self.sending.discard(answer)
            self.give_for(answer.owner, answer.size)


def refusal(budget: AnswerBudget | None) -> Overloaded:
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


def check_room(budget: AnswerBudget | None) -> None:
    """Refuse (Overloaded) before computing an answer that may need the budget, once it is
    reached or the request's client holds its share of it: the answer would be refused when
    made, unless stalled answers would give way to it (:meth:`AnswerBudget.room_to_make`)."""
    if budget is None:
        return
    owner = PLACE_OWNER.get()
    if budget.room_for(owner):
        return
    # Room that cutting stalled answers would make lets the computation go, but they are cut
    # only once its answer is taken (try_take): a computation that then fails (a source= name
    # expired, no face, the pool full), or whose answer is one slice or less, cut an answer
    # its client was still to get, for nothing.
    if not budget.room_to_make(owner, 1):
        raise refusal(budget)


def try_take(budget: AnswerBudget | None, size: int) -> bool:
    """Whether an answer of ``size`` bytes may be sent now: always for one of a slice or less
    (or with no budget), else if ``budget`` has room for it for the request's client
    (:meth:`ClientBudget.try_take_for`), which then holds it until :func:`send_taken`, in the same
    request's context, has sent it."""
    if size <= SLICE_BYTES or budget is None:
        return True
    owner = PLACE_OWNER.get()
    budget.make_room(owner, size)
    return budget.try_take_for(owner, size)


async def send_taken(
    send: Send,
    budget: AnswerBudget | None,
    status: int,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    abort: Abort | None = None,
) -> None:
    """Send ``body`` with ``status`` and ``headers`` (Content-Length included) as ASGI messages,
    once :func:`try_take` let it through in this request's context: whole when it is one slice
    or less (or there is no budget), else in slices on the connection ``abort`` closes (the
    scope's :data:`ABORT_CONNECTION`, for an answer cut to make room), giving its bytes back to
    ``budget`` (for the request's client) once the transport holds no more than its low-water
    mark of them (module
    doc)."""
    size = len(body)
    if size <= SLICE_BYTES or budget is None:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    answer = budget.begin(PLACE_OWNER.get(), size, abort)
    try:
        await send_slices(send, status, headers, body, answer)
    finally:
        budget.end(answer)


async def send_slices(
    send: Send,
    status: int,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    answer: Sending | None = None,
) -> None:
    """Send ``body`` in slices of :data:`SLICE_BYTES`, each once the transport has taken the
    one before (uvicorn's ``send`` waits for its transport to drain); with ``answer``, noting
    how long each ``send`` waits, and stopping once the answer is cut (left unfinished)."""
    end: Message = {"type": "http.response.body", "body": b""}
    start: Message = {"type": "http.response.start", "status": status, "headers": headers}
    if await _sent(send, start, answer):
        await _cut(send, end, answer)
        return
    view = memoryview(body)
    for at in range(0, len(body), SLICE_BYTES):
        piece = bytes(view[at : at + SLICE_BYTES])
        if await _sent(
            send, {"type": "http.response.body", "body": piece, "more_body": True}, answer
        ):
            await _cut(send, end, answer)
            return
    # Its send waits, as each slice's did, until the transport has taken the last slice.
    await _sent(send, end, answer)


async def _cut(send: Send, end: Message, answer: Sending | None) -> None:
    """An answer cut: over a closed connection, its ``end`` is sent for the server to drop, so
    that the request is logged as one its client did not get (faceflow's protocol: 499); one
    cut by cancelling its task is left unfinished, for the server to close the connection."""
    if answer is not None and answer.closed:
        await send(end)


async def _sent(send: Send, message: Message, answer: Sending | None) -> bool:
    """``send(message)``, noting the wait on ``answer`` if any; whether the answer is cut."""
    if answer is None:
        await send(message)
        return False
    answer.waiting_since = time.monotonic()
    try:
        await send(message)
    except asyncio.CancelledError:
        if answer.ours():
            return True
        raise
    finally:
        answer.waiting_since = None
    return answer.cut


async def send_answer(
    send: Send,
    budget: AnswerBudget | None,
    status: int,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    abort: Abort | None = None,
) -> None:
    """:func:`send_taken` for an answer :func:`try_take` lets through, else ``503 overloaded``
    (:func:`refusal`) instead."""
    if try_take(budget, len(body)):
        await send_taken(send, budget, status, headers, body, abort)
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
        budget: AnswerBudget | None,
        media_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        background: BackgroundTask | None = None,
    ) -> None:
        super().__init__(content, media_type=media_type, headers=headers, background=background)
        self._budget = budget

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send_answer(
            send,
            self._budget,
            self.status_code,
            self.raw_headers,
            bytes(self.body),
            scope.get(ABORT_CONNECTION),
        )
        if self.background is not None:
            await self.background()
