"""Hostile uploads for the HTTP battery (tests/service/test_hostile_inputs.py), built in memory.

Adds to the table in tests/fixtures/images.py the files only a whole request can meet: other
formats' magic bytes, bombs hidden in metadata, many frames, odd colour modes and orientations,
and multipart bodies that lie about their shape. Nothing here is written to disk.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Sequence

import numpy as np
from PIL import Image

from tests.fixtures.images import (
    EXIF_ORIENTATION_TAG,
    handmade_png,
    load_rgb,
    png_chunk,
)

HTML = b"<!DOCTYPE html>\n<html><body><img src=x onerror=alert(1)></body></html>\n"
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"
TEXT = b"hello, this is not an image\n"


def tiff(face_jpeg: bytes) -> bytes:
    out = io.BytesIO()
    load_rgb(face_jpeg).save(out, "TIFF")
    return out.getvalue()


def bmp(face_jpeg: bytes) -> bytes:
    out = io.BytesIO()
    load_rgb(face_jpeg).save(out, "BMP")
    return out.getvalue()


def gif_screen_claiming(width: int, height: int) -> bytes:
    """A GIF whose logical screen is ``width``×``height`` around a 1×1 frame."""
    header = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0)
    palette = b"\x00\x00\x00\xff\xff\xff"
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    return header + palette + frame + b"\x3b"


def _png_with(chunk: bytes, width: int = 64, height: int = 64) -> bytes:
    """A valid ``width``×``height`` grey PNG with ``chunk`` inserted right after IHDR."""
    plain = handmade_png(width, height, scanlines=b"\x80" * (width * height * 3))
    ihdr_end = 8 + 25  # signature, then the IHDR chunk (4 + 4 + 13 + 4)
    return plain[:ihdr_end] + chunk + plain[ihdr_end:]


def ztxt_bomb(inflated_bytes: int = 64 * 1024 * 1024, keyword: bytes = b"Comment") -> bytes:
    """A PNG whose zTXt chunk ``keyword`` inflates to ``inflated_bytes`` of zeros (about 64 KB
    on the wire)."""
    payload = keyword + b"\x00\x00" + zlib.compress(b"\x00" * inflated_bytes, 9)
    return _png_with(png_chunk(b"zTXt", payload))


def iccp_bomb(inflated_bytes: int = 64 * 1024 * 1024) -> bytes:
    """A PNG whose iCCP (colour profile) chunk inflates to ``inflated_bytes``."""
    payload = b"icc\x00\x00" + zlib.compress(b"\x00" * inflated_bytes, 9)
    return _png_with(png_chunk(b"iCCP", payload))


def truncated_trns_png() -> bytes:
    """A PNG whose transparency chunk is one byte short of any colour type's (Pillow refuses it
    with a ValueError, as it does a text or profile bomb)."""
    return _png_with(png_chunk(b"tRNS", b"\0"))


def png_chunk_flood(chunks: int = 100_000) -> bytes:
    """A 64 px PNG with ``chunks`` empty ancillary chunks before its image data (12 bytes each;
    Pillow reads each in Python: 800,000 took 2.5 s to decode)."""
    return _png_with(png_chunk(b"tEXt", b"") * chunks)


def gif_comment_flood(blocks: int = 200_000) -> bytes:
    """A 64 px GIF with ``blocks`` empty comment extensions before its image (3 bytes each;
    2,000,000 took 1.1 s to decode)."""
    plain = gif_screen_claiming(64, 64)
    image = plain.index(b"\x2c")
    return plain[:image] + b"\x21\xfe\x00" * blocks + plain[image:]


def one_by_one() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (1, 1), (200, 50, 50)).save(out, "PNG")
    return out.getvalue()


def many_frame_gif(face_jpeg: bytes, frames: int = 1000) -> bytes:
    """An animated GIF: the face photo, then ``frames - 1`` frames of noise."""
    first = load_rgb(face_jpeg).convert("P", palette=Image.Palette.ADAPTIVE)
    rng = np.random.default_rng(7)
    others = [
        Image.fromarray(rng.integers(0, 256, (first.height, first.width), dtype=np.uint8), "L")
        .convert("P")
        .resize((16, 16))
        for _ in range(frames - 1)
    ]
    out = io.BytesIO()
    first.save(out, "GIF", save_all=True, append_images=others, duration=10, loop=0)
    return out.getvalue()


def cmyk_jpeg(face_jpeg: bytes) -> bytes:
    out = io.BytesIO()
    load_rgb(face_jpeg).convert("CMYK").save(out, "JPEG", quality=95)
    return out.getvalue()


def sixteen_bit_png(face_jpeg: bytes) -> bytes:
    """The face photo as a 16-bit-per-sample RGB PNG."""
    rgb = load_rgb(face_jpeg)
    samples = np.asarray(rgb, dtype=">u2") * 257
    return handmade_png(
        rgb.width, rgb.height, bit_depth=16, colour_type=2, scanlines=samples.tobytes()
    )


def palette_trns_png(face_jpeg: bytes) -> bytes:
    """The face photo as a palette PNG with one transparent palette entry (tRNS)."""
    paletted = load_rgb(face_jpeg).convert("P", palette=Image.Palette.ADAPTIVE, colors=255)
    out = io.BytesIO()
    paletted.save(out, "PNG", transparency=0)
    return out.getvalue()


def exif_orientation(face_jpeg: bytes, orientation: int) -> bytes:
    """The face photo, pixels as stored, with EXIF ``orientation`` (any value, even invalid)."""
    exif = Image.Exif()
    exif[EXIF_ORIENTATION_TAG] = orientation
    out = io.BytesIO()
    load_rgb(face_jpeg).save(out, "JPEG", quality=95, exif=exif.tobytes())
    return out.getvalue()


def huge_icc_jpeg(face_jpeg: bytes, profile_bytes: int = 1_000_000) -> bytes:
    """The face photo carrying a ``profile_bytes`` ICC profile of garbage (spread by Pillow over
    many APP2 segments)."""
    out = io.BytesIO()
    load_rgb(face_jpeg).save(out, "JPEG", quality=90, icc_profile=b"\x00" * profile_bytes)
    return out.getvalue()


def multipart(
    parts: Sequence[tuple[str, bytes]], boundary: str = "faceflowboundary"
) -> tuple[bytes, str]:
    """A multipart/form-data body of (field name, bytes) file parts, and its content type."""
    body = bytearray()
    for name, data in parts:
        body += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{name}.jpg"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        body += data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return bytes(body), f"multipart/form-data; boundary={boundary}"


def motion_photo(face_jpeg: bytes, video_bytes: int = 256 * 1024) -> bytes:
    """``face_jpeg`` followed, as a phone's motion photo is, by a video after its end-of-image
    marker: random bytes, with start-of-scan markers among them."""
    video = np.random.default_rng(7).integers(0, 256, video_bytes, dtype=np.uint8).tobytes()
    return face_jpeg + b"\x00\x00\x00\x18ftypmp42" + video.replace(b"\x00", b"\xff\xda", 2000)
