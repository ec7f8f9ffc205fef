"""PNG text chunks (imaging/ingest.py's png_without_text): never inflated unless read."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from faceflow.config import LimitSettings
from faceflow.imaging.ingest import decode_image, png_without_text, probe_image

DEFAULTS = LimitSettings()
MEGABYTE_OF_TEXT = zlib.compress(b"a" * (1 << 20), 9)  # about 1 KB on the wire


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width: int = 40, height: int = 20, info: PngImagePlugin.PngInfo | None = None) -> bytes:
    pixels = np.arange(width * height * 3, dtype=np.uint8).reshape(height, width, 3)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG", pnginfo=info)
    return out.getvalue()


def with_chunks_after_ihdr(data: bytes, chunks: list[bytes]) -> bytes:
    ihdr_end = 8 + 25
    return data[:ihdr_end] + b"".join(chunks) + data[ihdr_end:]


def kinds(data: bytes) -> list[bytes]:
    pos, found = 8, []
    while pos < len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        found.append(kind)
        pos += 12 + length
    return found


def raw_exif_profile(orientation: int) -> str:
    """EXIF as ImageMagick writes it into a PNG's text ("Raw profile type exif"): hex lines."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    raw = exif.tobytes()
    return f"\nexif\n{len(raw):8d}\n{raw.hex()}\n"


def test_every_compressed_text_chunk_nothing_reads_is_dropped_and_the_pixels_kept() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "an editor")
    info.add_text("Comment", "x" * 5000, zip=True)
    info.add_itxt("Title", "a title", lang="en", zip=True)
    data = png(info=info)

    stripped = png_without_text(data)

    assert kinds(stripped) == [b"IHDR", b"tEXt", b"IDAT", b"IEND"]
    assert Image.open(io.BytesIO(stripped)).info == {"Software": "an editor"}
    np.testing.assert_array_equal(
        decode_image(stripped, DEFAULTS).rgb, decode_image(data, DEFAULTS).rgb
    )


def test_a_png_without_compressed_text_is_not_copied() -> None:
    # Plain text costs Pillow what its bytes cost: a copy of a 10 MB photo to drop it cost more.
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "an editor")
    info.add_itxt("Title", "a title")
    for data in (png(), png(info=info)):
        assert png_without_text(data) is data


@pytest.mark.parametrize("kind", [b"zTXt", b"iTXt"])
def test_two_hundred_compressed_text_chunks_are_never_inflated(kind: bytes) -> None:
    # Each inflates to 1 MB: Pillow decoded them all to strings (60 of them: 0.2 s for a photo
    # that decodes in 3 ms), then refused the photo past 64 MB of text (undecodable).
    header = b"\x00\x00" if kind == b"zTXt" else b"\x00\x01\x00\x00\x00"
    flood = [chunk(kind, f"k{i}".encode() + header + MEGABYTE_OF_TEXT) for i in range(200)]
    data = with_chunks_after_ihdr(png(), flood)

    assert probe_image(data, DEFAULTS).width_px == 40
    assert decode_image(data, DEFAULTS).rgb.shape == (20, 40, 3)


@pytest.mark.parametrize("where", ["tEXt", "zTXt"])
def test_an_orientation_in_a_raw_exif_profile_is_still_applied(where: str) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "dropped", zip=True)
    info.add_text("Raw profile type exif", raw_exif_profile(6), zip=where == "zTXt")

    decoded = decode_image(png(info=info), DEFAULTS)

    assert decoded.rgb.shape == (40, 20, 3)  # turned a quarter: 6 is "rotate 90° clockwise"


def test_the_last_xmp_packet_gives_the_orientation_as_pillow_reads_it() -> None:
    def xmp(orientation: int) -> str:
        return f'<x:xmpmeta><rdf:Description tiff:Orientation="{orientation}"/></x:xmpmeta>'

    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", xmp(1), zip=True)
    info.add_text("Comment", "dropped", zip=True)
    info.add_itxt("XML:com.adobe.xmp", xmp(8), zip=True)
    data = png(info=info)

    stripped = png_without_text(data)

    assert kinds(stripped) == [b"IHDR", b"iTXt", b"IDAT", b"IEND"]
    assert decode_image(data, DEFAULTS).rgb.shape == (40, 20, 3)


def test_a_truncated_chunk_is_left_for_the_decoder_to_report() -> None:
    data = with_chunks_after_ihdr(png(), [chunk(b"zTXt", b"Comment\x00\x00" + MEGABYTE_OF_TEXT)])
    cut = data[: len(data) - 30]

    stripped = png_without_text(cut)

    assert b"Comment" not in stripped
    assert stripped.endswith(cut[-20:])
