"""Upload size limits on the wire (service/upload.py): 413 before the body has been read."""

from __future__ import annotations

import asyncio
import gzip
import random
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from blake3 import blake3
from starlette.types import Message

from faceflow.cache import keys
from faceflow.cache.keys import content_hash
from faceflow.service import upload
from tests.fixtures.live_server import LiveServer
from tests.service import raw_http
from tests.service.conftest import CLIENT_TIMEOUT_S, SMALL_UPLOAD_CAP
from tests.service.in_process import InProcess
from tests.service.support import assert_error, multipart_image

CHUNK = 64 * 1024
# Far more than the cap and than any socket buffers between client and server (a few MB).
CHUNKS = 1024  # 64 MiB


class CountingBody:
    """A request body generator that counts how many chunks the client pulled from it."""

    def __init__(self, chunks: int = CHUNKS) -> None:
        self.chunks = chunks
        self.yielded = 0

    def __iter__(self) -> Iterator[bytes]:
        # Starts like a JPEG, so the server has no reason other than size to refuse it.
        yield b"\xff\xd8\xff" + b"\x00" * (CHUNK - 3)
        self.yielded += 1
        for _ in range(self.chunks - 1):
            yield b"\x00" * CHUNK
            self.yielded += 1


@pytest.fixture
def small(constrained_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=constrained_server.url, timeout=CLIENT_TIMEOUT_S) as http:
        yield http


@pytest.mark.parametrize("declared", [True, False], ids=["content_length", "chunked"])
@pytest.mark.parametrize("route", ["/v1/analyze", "/v1/batch"])
def test_oversize_streamed_body_is_413_before_it_is_all_sent(
    small: httpx.Client, declared: bool, route: str
) -> None:
    body = CountingBody()
    headers = {"Content-Type": "image/jpeg"}
    if declared:
        headers["Content-Length"] = str(body.chunks * CHUNK)
    response = small.post(route, content=iter(body), headers=headers)
    error = assert_error(response, 413, "too_large")
    assert error["limit_bytes"] >= SMALL_UPLOAD_CAP
    assert body.yielded < body.chunks, "the whole oversize body was sent"
    # The server stopped reading: it closed this connection rather than drain it.
    assert response.headers.get("Connection") == "close"


def test_oversize_part_in_a_form_is_413(small: httpx.Client, face_jpeg: bytes) -> None:
    big = face_jpeg + b"\x00" * (SMALL_UPLOAD_CAP + 1 - len(face_jpeg))
    assert_error(small.post("/v1/detect", files=multipart_image(big)), 413, "too_large")


def test_upload_at_the_cap_is_accepted(small: httpx.Client, face_jpeg: bytes) -> None:
    # Trailing bytes after the JPEG's end marker are ignored by the decoder.
    exact = face_jpeg + b"\x00" * (SMALL_UPLOAD_CAP - len(face_jpeg))
    response = small.post("/v1/detect", content=exact)
    assert response.status_code == 200, response.text
    assert response.json()["face_count"] == 1


def test_connection_is_usable_after_a_refused_upload(small: httpx.Client) -> None:
    body = CountingBody()
    assert small.post("/v1/detect", content=iter(body)).status_code == 413
    assert small.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    ("path", "option"),
    [
        ("/v1/detect", "threshold"),
        ("/v1/id-photo", "spec"),
        ("/v1/id-photo/sheet", "layout"),
        ("/v1/batch", "operation"),
        ("/v1/jobs?operation=detect", "max_faces"),
    ],
)
def test_an_option_sent_as_a_form_field_is_refused_naming_the_query_string(
    client: httpx.Client, face_jpeg: bytes, path: str, option: str
) -> None:
    # As `curl -F threshold=0.9` or requests' data= beside files= send it: it went unread, and
    # the default's answer came back 200 (cn-1inch for any spec, analyze for any operation).
    field = "images" if path == "/v1/batch" else "image"

    response = client.post(path, data={option: "1"}, files=multipart_image(face_jpeg, field))

    error = assert_error(response, 400, "invalid_parameter")
    assert error["parameter"] == option
    assert f"?{option}=" in error["message"]


def test_a_form_field_that_is_no_option_is_still_passed_over(
    client: httpx.Client, face_jpeg: bytes
) -> None:
    response = client.post("/v1/detect", data={"note": "hi"}, files=multipart_image(face_jpeg))

    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/detect", "image"),
        ("/v1/id-photo", "image"),
        ("/v1/batch", "images"),
        ("/v1/jobs?operation=detect", "image"),
    ],
)
@pytest.mark.parametrize("kind", ["multipart/mixed", "Multipart/Related"])
def test_a_multipart_body_that_is_no_form_is_refused_naming_form_data_and_the_field(
    client: httpx.Client, face_jpeg: bytes, path: str, field: str, kind: str
) -> None:
    # Read as a raw image, it was refused 415 "unknown format", saying nothing of what is read.
    form = httpx.Request("POST", "/", files=multipart_image(face_jpeg, field))
    content_type = form.headers["Content-Type"].replace("multipart/form-data", kind)

    response = client.post(path, content=form.read(), headers={"Content-Type": content_type})

    error = assert_error(response, 400, "invalid_parameter")
    assert error["parameter"] == "content-type"
    assert error["message"] == (
        f"a multipart upload must be multipart/form-data, the image in the field '{field}'"
        f" (this one is {kind.lower()})"
    )


CODED_PATHS = [
    "/v1/detect",
    "/v1/annotate",
    "/v1/id-photo",
    "/v1/batch",
    "/v1/jobs?operation=detect",
]


@pytest.mark.parametrize("path", CODED_PATHS)
@pytest.mark.parametrize(
    ("value", "gzipped", "coding"),
    [("gzip", False, "gzip"), ("gzip", True, "gzip"), ("identity, br", False, "br")],
)
def test_a_body_sent_with_a_content_coding_is_refused_naming_it(
    client: httpx.Client, face_jpeg: bytes, path: str, value: str, gzipped: bool, coding: str
) -> None:
    # Read as the image's bytes: a photo sent as it is under a coding was analysed (200), a
    # gzipped one refused "unsupported image format (unknown format)". Nothing is inflated.
    body = gzip.compress(face_jpeg) if gzipped else face_jpeg

    response = client.post(path, content=body, headers={"Content-Encoding": value})

    error = assert_error(response, 415, "unsupported_format")
    assert (error["parameter"], error["coding"]) == ("content-encoding", coding)
    assert f"sent with Content-Encoding: {value}," in error["message"]


@pytest.mark.parametrize("path", CODED_PATHS)
def test_an_empty_body_under_a_content_coding_is_refused_as_empty(
    client: httpx.Client, path: str
) -> None:
    # Refused 415 for its coding: the client dropped the header, and was then told it had sent
    # nothing. Nothing sent is the more basic fault, and it is the same answer with or without.
    response = client.post(path, content=b"", headers={"Content-Encoding": "gzip"})

    assert_error(response, 400, "empty")


@pytest.mark.parametrize("path", CODED_PATHS)
def test_a_body_sent_with_a_transfer_coding_besides_chunked_is_refused_naming_it(
    live_server: LiveServer, face_jpeg: bytes, path: str
) -> None:
    # httpx sends no such body: written by hand. The gzip was ignored, the photo analysed (200).
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(face_jpeg), face_jpeg)
    with raw_http.connect(live_server.port) as sock:
        sock.sendall(raw_http.head(path, None, [("Transfer-Encoding", "gzip, chunked")]) + chunked)
        answer = raw_http.Reader(sock).answer()

    assert answer.status == 415, answer
    error = answer.error()
    assert (error["code"], error["parameter"], error["coding"]) == (
        "unsupported_format",
        "transfer-encoding",
        "gzip",
    )


def test_a_body_whose_coding_is_identity_is_read(client: httpx.Client, face_jpeg: bytes) -> None:
    response = client.post(
        "/v1/detect", content=face_jpeg, headers={"Content-Encoding": "identity"}
    )

    assert response.status_code == 200, response.text


@pytest.mark.parametrize("path", ["/v1/detect", "/v1/id-photo", "/v1/jobs?operation=detect"])
def test_an_html_form_without_enctype_is_told_to_send_the_image_itself(
    client: httpx.Client, path: str
) -> None:
    # A form without enctype="multipart/form-data" sends the file's name, not the file. It was
    # refused 415 "unsupported image format (unknown format)", true of its bytes and no help.
    response = client.post(path, data={"image": "my photo (1).jpg", "note": "hi"})

    assert response.request.headers["content-type"] == "application/x-www-form-urlencoded"
    error = assert_error(response, 415, "unsupported_format")
    assert error["detected"] == "form fields"
    assert "multipart/form-data" in error["message"]
    assert "raw request body" in error["message"]


def test_a_batch_of_an_html_form_without_enctype_fails_its_item_saying_so(
    client: httpx.Client,
) -> None:
    response = client.post("/v1/batch", data={"images": "photo.jpg"})

    [item] = response.json()["items"]
    assert (item["status"], item["error"]["code"]) == (415, "unsupported_format")
    assert "multipart/form-data" in item["error"]["message"]


def _image_of(size: int) -> bytes:
    """A JPEG's first and last bytes around ``size`` bytes of noise (nothing decodes it here)."""
    noise = random.Random(size).randbytes(size)
    return b"\xff\xd8\xff" + noise + b"\xff\xd9"


@pytest.mark.parametrize("form", [False, True], ids=["raw body", "multipart"])
async def test_a_large_upload_is_split_and_hashed_beside_the_event_loop(
    monkeypatch: pytest.MonkeyPatch, form: bool
) -> None:
    # The hot path's reader split a form and the hot path hashed the image on the event loop:
    # 9-11 ms of it for a 10 MiB form seen for the first time (36 ms cold), every request
    # waiting. Now a body over SPLIT_ON_THE_LOOP_BYTES is split and hashed in a thread.
    hashed_in: list[int] = []

    def recorded(data: bytes | memoryview) -> str:
        hashed_in.append(threading.get_ident())
        return content_hash(data)

    monkeypatch.setattr(upload, "content_hash", recorded)
    image = _image_of(upload.SPLIT_ON_THE_LOOP_BYTES + 1)
    boundary = b"b0undary"
    body = (
        b"--" + boundary + b"\r\n"
        b'Content-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n" + image + b"\r\n--" + boundary + b"--\r\n"
        if form
        else image
    )
    content_type = b"multipart/form-data; boundary=" + boundary if form else b"image/jpeg"
    messages: list[Message] = [
        {"type": "http.request", "body": body[at : at + CHUNK], "more_body": at + CHUNK < len(body)}
        for at in range(0, len(body), CHUNK)
    ]

    async def receive() -> Message:
        return messages.pop(0)

    headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
    got = await upload.receive_upload(headers, receive, len(image))
    assert bytes(got.data) == image
    assert got.digest == content_hash(image)  # taken with the split, not left to the loop
    assert hashed_in, "nothing was hashed: the test would prove nothing"
    assert threading.get_ident() not in hashed_in


async def test_a_small_upload_is_split_on_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    # A cache hit's usual image (tens of KB): a thread's round trip would cost more than the
    # split, so the hot path keeps it on the loop, and the hash for its key.
    image = _image_of(100_000)
    messages: list[Message] = [{"type": "http.request", "body": image, "more_body": False}]

    async def receive() -> Message:
        return messages.pop(0)

    def no_thread(*args: object, **kwargs: object) -> None:
        raise AssertionError("a small upload went to a thread")

    monkeypatch.setattr(asyncio, "to_thread", no_thread)
    got = await upload.receive_upload([(b"content-type", b"image/jpeg")], receive, len(image))
    assert bytes(got.data) == image


async def test_a_large_form_read_by_a_route_is_split_beside_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The routes' reader (an ID photo, a job, a request with API keys past the hot path): the
    # same split of a one-image form, on the loop for 10 MiB before.
    split_in: list[int] = []
    split = upload._split_form

    def recorded(*args: Any, **kwargs: Any) -> bool:
        split_in.append(threading.get_ident())
        return split(*args, **kwargs)

    monkeypatch.setattr(upload, "_split_form", recorded)
    image = _image_of(upload.SPLIT_ON_THE_LOOP_BYTES + 1)
    body = (
        b"--b0undary\r\n"
        b'Content-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n" + image + b"\r\n--b0undary--\r\n"
    )

    async def chunks() -> AsyncIterator[bytes]:
        for at in range(0, len(body), CHUNK):
            yield body[at : at + CHUNK]

    headers = [(b"content-type", b"multipart/form-data; boundary=b0undary")]
    [got] = await upload.read_uploads(
        headers, chunks(), len(image), field_names=("image",), max_items=1
    )
    assert (bytes(got.data), got.filename) == (image, "a.jpg")
    assert split_in, "the form was not split whole: the test would prove nothing"
    assert threading.get_ident() not in split_in


@pytest.fixture
def large_hashes_in(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The threads that hash more than SPLIT_ON_THE_LOOP_BYTES, wherever content_hash is
    imported (each module holds its own name of it: BLAKE3 is recorded where it is called)."""
    threads: list[int] = []

    def recorded(data: bytes | memoryview) -> Any:
        if len(data) > upload.SPLIT_ON_THE_LOOP_BYTES:
            threads.append(threading.get_ident())
        return blake3(data)

    monkeypatch.setattr(keys, "blake3", recorded)
    return threads


@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.parametrize(
    "path", ["/v1/id-photo", "/v1/id-photo/sheet", "/v1/jobs?operation=detect"]
)
async def test_a_route_hashes_a_large_upload_beside_the_event_loop(
    service_app: InProcess, large_hashes_in: list[int], path: str
) -> None:
    # The ID-photo and job routes hashed an upload for its key on the event loop: 2-6 ms of it
    # at 10 MiB, every request waiting (the hot path's reader takes detect's, analyze's and
    # annotate's with the read). Nothing decodes the noise: the answer may be an error, after
    # the hash. The in-process app runs on this test's event loop.
    image = _image_of(upload.SPLIT_ON_THE_LOOP_BYTES + 1)
    async with service_app.client() as client:
        response = await client.post(path, content=image, headers={"Content-Type": "image/jpeg"})
    assert response.status_code < 500, response.text
    assert large_hashes_in, "the upload was not hashed: the test would prove nothing"
    assert threading.get_ident() not in large_hashes_in


async def test_a_small_upload_is_hashed_for_a_route_on_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A thread's round trip costs more than hashing a usual photo (tens of KB).
    image = _image_of(100_000)

    def no_thread(*args: object, **kwargs: object) -> None:
        raise AssertionError("a small upload went to a thread")

    monkeypatch.setattr(asyncio, "to_thread", no_thread)
    assert await upload.Upload(image).hashed() == content_hash(image)
