"""The channel between the HTTP workers of one embedded server: its messages, and who it answers.
The whole of it, on a real ``faceflow serve --http-workers 2``: tests/cli/test_serve_workers.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections.abc import AsyncIterator, Iterator

import msgpack
import pytest

from faceflow.cache.entry import CacheEntry
from faceflow.errors import (
    Conflict,
    FaceflowError,
    JobFailed,
    NoFace,
    NotFound,
    OutOfRange,
    Overloaded,
    QueueFull,
    Unavailable,
)
from faceflow.jobs import peers
from faceflow.jobs.handles import new_key
from faceflow.jobs.peers import (
    PeerAnswer,
    PeerCall,
    PeerClient,
    PeerGroup,
    PeerOperation,
    PeerServer,
    answer_pieces,
    decode_answer,
    decode_call,
    encode_answer,
    encode_call,
    lost_with_worker,
    new_origin,
)
from faceflow.jobs.records import JobError, JobRecord, JobStatus
from tests.fixtures.packing import packed_sizes

KEY = new_key()
CALL = PeerCall(PeerOperation.RESULT, "h" * 48, "digest-of-an-api-key")
FAILED = JobRecord(
    handle="h" * 48,
    operation="id-photo",
    status=JobStatus.FAILED,
    created_at=1.5,
    enqueued_at=1.5,
    started_at=2.25,
    ended_at=3.0,
    attempts=2,
    error=JobError("no_face", "no face found", 422, {"parameter": "image"}),
)
FINISHED = JobRecord(
    "h" * 48, "detect", JobStatus.FINISHED, 1.0, media_type="image/png", from_cache=True
)
RESULT = CacheEntry("image/png", bytes(range(256)) * 4096, {"face_count": 1, "size_px": None})


@pytest.mark.parametrize("owner", ["digest-of-an-api-key", None])
def test_a_call_crosses_with_the_groups_key_only(owner: str | None) -> None:
    call = PeerCall(PeerOperation.CANCEL, "h" * 48, owner)
    raw = encode_call(call, KEY)
    assert decode_call(raw, KEY) == call
    assert decode_call(raw, new_key()) is None
    tampered = bytearray(raw)
    tampered[5] ^= 1
    assert decode_call(bytes(tampered), KEY) is None
    assert decode_call(raw[-32:], KEY) is None


@pytest.mark.parametrize(
    "answer", [(FAILED, None), (FINISHED, RESULT)], ids=["failed-status", "result"]
)
def test_an_answer_crosses_unchanged(answer: PeerAnswer) -> None:
    record, entry = decode_answer(encode_answer(answer))
    assert (record, entry) == answer
    assert entry is None or entry.body == RESULT.body


@pytest.mark.parametrize(
    "error",
    [
        NotFound("no such job"),
        Conflict("the job is started; only a queued job can be canceled"),
        QueueFull("the job queue is full", retry_after_s=7),
        JobFailed("the job failed: internal error", {"failure": "internal"}),
        NoFace("no face found"),
        OutOfRange("size out of range", {"parameter": "dpi", "min": 72, "max": 1200}),
    ],
    ids=lambda error: error.code,
)
def test_an_error_crosses_as_the_owning_worker_raised_it(error: FaceflowError) -> None:
    with pytest.raises(FaceflowError) as raised:
        decode_answer(encode_answer(error))
    got = raised.value
    assert (type(got), got.code, got.status, got.to_dict()) == (
        type(error),
        error.code,
        error.status,
        error.to_dict(),
    )
    assert getattr(got, "retry_after_s", None) == getattr(error, "retry_after_s", None)


def test_an_answer_not_understood_is_unavailable() -> None:
    with pytest.raises(Unavailable):
        decode_answer(b"\x94\x01\xa2ok\xc0\xc0")


needs_abstract = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the abstract namespace is Linux's"
)


class Owner:
    """A worker's answers for its own jobs, recording the calls it was asked."""

    def __init__(self) -> None:
        self.calls: list[PeerCall] = []
        self.hang = False

    async def answer(self, call: PeerCall) -> PeerAnswer:
        self.calls.append(call)
        if self.hang:
            await asyncio.Event().wait()
        if call.handle != CALL.handle:
            raise NotFound("no such job")
        return FINISHED, RESULT


@pytest.fixture
async def owner() -> AsyncIterator[tuple[Owner, PeerGroup, bytes]]:
    """A worker's socket in the abstract namespace, with the group and origin to call it by."""
    group, origin, answers = PeerGroup(new_key()), new_origin(), Owner()
    server = PeerServer(group, origin, answers.answer)
    await server.start()
    yield answers, group, origin
    await server.close()


@needs_abstract
async def test_a_worker_answers_another_for_its_jobs(
    owner: tuple[Owner, PeerGroup, bytes],
) -> None:
    answers, group, origin = owner
    client = PeerClient(group, max_answer_bytes=len(RESULT.body) + peers.ANSWER_SLACK_BYTES)
    assert await client.call(origin, CALL) == (FINISHED, RESULT)
    with pytest.raises(NotFound):
        await client.call(origin, PeerCall(PeerOperation.STATUS, "x" * 48, None))
    assert answers.calls == [CALL, PeerCall(PeerOperation.STATUS, "x" * 48, None)]


async def test_a_worker_refuses_a_caller_without_the_groups_key(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # Sockets in a directory are named by their origin alone: the same socket, another key.
    directory = str(tmp_path_factory.mktemp("peers"))
    group, origin, answers = PeerGroup(new_key(), directory), new_origin(), Owner()
    server = PeerServer(group, origin, answers.answer)
    await server.start()
    try:
        stranger = PeerClient(PeerGroup(new_key(), directory), max_answer_bytes=1 << 20)
        with pytest.raises(Unavailable):
            await stranger.call(origin, CALL)
        assert answers.calls == []
        member = PeerClient(group, max_answer_bytes=len(RESULT.body) + peers.ANSWER_SLACK_BYTES)
        assert await member.call(origin, CALL) == (FINISHED, RESULT)
    finally:
        await server.close()


async def test_a_gone_worker_answers_that_the_job_was_lost() -> None:
    client = PeerClient(PeerGroup(new_key()), max_answer_bytes=1 << 20)
    with pytest.raises(NotFound) as raised:
        await client.call(new_origin(), CALL)
    assert raised.value.message == lost_with_worker().message


@needs_abstract
async def test_a_worker_that_does_not_answer_is_unavailable(
    owner: tuple[Owner, PeerGroup, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    answers, group, origin = owner
    answers.hang = True
    monkeypatch.setattr(peers, "PEER_TIMEOUT_S", 0.2)
    with pytest.raises(Unavailable) as raised:
        await PeerClient(group, max_answer_bytes=1 << 20).call(origin, CALL)
    assert raised.value.retry_after_s == 1


@needs_abstract
async def test_an_answer_over_the_bound_is_refused(owner: tuple[Owner, PeerGroup, bytes]) -> None:
    _, group, origin = owner
    with pytest.raises(Unavailable, match="larger than"):
        await PeerClient(group, max_answer_bytes=len(RESULT.body) // 2).call(origin, CALL)


@needs_abstract
async def test_an_answer_is_held_from_its_length_until_it_is_decoded(
    owner: tuple[Owner, PeerGroup, bytes],
) -> None:
    # Read whole before anything counted it: 16 forwarded at once, each up to the answer
    # budget, held beyond it. Now its length is held first, and a refusal stops the read.
    _, group, origin = owner
    held: list[int] = []

    @contextlib.contextmanager
    def hold(size: int) -> Iterator[None]:
        if held:
            raise Overloaded("no room", retry_after_s=1)
        held.append(size)
        yield

    client = PeerClient(group, max_answer_bytes=len(RESULT.body) * 2, hold=hold)
    assert await client.call(origin, CALL) == (FINISHED, RESULT)
    assert held == [len(encode_answer((FINISHED, RESULT)))]
    with pytest.raises(Overloaded):
        await client.call(origin, CALL)


@needs_abstract
async def test_a_result_crosses_without_being_packed_on_the_event_loop(
    owner: tuple[Owner, PeerGroup, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    # msgpack copied a result's body into the answer as it grew its buffer, holding the GIL:
    # 23-49 ms of the owning worker's event loop for a 27 MB annotated image. The body is now
    # written as it is, beside the answer's packed head and tail.
    _, group, origin = owner
    packed = packed_sizes(monkeypatch)
    client = PeerClient(group, max_answer_bytes=len(RESULT.body) + peers.ANSWER_SLACK_BYTES)
    assert await client.call(origin, CALL) == (FINISHED, RESULT)
    assert packed, "nothing was packed: the test would prove nothing"
    assert max(packed) < len(RESULT.body) // 100


@pytest.mark.parametrize("size", [0, 1, 255, 256, 65_535, 65_536, 1 << 20])
def test_an_answer_in_pieces_is_the_msgpack_of_the_whole(size: int) -> None:
    # Written in pieces, read as one msgpack value: every bin header length msgpack may choose.
    entry = CacheEntry("image/jpeg", b"\xff" * size, {"face_count": 2})
    whole = [
        peers.SCHEMA_VERSION,
        "ok",
        peers._record_parts(FINISHED),
        ["image/jpeg", entry.body, {"face_count": 2}],
    ]
    assert b"".join(answer_pieces((FINISHED, entry))) == msgpack.packb(whole, use_bin_type=True)
    without = [peers.SCHEMA_VERSION, "ok", peers._record_parts(FAILED), None]
    assert b"".join(answer_pieces((FAILED, None))) == msgpack.packb(without, use_bin_type=True)


@needs_abstract
@pytest.mark.parametrize("sent", [b"", b"\x00\x00\x0f\xa0"], ids=["idle", "stalled-after-length"])
async def test_connections_that_send_no_call_give_way_to_a_workers_call(
    owner: tuple[Owner, PeerGroup, bytes], sent: bytes
) -> None:
    # Counted as calls being answered, 32 of them (any process of the user may open them) had
    # every real call closed at once, for as long as they were held (5 s, renewed at will).
    _, group, origin = owner
    loop = asyncio.get_running_loop()
    held = []
    try:
        for _ in range(peers.SERVED_AT_ONCE):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.setblocking(False)
            held.append(sock)
            await loop.sock_connect(sock, group.address(origin))
            await loop.sock_sendall(sock, sent)
        client = PeerClient(group, max_answer_bytes=len(RESULT.body) + peers.ANSWER_SLACK_BYTES)
        assert await client.call(origin, CALL) == (FINISHED, RESULT)
    finally:
        for sock in held:
            sock.close()
