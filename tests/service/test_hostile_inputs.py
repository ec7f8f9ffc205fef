"""The hostile-input battery: what an attacker (or a broken client) sends, and the exact answer.

Every case goes through the whole app in process (routes, the cache-hit fast path, the inference
process) and asserts the status, the error code and the JSON body; after each one the server must
still be ready and serving. docs/reliability.md (The battery) lists the same table.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.fixtures.images import (
    SVG,
    exif_rotated_jpeg,
    jpeg_claiming,
    jpeg_with_comments_between_scans,
    png_claiming,
    progressive_jpeg,
    scan_bomb,
    solid_png,
    truncated,
    webp_claiming,
)
from tests.service import hostile_files as hf
from tests.service.conftest import IN_PROCESS_UPLOAD_CAP
from tests.service.in_process import InProcess, app_settings, running_app
from tests.service.support import assert_error, fresh

pytestmark = pytest.mark.asyncio(loop_scope="session")

FACE_ROUTES = ("/v1/detect", "/v1/analyze")
JOB_POLL_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True)
class Photos:
    face: bytes
    two_faces: bytes


@pytest.fixture(scope="module")
def photos(testdata: Any) -> Photos:
    return Photos(
        face=(testdata / "obama_small.jpg").read_bytes(),
        two_faces=(testdata / "two_people.jpg").read_bytes(),
    )


@dataclass(frozen=True, slots=True)
class Case:
    """One hostile request: ``build(photos)`` gives the body (sent raw unless ``content_type``
    says otherwise); the answer must be ``status`` with error ``code`` (None: a success whose
    JSON must satisfy ``check``)."""

    name: str
    path: str
    build: Callable[[Photos], bytes]
    status: int
    code: str | None
    query: str = ""
    content_type: str = "application/octet-stream"
    check: Callable[[dict[str, Any]], None] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def _faces(count: int) -> Callable[[dict[str, Any]], None]:
    def check(body: dict[str, Any]) -> None:
        assert body["face_count"] == count, body
        assert len(body["faces"]) == count, body

    return check


def _size(width: int, height: int) -> Callable[[dict[str, Any]], None]:
    def check(body: dict[str, Any]) -> None:
        assert (body["width"], body["height"]) == (width, height), body
        assert body["face_count"] == 1, body

    return check


def _long_boundary(photos: Photos) -> bytes:
    return hf.multipart([("image", photos.face)], boundary="b" * 300)[0]


_LONG_BOUNDARY_TYPE = "multipart/form-data; boundary=" + "b" * 300


def _parts(count: int, name: str = "image") -> Callable[[Photos], bytes]:
    return lambda photos: hf.multipart([(name, photos.face)] * count)[0]


_MULTIPART = hf.multipart([])[1]
_3000_ITEMS = "layout=" + ",".join(["cn-2inch:1"] * 3000)


FLOOD_OF_OPTIONS = "&".join(f"option{i}=1" for i in range(5000))


def _scan_bomb(_: Photos) -> bytes:
    return scan_bomb(progressive_jpeg(), 3000)


def _solid(width: int, height: int) -> Callable[[Photos], bytes]:
    return lambda _: solid_png(width, height)


def _cases() -> list[Case]:
    cases: list[Case] = []
    # Not images, or images no decoder should be trusted with: refused by magic bytes or header.
    for path in FACE_ROUTES:
        cases += [
            Case("empty", path, lambda p: b"", 400, "empty"),
            Case("truncated_jpeg", path, lambda p: truncated(p.face, 0.5), 422, "undecodable"),
            Case("text", path, lambda p: hf.TEXT, 415, "unsupported_format"),
            Case("svg", path, lambda p: SVG, 415, "unsupported_format"),
            Case("html", path, lambda p: hf.HTML, 415, "unsupported_format"),
            Case("pdf", path, lambda p: hf.PDF, 415, "unsupported_format"),
        ]
    # The largest and thinnest image the side limits allow (limits.min_side_px, max_side_px),
    # both ways round: answered like any other photo without a face.
    for width, height in ((12_000, 16), (16, 12_000)):
        name, banner = f"{width}x{height}_at_the_side_limits", _solid(width, height)
        cases += [Case(name, path, banner, 200, None, check=_faces(0)) for path in FACE_ROUTES]
        cases += [
            Case(name, path, banner, 422, "no_face")
            for path in ("/v1/id-photo", "/v1/id-photo/sheet")
        ]
    path = "/v1/detect"
    cases += [
        Case("tiff", path, lambda p: hf.tiff(p.face), 415, "unsupported_format"),
        Case("bmp", path, lambda p: hf.bmp(p.face), 415, "unsupported_format"),
        Case(
            "png_bomb_header", path, lambda p: png_claiming(50_000, 50_000), 422, "too_many_pixels"
        ),
        Case(
            "jpeg_sof_bomb_header",
            path,
            lambda p: jpeg_claiming(p.face, 65_000, 65_000),
            422,
            "too_many_pixels",
        ),
        Case("webp_vp8x_bomb", path, lambda p: webp_claiming(6000, 6000), 422, "too_many_pixels"),
        Case(
            "gif_screen_bomb",
            path,
            lambda p: hf.gif_screen_claiming(65_535, 65_535),
            422,
            "too_many_pixels",
        ),
        # A text chunk nothing reads is dropped before Pillow would inflate it (it was 422
        # undecodable, over Pillow's 1 MB a chunk); one it reads an orientation from is not.
        Case("ztxt_bomb", path, lambda p: hf.ztxt_bomb(), 200, None, check=_faces(0)),
        Case(
            "ztxt_bomb_of_raw_exif",
            path,
            lambda p: hf.ztxt_bomb(keyword=b"Raw profile type exif"),
            422,
            "undecodable",
        ),
        # 3,000 scans over 35 MP took 77 s of CPU to decode; over this 64 px image, milliseconds:
        # only the answer tells the scans were counted before decoding.
        *(
            Case("jpeg_3000_scans", route, _scan_bomb, 422, "too_many_scans")
            for route in ("/v1/detect", "/v1/id-photo")
        ),
        Case(
            "jpeg_1344_comments_between_scans",
            path,
            lambda p: jpeg_with_comments_between_scans(progressive_jpeg(), 1344),
            422,
            "too_many_scans",
        ),
        # 64 px images: only the answer tells the pieces were counted before decoding.
        Case("png_100k_chunks", path, lambda p: hf.png_chunk_flood(), 422, "too_many_scans"),
        Case("gif_200k_comments", path, lambda p: hf.gif_comment_flood(), 422, "too_many_scans"),
        Case("iccp_bomb", path, lambda p: hf.iccp_bomb(), 422, "undecodable"),
        Case("1x1", path, lambda p: hf.one_by_one(), 422, "bad_dimensions"),
        Case("12001px_side", path, lambda p: solid_png(12_001, 16), 422, "bad_dimensions"),
        # Odd but legitimate images: answered, and right.
        Case(
            "gif_1000_frames", path, lambda p: hf.many_frame_gif(p.face), 200, None, check=_faces(1)
        ),
        Case("cmyk_jpeg", path, lambda p: hf.cmyk_jpeg(p.face), 200, None, check=_faces(1)),
        Case("16bit_png", path, lambda p: hf.sixteen_bit_png(p.face), 200, None, check=_faces(1)),
        Case(
            "palette_trns_png",
            path,
            lambda p: hf.palette_trns_png(p.face),
            200,
            None,
            check=_faces(1),
        ),
        Case(
            "exif_orientation_3",
            path,
            lambda p: exif_rotated_jpeg(p.face, 3),
            200,
            None,
            check=_size(320, 240),
        ),
        Case(
            "exif_orientation_6",
            path,
            lambda p: exif_rotated_jpeg(p.face, 6),
            200,
            None,
            check=_size(320, 240),
        ),
        Case(
            "exif_orientation_8",
            path,
            lambda p: exif_rotated_jpeg(p.face, 8),
            200,
            None,
            check=_size(320, 240),
        ),
        Case(
            "exif_orientation_9_invalid",
            path,
            lambda p: hf.exif_orientation(p.face, 9),
            200,
            None,
            check=_size(320, 240),
        ),
        Case(
            "huge_icc_profile", path, lambda p: hf.huge_icc_jpeg(p.face), 200, None, check=_faces(1)
        ),
        # A camera's motion photo: its video after the JPEG's end holds marker-like bytes.
        Case("motion_photo", path, lambda p: hf.motion_photo(p.face), 200, None, check=_faces(1)),
        # Upload shape.
        Case(
            "over_cap_with_length",
            path,
            lambda p: p.face + b"\x00" * IN_PROCESS_UPLOAD_CAP,
            413,
            "too_large",
        ),
        Case(
            "wrong_multipart_field",
            path,
            _parts(1, name="photo"),
            400,
            "missing_field",
            content_type=_MULTIPART,
        ),
        Case(
            "zero_parts",
            path,
            lambda p: hf.multipart([])[0],
            400,
            "missing_field",
            content_type=_MULTIPART,
        ),
        Case("two_image_parts", path, _parts(2), 400, "invalid_parameter", content_type=_MULTIPART),
        Case(
            "no_boundary",
            path,
            _parts(1),
            400,
            "invalid_parameter",
            content_type="multipart/form-data",
        ),
        # Query values a float() or int() would take, or bytes no decoder would.
        Case("threshold_nan", path, lambda p: p.face, 400, "invalid_parameter", "threshold=nan"),
        # Every anchor a face: 1,000 junk faces and 2.9 s of CPU for a 2 KB upload (21.6 s for
        # a 2.6 MB noise WebP), the dearest request there was.
        Case("threshold_zero", path, lambda p: p.face, 400, "invalid_parameter", "threshold=0"),
        # A query string as long as the header limit allows, of unknown options: refused before
        # anything parses it (it held the event loop 300 ms).
        *(
            Case(
                "query_of_5000_options",
                route,
                lambda p: p.face,
                400,
                "invalid_parameter",
                FLOOD_OF_OPTIONS,
            )
            for route in ("/v1/detect", "/v1/id-photo", "/v1/jobs")
        ),
        Case("threshold_inf", path, lambda p: p.face, 400, "invalid_parameter", "threshold=inf"),
        Case(
            "threshold_1e400", path, lambda p: p.face, 400, "invalid_parameter", "threshold=1e400"
        ),
        Case(
            "max_faces_unicode_digits",
            path,
            lambda p: p.face,
            400,
            "invalid_parameter",
            "max_faces=%D9%A3",
        ),
        Case(
            "threshold_invalid_utf8",
            path,
            lambda p: p.face,
            400,
            "invalid_parameter",
            "threshold=%FF",
        ),
        Case(
            "attributes_unknown",
            "/v1/analyze",
            lambda p: p.face,
            400,
            "invalid_parameter",
            "attributes=iq",
        ),
    ]
    # The long multipart boundary on every upload route.
    for path, query in (
        ("/v1/detect", ""),
        ("/v1/analyze", ""),
        ("/v1/annotate", ""),
        ("/v1/echo-size", ""),
        ("/v1/batch", ""),
        ("/v1/id-photo", ""),
        ("/v1/id-photo/sheet", ""),
        ("/v1/jobs", "operation=detect"),
    ):
        cases.append(
            Case(
                "long_boundary",
                path,
                _long_boundary,
                400,
                "invalid_parameter",
                query,
                content_type=_LONG_BOUNDARY_TYPE,
            )
        )
    # ID photos and sheets.
    cases += [
        Case("no_face", "/v1/id-photo", lambda p: solid_png(320, 240), 422, "no_face"),
        Case("two_faces", "/v1/id-photo", lambda p: p.two_faces, 422, "multiple_faces"),
        Case("text", "/v1/id-photo", lambda p: hf.TEXT, 415, "unsupported_format"),
        Case(
            "unknown_spec", "/v1/id-photo", lambda p: p.face, 400, "invalid_parameter", "spec=../x"
        ),
        Case("dpi_nan", "/v1/id-photo", lambda p: p.face, 400, "invalid_parameter", "dpi=nan"),
        Case(
            "width_inf",
            "/v1/id-photo",
            lambda p: p.face,
            400,
            "invalid_parameter",
            "width=inf&height=40",
        ),
        Case(
            "layout_3000_items",
            "/v1/id-photo/sheet",
            lambda p: p.face,
            400,
            "invalid_parameter",
            _3000_ITEMS,
        ),
        Case(
            "layout_201_copies",
            "/v1/id-photo/sheet",
            lambda p: p.face,
            400,
            "invalid_parameter",
            "layout=cn-1inch:201",
        ),
        Case(
            "layout_does_not_fit",
            "/v1/id-photo/sheet",
            lambda p: p.face,
            400,
            "invalid_parameter",
            "layout=cn-2inch:40&sheet=5inch",
        ),
        Case(
            "layout_malformed",
            "/v1/id-photo/sheet",
            lambda p: p.face,
            400,
            "invalid_parameter",
            "layout=cn-1inch:x",
        ),
        Case(
            "unknown_paper",
            "/v1/id-photo/sheet",
            lambda p: p.face,
            400,
            "invalid_parameter",
            "sheet=a0",
        ),
        # Batches.
        Case(
            "17_parts", "/v1/batch", _parts(17), 400, "invalid_parameter", content_type=_MULTIPART
        ),
        Case(
            "500_parts",
            "/v1/batch",
            _parts(500, "images"),
            400,
            "invalid_parameter",
            content_type=_MULTIPART,
        ),
        Case(
            "zero_parts",
            "/v1/batch",
            lambda p: hf.multipart([])[0],
            400,
            "missing_field",
            content_type=_MULTIPART,
        ),
        Case("empty", "/v1/batch", lambda p: b"", 400, "empty"),
        Case(
            "unknown_operation",
            "/v1/batch",
            lambda p: p.face,
            400,
            "invalid_parameter",
            "operation=rm",
        ),
        # Jobs refused at submission.
        Case(
            "layout_3000_items",
            "/v1/jobs",
            lambda p: p.face,
            400,
            "invalid_parameter",
            "operation=id-photo-sheet&" + _3000_ITEMS,
        ),
        Case(
            "unknown_operation",
            "/v1/jobs",
            lambda p: p.face,
            400,
            "invalid_parameter",
            "operation=../rm",
        ),
        Case(
            "option_of_another_operation",
            "/v1/jobs",
            lambda p: p.face,
            400,
            "invalid_parameter",
            "operation=detect&spec=cn-1inch",
        ),
        Case("empty", "/v1/jobs", lambda p: b"", 400, "empty", "operation=detect"),
        # Sniffed as the sync routes sniff it (it was queued, then failed with this 415).
        Case("text", "/v1/jobs", lambda p: hf.TEXT, 415, "unsupported_format", "operation=detect"),
        Case(
            "threshold_nan",
            "/v1/jobs",
            lambda p: p.face,
            400,
            "invalid_parameter",
            "operation=detect&threshold=nan",
        ),
    ]
    return cases


CASES = _cases()


async def _assert_healthy(service: InProcess) -> None:
    async with service.client() as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["ready"] is True


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.path.removeprefix('/v1/')}-{c.name}")
async def test_hostile_request_gets_its_exact_answer(
    service_app: InProcess, photos: Photos, case: Case
) -> None:
    url = case.path + (f"?{case.query}" if case.query else "")
    body = case.build(photos)
    async with service_app.client() as client:
        response = await client.post(
            url, content=body, headers={"Content-Type": case.content_type, **case.headers}
        )
    if case.code is None:
        assert response.status_code == case.status, response.text
        assert response.headers["content-type"] == "application/json"
        assert case.check is not None
        case.check(response.json())
    else:
        error = assert_error(response, case.status, case.code)
        assert response.headers["X-Error-Code"] == case.code
        assert "Traceback" not in error["message"]
    await _assert_healthy(service_app)


async def _chunks(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize(
    "path", ["/v1/detect", "/v1/id-photo", "/v1/batch", "/v1/jobs?operation=detect"]
)
async def test_oversize_chunked_upload_without_length_is_413(
    service_app: InProcess, photos: Photos, path: str
) -> None:
    oversize = photos.face + b"\x00" * (IN_PROCESS_UPLOAD_CAP * 17)
    async with service_app.client() as client:
        response = await client.post(path, content=_chunks(oversize))
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "too_large")
    await _assert_healthy(service_app)


@pytest.mark.parametrize(
    "handle",
    [
        "..%2F..%2Fetc%2Fpasswd",
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "....//....//etc//passwd",
        "%00",
        "a" * 5000,
        "%C0%AE%C0%AE%2F",
    ],
)
@pytest.mark.parametrize("suffix", ["", "/result"])
async def test_path_traversal_job_handle_is_404(
    service_app: InProcess, handle: str, suffix: str
) -> None:
    async with service_app.client() as client:
        response = await client.get(f"/v1/jobs/{handle}{suffix}")
        deleted = await client.delete(f"/v1/jobs/{handle}")
    assert_error(response, 404, "not_found")
    assert_error(deleted, 404, "not_found")


async def _finished(client: httpx.AsyncClient, status_url: str) -> dict[str, Any]:
    deadline = time.monotonic() + JOB_POLL_TIMEOUT_S
    while True:
        body: dict[str, Any] = (await client.get(status_url)).json()
        if body["status"] in ("finished", "failed", "canceled"):
            return body
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    ("build", "status", "code"),
    [
        (lambda p: png_claiming(50_000, 50_000), 422, "too_many_pixels"),
        (lambda p: truncated(p.face, 0.5), 422, "undecodable"),
        (_scan_bomb, 422, "too_many_scans"),
    ],
    ids=["png_bomb_header", "truncated_jpeg", "jpeg_3000_scans"],
)
async def test_job_on_a_hostile_file_fails_with_the_sync_answer(
    service_app: InProcess,
    photos: Photos,
    build: Callable[[Photos], bytes],
    status: int,
    code: str,
) -> None:
    async with service_app.client() as client:
        submitted = await client.post("/v1/jobs?operation=detect", content=build(photos))
        assert submitted.status_code == 202, submitted.text
        job = await _finished(client, submitted.headers["Location"])
        result = await client.get(job["result_url"])
    assert job["status"] == "failed", job
    assert job["error"]["code"] == code, job
    assert_error(result, status, code)
    await _assert_healthy(service_app)


async def test_a_good_request_is_served_after_the_battery(
    service_app: InProcess, photos: Photos
) -> None:
    async with service_app.client() as client:
        response = await client.post("/v1/analyze", content=fresh(photos.face))
    assert response.status_code == 200, response.text
    assert response.json()["face_count"] == 1
    assert service_app.services.pool.stats().in_flight == 0


# Refused images whose refusal was written to the log as a possible fault of the server: a
# warning with a 2 KB traceback for each upload of 2 to 65 KB.
_QUIETLY_REFUSED: tuple[tuple[str, Callable[[Photos], bytes]], ...] = (
    ("iccp_bomb", lambda p: hf.iccp_bomb()),
    ("ztxt_bomb_of_raw_exif", lambda p: hf.ztxt_bomb(keyword=b"Raw profile type exif")),
    ("truncated_trns", lambda p: hf.truncated_trns_png()),
    ("truncated_jpeg", lambda p: truncated(p.face, 0.5)),
)


async def test_a_refused_image_writes_no_warning_nor_traceback_to_the_log(
    photos: Photos, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    # An app of its own, started under capfd: its inference process, which decodes, inherits
    # the captured stderr and writes its log lines there, as JSON (caplog sees this process's).
    settings = app_settings(server={"log_level": "debug", "log_json": True})
    with caplog.at_level(logging.DEBUG):
        async with running_app(settings) as app, app.client() as client:
            for name, build in _QUIETLY_REFUSED:
                response = await client.post("/v1/detect", content=build(photos))
                assert response.headers.get("X-Error-Code") == "undecodable", name
    child = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line[:1] == "{"]
    assert any(e["message"] == "undecodable png image (ValueError)" for e in child), child
    loud = [e for e in child if e["level"] not in ("debug", "info") or "exception" in e]
    loud += [
        {"logger": r.name, "message": r.getMessage()}
        for r in caplog.records
        if r.levelno >= logging.WARNING or r.exc_info
    ]
    assert loud == []


_MALFORMED_FORMS = {
    # python-multipart warned of each in the log, under its own name, before raising.
    # A file name with CR LF in it, then an escape: what follows the line end is read as a
    # header's name, which may not hold one.
    "escape_in_a_part_header_name": b'--b\r\nContent-Disposition: form-data; name="image"; '
    b'filename="a\r\nX\x1b[31m: b"\r\n\r\nx\r\n--b--\r\n',
    "boundary_without_crlf": b'--bX\r\nContent-Disposition: form-data; name="image"\r\n\r\n'
    b"x\r\n--b--\r\n",
    "zero_length_header": b"--b\r\n: x\r\n\r\nx\r\n--b--\r\n",
}


@pytest.mark.parametrize("body", list(_MALFORMED_FORMS.values()), ids=list(_MALFORMED_FORMS))
async def test_a_malformed_form_is_refused_without_a_warning_in_the_log(
    service_app: InProcess, body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        async with service_app.client() as client:
            response = await client.post(
                "/v1/detect",
                content=body,
                headers={"Content-Type": "multipart/form-data; boundary=b"},
            )
    assert_error(response, 400, "invalid_parameter")
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
