"""Header sizes read from the bytes, before Pillow."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from PIL import Image

from faceflow.imaging.dimensions import read_dimensions
from faceflow.imaging.formats import ImageFormat, sniff_format
from tests.fixtures.images import handmade_png, jpeg_claiming, png_claiming, webp_claiming


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
