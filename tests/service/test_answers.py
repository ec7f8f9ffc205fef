"""Answer bytes held while clients take them (service/answers.py, ``limits.answer_budget_bytes``).

A slow reader is an ASGI ``send`` that does not return while it holds a body message (as
uvicorn's does not while its transport is over its high-water mark); the budget is reached by
such a reader, or, on the shared app, taken by the test itself. Clients are told apart by their
address (no API keys), as the rate limit counts them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import struct
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from starlette.types import Message

from faceflow.cache.entry import CacheEntry
from faceflow.cache.keys import cache_key
from faceflow.config import DetectionSettings
from faceflow.domain import Operation
from faceflow.jobs import peers
from faceflow.jobs.handles import HandleSigner, new_key
from faceflow.jobs.peers import PeerAnswer, PeerCall, PeerGroup, PeerServer, new_origin
from faceflow.jobs.records import JobRecord, JobStatus
from faceflow.operations.faces import AnnotateOptions, FaceOptions
from faceflow.runtime.budget import ByteBudget
from faceflow.service.answers import ABORT_CONNECTION, GIVE_WAY_IDLE_S, SLICE_BYTES
from faceflow.service.security import hash_api_key
from tests.service.in_process import PEER, InProcess, app_settings, running_app
from tests.service.support import assert_error, fresh

pytestmark = pytest.mark.asyncio(loop_scope="session")

MIB = 1024 * 1024
BUDGET = MIB
LARGE = 3 * MIB // 2
"""An answer larger than the whole budget: it goes while nothing else is held."""
THIRD = 300 * 1024
"""An answer of which four pass the budget, and two its half."""
OTHER_PEER = "192.0.2.7"
"""Another client's address (:data:`PEER` is the first's)."""


@pytest.fixture(scope="module")
def face_jpeg(testdata: Path) -> bytes:
    return (testdata / "obama_small.jpg").read_bytes()


@pytest_asyncio.fixture
async def small_budget() -> AsyncIterator[InProcess]:
    """The app with the smallest answer budget, before its models load: hits need none."""
    settings = app_settings(limits={"answer_budget_bytes": BUDGET})
    async with running_app(settings, ready=False) as running:
        yield running


async def cached(app: InProcess, data: bytes, operation: Operation, body: bytes) -> None:
    """``body`` cached as the answer to ``data`` under the default options of ``operation``."""
    options = AnnotateOptions() if operation is Operation.ANNOTATE else FaceOptions()
    work = options.work(operation, DetectionSettings())
    media_type = "image/png" if operation is Operation.ANNOTATE else "application/json"
    entry = CacheEntry(media_type=media_type, body=body, meta={})
    await app.services.cache.put(cache_key(data, operation.value, work.cache_params()), entry)


class SlowReader:
    """A client asking for ``path`` with ``data`` that takes no body bytes until let go."""

    def __init__(
        self,
        path: str,
        data: bytes,
        method: str = "POST",
        peer: str = PEER,
        content_type: bytes = b"image/jpeg",
        query: bytes = b"",
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        self.path = path
        self.headers = headers
        self.data = data
        self.method = method
        self.peer = peer
        self.content_type = content_type
        self.query = query
        self.sent: list[Message] = []
        self.reading = asyncio.Event()
        """Set once a body message is being sent."""
        self.let_go = asyncio.Event()
        self.pace_s: float | None = None
        """Once let go: each body message taken after this long (None: at once)."""
        self.aborted = False
        """Whether the app closed the connection (:data:`ABORT_CONNECTION`)."""

    def abort(self) -> None:
        """The connection closed at once, as the protocol's abort does: the send waiting
        returns, and the client sees no more of the answer."""
        self.aborted = True
        self.let_go.set()

    async def run(self, app: InProcess) -> None:
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": self.method,
            "scheme": "http",
            "path": self.path,
            "raw_path": self.path.encode(),
            "query_string": self.query,
            "root_path": "",
            "headers": [
                (b"host", b"faceflow.test"),
                (b"content-type", self.content_type),
                (b"content-length", str(len(self.data)).encode()),
                *self.headers,
            ],
            "client": (self.peer, 40_000),
            "server": ("faceflow.test", 80),
        }
        body = [{"type": "http.request", "body": self.data, "more_body": False}]

        async def receive() -> Message:
            if body:
                return body.pop()
            await self.let_go.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            if self.aborted:
                return  # nothing more reaches the client, as uvicorn drops it once closed
            self.sent.append(message)
            if message["type"] == "http.response.body":
                self.reading.set()
                await self.let_go.wait()
                if self.pace_s is not None and not self.aborted:
                    await asyncio.sleep(self.pace_s)

        scope[ABORT_CONNECTION] = self.abort  # as the protocol puts it there
        await app.app(scope, receive, send)

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def whole(self) -> bool:
        """Whether the answer was sent to its end (its last body message)."""
        last = self.sent[-1]
        return last["type"] == "http.response.body" and not last.get("more_body", False)

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")


async def test_an_answer_held_by_a_slow_reader_counts_until_it_is_taken(
    small_budget: InProcess, face_jpeg: bytes
) -> None:
    # Each hit's body is its own copy of the cached one, held until its client takes it: 20
    # slow readers of 17 MB answers took the API process from 87 to 412 MB.
    slow_data, other_data = fresh(face_jpeg), fresh(face_jpeg)
    slow_answer, other_answer = b"\x89PNG" + b"s" * LARGE, b"\x89PNG" + b"o" * LARGE
    await cached(small_budget, slow_data, Operation.ANNOTATE, slow_answer)
    await cached(small_budget, other_data, Operation.ANNOTATE, other_answer)
    slow = SlowReader("/v1/annotate", slow_data)
    reading = asyncio.create_task(slow.run(small_budget))
    await asyncio.wait_for(slow.reading.wait(), 30)
    try:
        async with small_budget.client() as client:
            refused = await client.post("/v1/annotate", content=other_data)
            small = await client.get("/openapi.json")  # one slice or less: never refused
        assert refused.status_code == 503, "answered while the budget was held"
        error = assert_error(refused, 503, "overloaded")
        assert "limits.answer_budget_bytes" in error["message"]
        assert refused.headers["retry-after"] == "1"
        assert small.status_code == 200
    finally:
        slow.let_go.set()
        await asyncio.wait_for(reading, 30)
    assert slow.status == 200
    assert slow.body == slow_answer
    assert small_budget.services.answer_budget is not None
    assert small_budget.services.answer_budget.used_bytes == 0
    async with small_budget.client() as client:
        answered = await client.post("/v1/annotate", content=other_data)
    assert answered.status_code == 200
    assert answered.content == other_answer


def batch_of(data: bytes) -> SlowReader:
    """A slow reader of the annotations batch of the one image ``data`` (a route's answer)."""
    form = httpx.Request("POST", "/", files=[("images", ("0.jpg", data, "image/jpeg"))])
    return SlowReader(
        "/v1/batch",
        form.read(),
        content_type=form.headers["content-type"].encode(),
        query=b"operation=annotate",
    )


@pytest.mark.parametrize("asking", ["hits", "batches"])
async def test_one_clients_slow_readers_leave_room_for_another_clients_answer(
    small_budget: InProcess, face_jpeg: bytes, asking: str
) -> None:
    # One client's connections asking for large answers and reading them slowly held the whole
    # budget, and every other client's large answers were refused 503 meanwhile. Asked as hits
    # the hot path answers; as batches, the routes (their client is the guard's).
    slow_data, other_data = fresh(face_jpeg), fresh(face_jpeg)
    slow_answer, other_answer = b"\x89PNG" + b"s" * THIRD, b"\x89PNG" + b"o" * THIRD
    await cached(small_budget, slow_data, Operation.ANNOTATE, slow_answer)
    await cached(small_budget, other_data, Operation.ANNOTATE, other_answer)
    async with small_budget.client(OTHER_PEER) as other:
        seen = await other.post("/v1/annotate", content=other_data)
    assert seen.status_code == 200  # another client is about
    if asking == "hits":
        slow = [SlowReader("/v1/annotate", slow_data) for _ in range(4)]
    else:  # each answer base64, a third larger: three pass the budget
        slow = [batch_of(slow_data) for _ in range(3)]
    reading = [asyncio.create_task(reader.run(small_budget)) for reader in slow]
    try:
        for reader in slow:
            await asyncio.wait_for(reader.reading.wait(), 30)
        async with small_budget.client(OTHER_PEER) as other:
            answered = await other.post("/v1/annotate", content=other_data)
        assert answered.status_code == 200, "refused while one client's readers held the budget"
        assert answered.content == other_answer
        budget = small_budget.services.answer_budget
        assert budget is not None
        assert budget.used_bytes <= BUDGET // 2  # the slow client's half at most
        statuses = [reader.status for reader in slow]
        assert statuses[0] == 200
        assert 503 in statuses
    finally:
        for reader in slow:
            reader.let_go.set()
        await asyncio.wait_for(asyncio.gather(*reading), 30)
    for reader in slow:
        if reader.status == 200:
            assert slow_answer in reader.body or base64.b64encode(slow_answer) in reader.body
        else:
            refused = json.loads(reader.body)["error"]
            assert refused["code"] == "overloaded"
            assert "other clients" in refused["message"]


async def test_a_client_alone_keeps_the_whole_budget(
    small_budget: InProcess, face_jpeg: bytes
) -> None:
    data = fresh(face_jpeg)
    answer = b"\x89PNG" + b"a" * THIRD
    await cached(small_budget, data, Operation.ANNOTATE, answer)
    slow = [SlowReader("/v1/annotate", data) for _ in range(4)]
    reading = [asyncio.create_task(reader.run(small_budget)) for reader in slow]
    try:
        for reader in slow:
            await asyncio.wait_for(reader.reading.wait(), 30)
        assert small_budget.services.answer_budget is not None
        assert small_budget.services.answer_budget.reached
    finally:
        for reader in slow:
            reader.let_go.set()
        await asyncio.wait_for(asyncio.gather(*reading), 30)
    assert [reader.status for reader in slow] == [200] * 4
    assert all(reader.body == answer for reader in slow)


async def two_cached_answers(
    app: InProcess, face_jpeg: bytes
) -> tuple[tuple[bytes, bytes], tuple[bytes, bytes]]:
    """Two uploads whose annotations are cached, each a third of the small budget: (upload,
    answer) for the slow client's and for the other client's."""
    pairs = []
    for mark in (b"s", b"o"):
        data, answer = fresh(face_jpeg), b"\x89PNG" + mark * THIRD
        await cached(app, data, Operation.ANNOTATE, answer)
        pairs.append((data, answer))
    return pairs[0], pairs[1]


@contextlib.asynccontextmanager
async def stalled_readers(
    app: InProcess, data: bytes, headers: tuple[tuple[bytes, bytes], ...] = ()
) -> AsyncIterator[list[SlowReader]]:
    """Four of one client's answers of ``data``, taken whole from the budget (which they reach)
    and stalled past :data:`GIVE_WAY_IDLE_S`; read to their end (or their cut) on the way out."""
    budget = app.services.answer_budget
    assert budget is not None
    slow = [SlowReader("/v1/annotate", data, headers=headers) for _ in range(4)]
    reading = [asyncio.create_task(reader.run(app)) for reader in slow]
    try:
        for reader in slow:
            await asyncio.wait_for(reader.reading.wait(), 30)
        assert budget.reached  # alone: all four taken
        await asyncio.sleep(2 * GIVE_WAY_IDLE_S)  # none of them takes a byte meanwhile
        yield slow
    finally:
        for reader in slow:
            reader.let_go.set()
        await asyncio.wait_for(asyncio.gather(*reading), 30)


async def test_a_lone_clients_stalled_answers_give_way_to_another_clients(
    small_budget: InProcess, face_jpeg: bytes
) -> None:
    # A client alone may take the whole budget; its connections then taking nothing held it
    # until server.send_timeout_s dropped them, and a client arriving meanwhile had every large
    # answer refused 503 (30 s). Now the answer waiting longest for its client gives way.
    (slow_data, slow_answer), (other_data, other_answer) = await two_cached_answers(
        small_budget, face_jpeg
    )
    budget = small_budget.services.answer_budget
    assert budget is not None
    async with stalled_readers(small_budget, slow_data) as slow:
        async with small_budget.client(OTHER_PEER) as other:
            answered = await other.post("/v1/annotate", content=other_data)
        assert answered.status_code == 200, "refused while stalled answers held the budget"
        assert answered.content == other_answer
        assert [reader.aborted for reader in slow].count(True) == 1, "not just enough cut"
        assert budget.given_way == 1
    for reader in slow:
        assert reader.status == 200
        assert reader.whole != reader.aborted
        if reader.whole:
            assert reader.body == slow_answer
    assert budget.used_bytes == 0


async def test_a_computation_that_fails_cuts_no_stalled_answer(
    small_budget: InProcess, face_jpeg: bytes
) -> None:
    # Room was made before an image was computed: a render that then failed (here an expired
    # source= name, 404) had cut another client's stalled answer for nothing. Now the room it
    # would make lets the render go, and an answer is cut only once one is taken in its place.
    (slow_data, _), (other_data, other_answer) = await two_cached_answers(small_budget, face_jpeg)
    budget = small_budget.services.answer_budget
    assert budget is not None
    async with stalled_readers(small_budget, slow_data) as slow:
        async with small_budget.client(OTHER_PEER) as other:
            expired = await other.post("/v1/id-photo?source=" + "0" * 64)
            assert_error(expired, 404, "source_expired")  # not refused: room could be made
            assert budget.given_way == 0, "cut for a render that failed"
            assert not any(reader.aborted for reader in slow)
            answered = await other.post("/v1/annotate", content=other_data)
        assert answered.status_code == 200
        assert answered.content == other_answer
        assert budget.given_way == 1
    assert budget.used_bytes == 0


async def test_with_api_keys_a_keys_stalled_answers_give_way_to_another_keys(
    face_jpeg: bytes,
) -> None:
    # A stalled answer with no owner is never cut, but every answer the service counts has one:
    # the request's API key, else its address (the guard, or the hot path without keys). Here
    # both keys come from one address: they are two clients all the same.
    keys = {"slow": "ff-answers-slow-key", "other": "ff-answers-other-key"}
    settings = app_settings(
        limits={"answer_budget_bytes": BUDGET},
        server={"api_key_hashes": [hash_api_key(key) for key in keys.values()]},
    )
    async with running_app(settings, ready=False) as app:
        (slow_data, _), (other_data, other_answer) = await two_cached_answers(app, face_jpeg)
        budget = app.services.answer_budget
        assert budget is not None
        slow_key = (b"authorization", f"Bearer {keys['slow']}".encode())
        async with stalled_readers(app, slow_data, headers=(slow_key,)) as slow:
            other_key = {"Authorization": f"Bearer {keys['other']}"}
            async with app.client(headers=other_key) as other:
                answered = await other.post("/v1/annotate", content=other_data)
            assert answered.status_code == 200, "refused while another key's answers stalled"
            assert answered.content == other_answer
            assert [reader.aborted for reader in slow].count(True) == 1
        assert budget.used_bytes == 0


async def test_answers_taken_at_a_normal_pace_never_give_way(
    small_budget: InProcess, face_jpeg: bytes
) -> None:
    # Each slice is taken within a fifth of the idle time that lets an answer be cut: the
    # other client waits its turn (503) rather than cut a client that reads.
    (slow_data, slow_answer), (other_data, _) = await two_cached_answers(small_budget, face_jpeg)
    budget = small_budget.services.answer_budget
    assert budget is not None
    readers = [SlowReader("/v1/annotate", slow_data) for _ in range(4)]
    for reader in readers:
        reader.pace_s = GIVE_WAY_IDLE_S / 5
    reading = [asyncio.create_task(reader.run(small_budget)) for reader in readers]
    try:
        for reader in readers:
            await asyncio.wait_for(reader.reading.wait(), 30)
        assert budget.reached
        for reader in readers:
            reader.let_go.set()
        await asyncio.sleep(GIVE_WAY_IDLE_S / 5)  # reading, none of them done
        async with small_budget.client(OTHER_PEER) as other:
            refused = await other.post("/v1/annotate", content=other_data)
        assert_error(refused, 503, "overloaded")
    finally:
        for reader in readers:
            reader.let_go.set()
        await asyncio.wait_for(asyncio.gather(*reading), 30)
    assert budget.given_way == 0
    assert [reader.aborted for reader in readers] == [False] * 4
    assert all(reader.whole and reader.body == slow_answer for reader in readers)


async def test_an_answer_is_written_in_slices_the_client_takes_in_turn(
    small_budget: InProcess, face_jpeg: bytes
) -> None:
    data = fresh(face_jpeg)
    answer = b"\x89PNG" + bytes(range(256)) * (LARGE // 256)
    await cached(small_budget, data, Operation.ANNOTATE, answer)
    reader = SlowReader("/v1/annotate", data)
    reader.let_go.set()
    await reader.run(small_budget)
    bodies = [m for m in reader.sent if m["type"] == "http.response.body"]
    assert len(bodies) > len(answer) // SLICE_BYTES
    assert all(len(m["body"]) <= SLICE_BYTES for m in bodies)
    assert reader.body == answer


@pytest.mark.usefixtures("pulled_examples")
async def test_an_example_photo_is_written_in_slices_and_never_counted(
    small_budget: InProcess,
) -> None:
    # One copy of the photo serves every client; written whole, the transport copied what the
    # kernel did not take at once, for each client not reading it.
    [photo] = [p for p in small_budget.services.examples if p.spec.name == "astronaut"]
    assert len(photo.data) > BUDGET // 2
    reader = SlowReader("/v1/examples/astronaut", b"", method="GET")
    held = asyncio.create_task(reader.run(small_budget))
    await reader.reading.wait()
    assert small_budget.services.answer_budget is not None
    assert small_budget.services.answer_budget.used_bytes == 0
    reader.let_go.set()
    await held
    bodies = [m for m in reader.sent if m["type"] == "http.response.body"]
    assert reader.status == 200
    assert len(bodies) > len(photo.data) // SLICE_BYTES
    assert all(len(m["body"]) <= SLICE_BYTES for m in bodies)
    assert reader.body == photo.data


async def test_the_api_docs_script_held_in_memory_is_written_in_slices(
    small_budget: InProcess,
) -> None:
    # ReDoc's bundle (1.1 MB, held in memory; the others are files, read a slice at a time) was
    # written whole: the transport copied what the kernel did not take at once, for each client
    # not reading it, up to the connection cap.
    reader = SlowReader("/docs-assets/redoc.standalone.js", b"", method="GET")
    reader.let_go.set()
    await reader.run(small_budget)
    bodies = [m["body"] for m in reader.sent if m["type"] == "http.response.body"]
    assert reader.status == 200
    assert len(reader.body) > 1_000_000
    assert max(len(body) for body in bodies) <= SLICE_BYTES


@pytest.fixture
def budget_reached(service_app: InProcess) -> Iterator[ByteBudget]:
    """The shared app's answer budget, all of it taken as slow readers would hold it."""
    budget = service_app.services.answer_budget
    assert budget is not None
    held = budget.limit_bytes - budget.used_bytes
    assert budget.try_take_under(held)
    try:
        yield budget
    finally:
        budget.give(held)


async def test_an_image_is_not_computed_while_the_budget_is_reached(
    service_app: InProcess, budget_reached: ByteBudget, face_jpeg: bytes
) -> None:
    # A 5000 x 5000 noise JPEG annotated as PNG cost 1.1 s of CPU for a 17 MB answer the budget
    # would refuse: refused before the pool is asked.
    tasks = service_app.services.pool.stats().completed
    async with service_app.client() as client:
        annotate = await client.post("/v1/annotate", content=fresh(face_jpeg))
        id_photo = await client.post("/v1/id-photo", content=fresh(face_jpeg))
        detect = await client.post("/v1/detect", content=fresh(face_jpeg))
    assert (annotate.status_code, id_photo.status_code) == (503, 503), "computed"
    assert_error(annotate, 503, "overloaded")
    assert_error(id_photo, 503, "overloaded")
    assert annotate.headers["retry-after"] == "1"
    assert detect.status_code == 200  # a report: one slice or less, never refused
    assert service_app.services.pool.stats().completed == tasks + 1


async def test_a_budget_is_taken_while_under_its_limit_and_refused_once_reached() -> None:
    budget = ByteBudget(10)
    assert budget.try_take_under(25)  # larger than the budget: taken while under it
    assert budget.reached
    assert not budget.try_take_under(1)
    assert budget.refused == 1
    budget.give(25)
    assert budget.try_take_under(9)
    assert not budget.reached
    assert budget.try_take_under(9)
    assert budget.used_bytes == 18


class StalledOwner:
    """Another HTTP worker's socket that answers every call with a length prefix of ``size``
    bytes and then nothing: a body read would wait until the call's time is up."""

    def __init__(self, group: PeerGroup, origin: bytes, size: int) -> None:
        self._address = group.address(origin)
        self._size = size
        self._server: asyncio.AbstractServer | None = None

    async def __aenter__(self) -> StalledOwner:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(self._address)
        sock.listen()
        sock.setblocking(False)
        self._server = await asyncio.start_unix_server(self._answer, sock=sock)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(struct.pack(">I", self._size))
        await reader.read()  # until the caller hangs up
        writer.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the abstract namespace")
async def test_a_result_another_http_worker_holds_takes_from_the_budget_before_it_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Read whole first, up to 16 forwarded results at once were held beyond the budget (16
    # polls of a 3.8 MB sheet: +61 MB); now a result too large for the room left is refused
    # on its length alone, as a local one is, its body never read.
    monkeypatch.setattr(peers, "PEER_TIMEOUT_S", 2.0)  # a body read: unavailable after it
    group = PeerGroup(new_key())
    stalled, answering = new_origin(), new_origin()
    entry = CacheEntry("image/png", bytes(range(256)) * (3 * SLICE_BYTES // 256), {})

    async def answer(call: PeerCall) -> PeerAnswer:
        record = JobRecord(call.handle, "id-photo-sheet", JobStatus.FINISHED, 1.0)
        return record, entry

    owner = PeerServer(group, answering, answer)
    await owner.start()
    settings = app_settings(limits={"answer_budget_bytes": 1024 * 1024})
    try:
        async with (
            StalledOwner(group, stalled, 4 * SLICE_BYTES),
            running_app(settings, ready=False, job_peers=group) as app,
            app.client() as client,
        ):
            budget = app.services.answer_budget
            assert budget is not None
            taken = await client.get(f"/v1/jobs/{HandleSigner(group.key, answering).new()}/result")
            assert (taken.status_code, taken.content) == (200, entry.body)  # byte-identical
            assert budget.used_bytes == 0
            assert budget.try_take_under(budget.limit_bytes)  # slow readers hold it all
            refused = await client.get(f"/v1/jobs/{HandleSigner(group.key, stalled).new()}/result")
            budget.give(budget.limit_bytes)
    finally:
        await owner.close()
    assert_error(refused, 503, "overloaded")
    assert refused.headers["retry-after"] == "1"
    assert budget.used_bytes == 0
