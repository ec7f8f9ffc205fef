"""Header sizes read from the bytes, before Pillow."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from PIL import Image

from faceflow.imaging.dimensions import JpegLayout, jpeg_layout, read_dimensions
from faceflow.imaging.formats import ImageFormat, sniff_format
from tests.fixtures.images import (
    handmade_png,
    jpeg_claiming,
    jpeg_segments,
    jpeg_with_comments_between_scans,
    png_claiming,
    progressive_jpeg,
    scan_bomb,
    webp_claiming,
)


def _encoded(fmt: str, size: tuple[int, int], **params: object) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (10, 200, 30)).save(out, fmt, **params)
    return out.getvalue()


@pytest.mark.parametrize(
    "name",
    ["obama.jpg", "biden.jpg", "obama_small.jpg", "obama_rgba.png", "portrait_1.jpg", "cat.jpg"],
)
def test_agrees_with_pillow_on_real_photos(testdata: Path, name: str) -> None:
    data = (testdata / name).read_bytes()
    with Image.open(io.BytesIO(data)) as image:
        expected = image.size
    assert read_dimensions(data, sniff_format(data)) == expected


@pytest.mark.parametrize(
    ("data", "fmt", "size"),
    [
        (_encoded("JPEG", (123, 45)), ImageFormat.JPEG, (123, 45)),
        (_encoded("JPEG", (123, 45), progressive=True), ImageFormat.JPEG, (123, 45)),
        (_encoded("PNG", (123, 45)), ImageFormat.PNG, (123, 45)),
        (_encoded("GIF", (123, 45)), ImageFormat.GIF, (123, 45)),
        (_encoded("WEBP", (123, 45), lossless=True), ImageFormat.WEBP, (123, 45)),  # VP8L
        (_encoded("WEBP", (123, 45), quality=80), ImageFormat.WEBP, (123, 45)),  # VP8
        (_encoded("WEBP", (123, 45), exif=b"Exif\x00\x00"), ImageFormat.WEBP, (123, 45)),  # VP8X
        (png_claiming(50_000, 50_000), ImageFormat.PNG, (50_000, 50_000)),
        (webp_claiming(6000, 7000), ImageFormat.WEBP, (6000, 7000)),
        (handmade_png(1, 2**31 - 1), ImageFormat.PNG, (1, 2**31 - 1)),
    ],
)
def test_reads_each_format(data: bytes, fmt: ImageFormat, size: tuple[int, int]) -> None:
    assert read_dimensions(data, fmt) == size


def test_reads_a_patched_jpeg_frame_header(testdata: Path) -> None:
    data = jpeg_claiming((testdata / "obama_small.jpg").read_bytes(), 65_000, 64_000)
    assert read_dimensions(data, ImageFormat.JPEG) == (65_000, 64_000)


def test_jpeg_fill_bytes_and_standalone_markers_are_skipped() -> None:
    jpeg = _encoded("JPEG", (40, 30))
    # Fill bytes before a marker, and a standalone TEM marker, are both legal before the frame.
    data = jpeg[:2] + b"\xff\x01" + b"\xff\xff\xff" + jpeg[2:]
    assert read_dimensions(data, ImageFormat.JPEG) == (40, 30)


def _jpeg_with_comments(count: int) -> bytes:
    jpeg = _encoded("JPEG", (40, 30))
    comment = b"\xff\xfe" + struct.pack(">H", 3) + b"x"
    return jpeg[:2] + comment * count + jpeg[2:]


@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        (b"\xff\xd8\xff", ImageFormat.JPEG),  # cut off inside the first marker
        (b"\xff\xd8\xff\xda\x00\x08", ImageFormat.JPEG),  # scan before any frame header
        (b"\xff\xd8\x00\x00", ImageFormat.JPEG),  # not a marker where one must be
        (b"\xff\xd8\xff\xe0\x00\x01", ImageFormat.JPEG),  # impossible segment length
        (_jpeg_with_comments(600), ImageFormat.JPEG),  # more segments than any real file
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDX" + b"\x00" * 13, ImageFormat.PNG),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00", ImageFormat.PNG),
        (b"GIF89a\x10", ImageFormat.GIF),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 \x00\x00\x00\x00", ImageFormat.WEBP),
        (b"RIFF\x00\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00", ImageFormat.WEBP),
    ],
)
def test_unreadable_headers_give_none(data: bytes, fmt: ImageFormat) -> None:
    assert read_dimensions(data, fmt) is None


def test_a_file_with_many_segments_is_still_read_below_the_cap() -> None:
    assert read_dimensions(_jpeg_with_comments(100), ImageFormat.JPEG) == (40, 30)


# jpeg_layout: the scans a decoder would pass over the image, counted before it sees the file.
MAX_SCANS, MAX_SEGMENTS = 64, 300


def _scans(data: bytes) -> int:
    layout = jpeg_layout(data, MAX_SCANS, MAX_SEGMENTS)
    assert not layout.cut_short, layout
    return layout.scans


@pytest.mark.parametrize(
    ("data", "scans"),
    [
        (_encoded("JPEG", (64, 48)), 1),
        (_encoded("JPEG", (64, 48), progressive=True), 10),  # libjpeg's standard script
        (_encoded("JPEG", (64, 48), progressive=True, restart_marker_blocks=1), 10),
    ],
    ids=["baseline", "progressive", "progressive_with_restart_markers"],
)
def test_counts_the_scans_an_encoder_writes(data: bytes, scans: int) -> None:
    assert _scans(data) == scans


def test_real_photos_hold_a_handful_of_scans(testdata: Path) -> None:
    counted = {
        path.name: _scans(data)
        for path in sorted(testdata.iterdir())
        if (data := path.read_bytes()).startswith(b"\xff\xd8\xff")
    }
    assert counted, "no JPEG in the test photos"
    assert all(1 <= scans <= 11 for scans in counted.values()), counted


def test_the_walk_stops_past_the_scan_limit() -> None:
    jpeg = progressive_jpeg()
    at_limit = scan_bomb(jpeg, MAX_SCANS - 10)
    assert jpeg_layout(at_limit, MAX_SCANS, MAX_SEGMENTS) == JpegLayout(
        MAX_SCANS, MAX_SCANS + 15, cut_short=False
    )
    over = jpeg_layout(scan_bomb(jpeg, 10_000), MAX_SCANS, MAX_SEGMENTS)
    assert over.cut_short
    assert over.scans == MAX_SCANS + 1


def test_the_walk_stops_past_the_segment_limit() -> None:
    layout = jpeg_layout(
        jpeg_with_comments_between_scans(progressive_jpeg(), 10_000), MAX_SCANS, MAX_SEGMENTS
    )
    assert layout.cut_short
    assert (layout.segments, layout.scans) == (MAX_SEGMENTS + 1, 9)


def test_what_follows_the_end_of_the_image_is_not_counted() -> None:
    # A motion photo's video (or MPF's preview images) after EOI holds marker-like bytes.
    data = progressive_jpeg() + (b"\xff\xda\x00\x08" + bytes(60)) * 1_000
    assert _scans(data) == 10


def test_bytes_inside_a_segment_are_not_taken_for_markers() -> None:
    jpeg = progressive_jpeg()
    segments = jpeg_segments(jpeg)
    payload = b"\xff\xd9\xff\xda\x00\x08" * 20
    comment = b"\xff\xfe" + struct.pack(">H", 2 + len(payload)) + payload
    # An embedded thumbnail before the frame (as EXIF's) holds a whole JPEG of its own.
    thumbnail = b"\xff\xe1" + struct.pack(">H", 2 + len(jpeg)) + jpeg
    data = b"\xff\xd8" + thumbnail + b"".join(segments[:-1]) + comment + segments[-1] + b"\xff\xd9"
    assert _scans(data) == 10


def test_fill_bytes_before_a_scan_are_skipped() -> None:
    segments = jpeg_segments(progressive_jpeg())
    data = b"\xff\xd8" + b"".join(segments[:-1]) + b"\xff\xff\xff" + segments[-1] + b"\xff\xd9"
    assert _scans(data) == 10


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9])
def test_a_truncated_file_counts_the_scans_it_holds(keep: float) -> None:
    jpeg = _encoded("JPEG", (64, 48), progressive=True)
    cut = jpeg[: int(len(jpeg) * keep)]
    assert 0 <= _scans(cut) <= 10
