"""BodyLimits (service/upload.py) in process: the upload budget and the body timeout, in front of
a small ASGI app that reads its body the way the routes do. The live-server side (raw sockets,
RSS under the issue's load) is in test_load_limits.py."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from faceflow.errors import FaceflowError
from faceflow.runtime.budget import ByteBudget
from faceflow.service.errors import faceflow_error_response
from faceflow.service.upload import PACE_GRACE_S, BodyLimits, read_body

pytestmark = pytest.mark.timeout(60)

MIB = 1024 * 1024


class Reader:
    """The app behind BodyLimits: reads the whole body (as the routes do), answers its size; a
    FaceflowError from the read becomes the service's JSON error, as the routes' handler does."""

    def __init__(self) -> None:
        self.called = False
        self.reading = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.called = True
        self.reading.set()
        try:
            body = await read_body(Request(scope, receive), 64 * MIB)
        except FaceflowError as exc:
            await faceflow_error_response(exc)(scope, receive, send)
            return
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"%d" % len(body)})


def scope(length: int | None, client: str = "192.0.2.1") -> Scope:
    headers = [(b"content-type", b"image/jpeg")]
    if length is None:
        headers.append((b"transfer-encoding", b"chunked"))
    else:
        headers.append((b"content-length", b"%d" % length))
    return {
        "type": "http",
        "method": "POST",
        "path": "/v1/detect",
        "headers": headers,
        "client": (client, 40000),
    }


def body_of(chunks: list[bytes], *, stall: bool = False) -> tuple[Receive, list[int]]:
    """A receive giving ``chunks`` (the last one ends the body unless ``stall``, which then never
    answers again), and the list of chunk indexes handed out."""
    given: list[int] = []
    forever = asyncio.Event()

    async def receive() -> Message:
        if len(given) == len(chunks):
            await forever.wait()
        given.append(len(given))
        last = len(given) == len(chunks) and not stall
        return {"type": "http.request", "body": chunks[len(given) - 1], "more_body": not last}

    return receive, given


async def call(
    limits: BodyLimits, scope: Scope, receive: Receive
) -> tuple[int, dict[str, str], bytes]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await limits(scope, receive, send)
    start = sent[0]
    headers = {k.decode().lower(): v.decode() for k, v in start.get("headers", [])}
    return start["status"], headers, b"".join(m.get("body", b"") for m in sent[1:])


def error_code(body: bytes) -> Any:
    return json.loads(body)["error"]["code"]


async def test_a_declared_body_that_does_not_fit_is_refused_before_it_is_read() -> None:
    budget = ByteBudget(10 * MIB)
    app = Reader()
    app.release.clear()
    limits = BodyLimits(app, budget, body_timeout_s=30)
    first_receive, _ = body_of([b"x" * (6 * MIB)])
    first = asyncio.create_task(call(limits, scope(6 * MIB), first_receive))
    await asyncio.wait_for(app.reading.wait(), 10)
    assert budget.used_bytes == 6 * MIB

    app2 = Reader()
    receive, given = body_of([b"y" * (5 * MIB)])
    status, headers, body = await call(BodyLimits(app2, budget, 30), scope(5 * MIB), receive)
    assert (status, error_code(body)) == (503, "overloaded")
    assert int(headers["retry-after"]) >= 1
    assert headers["connection"] == "close"
    assert not app2.called  # not one byte of it was read
    assert given == []

    app.release.set()
    assert (await first)[0] == 200
    assert budget.used_bytes == 0  # given back once answered
    receive, _ = body_of([b"y" * (5 * MIB)])
    assert (await call(BodyLimits(Reader(), budget, 30), scope(5 * MIB), receive))[0] == 200


async def test_a_body_larger_than_the_whole_budget_is_too_large() -> None:
    receive, given = body_of([b""])
    status, _, body = await call(BodyLimits(Reader(), ByteBudget(MIB), 30), scope(2 * MIB), receive)
    assert (status, error_code(body), given) == (413, "too_large", [])


async def test_a_chunked_body_takes_its_bytes_as_they_come_and_stops_at_the_budget() -> None:
    budget = ByteBudget(2 * MIB)
    receive, given = body_of([b"z" * MIB] * 5)
    status, headers, body = await call(BodyLimits(Reader(), budget, 30), scope(None), receive)
    assert (status, error_code(body)) == (503, "overloaded")
    assert headers["connection"] == "close"
    assert len(given) == 3  # the chunk that would not fit is where reading stopped
    assert budget.used_bytes == 0


@pytest.mark.parametrize("length", [100, None], ids=["content-length", "chunked"])
async def test_a_body_that_stops_arriving_is_a_408(length: int | None) -> None:
    budget = ByteBudget(MIB)
    receive, _ = body_of([b"0123456789"], stall=True)  # 10 bytes, then nothing
    status, headers, body = await call(BodyLimits(Reader(), budget, 0.05), scope(length), receive)
    assert (status, error_code(body)) == (408, "request_timeout")
    assert headers["connection"] == "close"
    assert budget.used_bytes == 0


async def test_requests_without_a_body_pass_untouched() -> None:
    seen: list[Receive] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(receive)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    get: Scope = {"type": "http", "method": "GET", "path": "/healthz", "headers": []}
    limits = BodyLimits(app, ByteBudget(MIB), 30)
    assert (await call(limits, get, receive))[0] == 204
    assert seen == [receive]


async def test_a_cancel_from_outside_while_the_body_is_read_stays_a_cancel() -> None:
    """The body timer cancels the reading task itself; a cancel from anyone else (the server
    shutting down, the client gone) must still end the task as a cancel, not as a 408 answer."""
    budget = ByteBudget(MIB)
    stalled, forever = asyncio.Event(), asyncio.Event()
    chunks = [{"type": "http.request", "body": b"0123456789", "more_body": True}]

    async def receive() -> Message:
        if chunks:
            return chunks.pop()
        stalled.set()  # the first chunk is read: the task now waits for the rest
        await forever.wait()
        raise AssertionError("unreachable")

    task = asyncio.create_task(call(BodyLimits(Reader(), budget, 30), scope(100), receive))
    await stalled.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert budget.used_bytes == 0


def gated_body(arrived: bytes, rest: bytes) -> tuple[Receive, asyncio.Event, asyncio.Event]:
    """A receive giving ``arrived`` (which may be empty), then waiting for its gate before the
    ``rest`` that ends the body; and the events "now waiting at the gate" and "open the gate"."""
    waiting, gate = asyncio.Event(), asyncio.Event()
    parts = [arrived, rest]

    async def receive() -> Message:
        if len(parts) == 1:
            waiting.set()
            await gate.wait()
        chunk = parts.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(parts)}

    return receive, waiting, gate


async def holder(
    limits: BodyLimits, arrived: int, length: int, client: str = "192.0.2.1"
) -> tuple[asyncio.Task[tuple[int, dict[str, str], bytes]], asyncio.Event]:
    """A request declaring ``length`` bytes of which ``arrived`` are in, its task now waiting for
    the rest; and the gate that lets the rest in."""
    receive, waiting, gate = gated_body(b"a" * arrived, b"b" * (length - arrived))
    task = asyncio.create_task(call(limits, scope(length, client), receive))
    await asyncio.wait_for(waiting.wait(), 10)
    return task, gate


def past_their_grace(limits: BodyLimits) -> None:
    """Make every body still arriving as old as its grace: without bytes since, behind."""
    for reader in limits.arriving:
        reader.since -= PACE_GRACE_S


async def test_a_stalled_body_gives_its_room_to_a_new_upload() -> None:
    """A client declaring a large body and sending nothing held the budget for the whole body
    timeout; now the room it has not used goes to the next upload that needs it."""
    budget = ByteBudget(10 * MIB)
    limits = BodyLimits(Reader(), budget, body_timeout_s=30)
    stalled, _ = await holder(limits, 0, 8 * MIB)
    assert budget.used_bytes == 8 * MIB
    past_their_grace(limits)

    receive, _ = body_of([b"y" * (5 * MIB)])
    assert (await call(limits, scope(5 * MIB), receive))[0] == 200
    status, headers, body = await asyncio.wait_for(stalled, 10)
    assert (status, error_code(body)) == (408, "request_timeout")
    assert "too slowly" in json.loads(body)["error"]["message"]
    assert headers["connection"] == "close"
    assert budget.used_bytes == 0
    assert not limits.arriving


async def test_a_body_just_asked_for_keeps_its_room_for_the_grace() -> None:
    """A client that has just been asked for its body (its first bytes a round trip away) is not
    behind yet: two such clients must not cut each other's uploads in turn."""
    budget = ByteBudget(10 * MIB)
    limits = BodyLimits(Reader(), budget, body_timeout_s=30)
    fresh, gate = await holder(limits, 0, 8 * MIB)

    receive, given = body_of([b"y" * (5 * MIB)])
    status, _, body = await call(limits, scope(5 * MIB), receive)
    assert (status, error_code(body), given) == (503, "overloaded", [])
    gate.set()
    assert (await asyncio.wait_for(fresh, 10))[0] == 200
    assert budget.used_bytes == 0


async def test_a_body_arriving_on_pace_keeps_its_room() -> None:
    budget = ByteBudget(10 * MIB)
    limits = BodyLimits(Reader(), budget, body_timeout_s=30)
    # 5 of 6 MiB in at once: far ahead of 6 MiB over 30 s.
    steady, gate = await holder(limits, 5 * MIB, 6 * MIB)
    past_their_grace(limits)

    receive, given = body_of([b"y" * (5 * MIB)])
    status, _, body = await call(limits, scope(5 * MIB), receive)
    assert (status, error_code(body), given) == (503, "overloaded", [])
    gate.set()
    assert (await asyncio.wait_for(steady, 10))[:2] == (200, {})
    assert budget.used_bytes == 0


async def test_the_body_furthest_behind_gives_way_first_and_no_more_than_needed() -> None:
    budget = ByteBudget(10 * MIB)
    limits = BodyLimits(Reader(), budget, body_timeout_s=30)
    oldest, _ = await holder(limits, 0, 3 * MIB)
    ahead, ahead_gate = await holder(limits, MIB, 3 * MIB)
    newest, newest_gate = await holder(limits, 0, 3 * MIB)
    past_their_grace(limits)  # the same age added to each: the oldest is still the oldest

    receive, _ = body_of([b"y" * (3 * MIB)])
    assert (await call(limits, scope(3 * MIB), receive))[0] == 200
    assert (await asyncio.wait_for(oldest, 10))[0] == 408
    ahead_gate.set()
    newest_gate.set()
    assert (await asyncio.wait_for(ahead, 10))[0] == 200
    assert (await asyncio.wait_for(newest, 10))[0] == 200
    assert budget.used_bytes == 0


async def test_stalled_bodies_are_not_cut_when_that_would_not_make_room() -> None:
    budget = ByteBudget(10 * MIB)
    app = Reader()
    limits = BodyLimits(app, budget, body_timeout_s=30)
    stalled, gate = await holder(limits, 0, 6 * MIB)
    past_their_grace(limits)
    app.release.clear()  # the next body is read whole, then held until its answer
    app.reading.clear()
    receive, given = body_of([b"h" * (4 * MIB)])
    held = asyncio.create_task(call(limits, scope(4 * MIB), receive))
    await asyncio.wait_for(app.reading.wait(), 10)
    assert given == [0]  # in whole: not arriving, nothing of it to take back
    assert budget.used_bytes == 10 * MIB

    receive, _ = body_of([b"y" * (7 * MIB)])
    status, _, body = await call(limits, scope(7 * MIB), receive)
    assert (status, error_code(body)) == (503, "overloaded")  # 6 MiB back would not fit 7
    assert not stalled.done()
    gate.set()
    app.release.set()
    assert (await asyncio.wait_for(stalled, 10))[0] == 200
    assert (await asyncio.wait_for(held, 10))[0] == 200
    assert budget.used_bytes == 0


async def test_a_chunked_body_makes_room_from_stalled_ones_as_its_bytes_come() -> None:
    budget = ByteBudget(4 * MIB)
    limits = BodyLimits(Reader(), budget, body_timeout_s=30)
    stalled, _ = await holder(limits, 0, 3 * MIB)
    past_their_grace(limits)
    receive, _ = body_of([b"z" * MIB] * 3)
    assert (await call(limits, scope(None), receive))[0] == 200
    assert (await asyncio.wait_for(stalled, 10))[0] == 408
    assert budget.used_bytes == 0


async def test_a_client_whose_body_was_cut_gets_no_grace_for_the_next() -> None:
    """Each new connection holding its body for the grace alone would keep the budget with a
    few connections a second; once one of a client's bodies is cut, the next are judged at
    once."""
    budget = ByteBudget(10 * MIB)
    limits = BodyLimits(Reader(), budget, body_timeout_s=30)
    first, _ = await holder(limits, 0, 8 * MIB, client="2001:db8::1")
    past_their_grace(limits)
    receive, _ = body_of([b"y" * (5 * MIB)])
    assert (await call(limits, scope(5 * MIB), receive))[0] == 200
    assert (await asyncio.wait_for(first, 10))[0] == 408

    # The same client again (another address of its /64), fresh: cut at once.
    again, _ = await holder(limits, 0, 8 * MIB, client="2001:db8::2")
    receive, _ = body_of([b"y" * (5 * MIB)])
    assert (await call(limits, scope(5 * MIB), receive))[0] == 200
    assert (await asyncio.wait_for(again, 10))[0] == 408

    # Against its own uploads it keeps the grace: a client's bodies never cut each other in
    # their first round trip (the address may be a whole office's).
    own, own_gate = await holder(limits, 0, 8 * MIB, client="2001:db8::3")
    receive, _ = body_of([b"y" * (5 * MIB)])
    status, _, body = await call(limits, scope(5 * MIB, client="2001:db8::4"), receive)
    assert (status, error_code(body)) == (503, "overloaded")
    own_gate.set()
    assert (await asyncio.wait_for(own, 10))[0] == 200

    # Another client keeps its grace.
    other, gate = await holder(limits, 0, 8 * MIB, client="198.51.100.7")
    receive, _ = body_of([b"y" * (5 * MIB)])
    status, _, body = await call(limits, scope(5 * MIB), receive)
    assert (status, error_code(body)) == (503, "overloaded")
    gate.set()
    assert (await asyncio.wait_for(other, 10))[0] == 200
    assert limits.given_way == 2
    assert budget.used_bytes == 0


async def test_a_body_the_route_never_reads_gives_its_room_to_a_new_upload() -> None:
    """An ID photo re-rendered from ``source=`` reads no body: a request declaring the whole
    budget there held it, never sent, for the seconds of the render. Its pace runs from its
    headers, so once past the grace its room goes to the next upload; the render still answers."""

    class Renderer:
        """A route that answers without reading its body, after a while."""

        def __init__(self) -> None:
            self.started = asyncio.Event()
            self.release = asyncio.Event()

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["path"] == "/v1/detect":
                await Reader()(scope, receive, send)
                return
            self.started.set()
            await self.release.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"rendered"})

    budget = ByteBudget(10 * MIB)
    app = Renderer()
    limits = BodyLimits(app, budget, body_timeout_s=30)
    never_sent, _ = body_of([], stall=True)
    render = asyncio.create_task(
        call(limits, {**scope(10 * MIB), "path": "/v1/id-photo"}, never_sent)
    )
    await asyncio.wait_for(app.started.wait(), 10)
    assert budget.used_bytes == 10 * MIB
    past_their_grace(limits)

    receive, _ = body_of([b"y" * (5 * MIB)])
    assert (await call(limits, scope(5 * MIB), receive))[0] == 200
    app.release.set()
    assert (await asyncio.wait_for(render, 10))[0] == 200
    assert budget.used_bytes == 0
