"""PNG chunks and GIF blocks, which Pillow reads one loop turn each in Python, counted and bounded
before any decoder sees the file (``png_chunks``, ``gif_blocks`` in ``imaging/ingest.py``)."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceflow.config import LimitSettings
from faceflow.errors import TooManyScans
from faceflow.imaging.ingest import decode_image, gif_blocks, png_chunks, probe_image
from tests.fixtures.images import handmade_png, load_rgb, noise_png, png_chunk

DEFAULTS = LimitSettings()
FLOOD = 2_000  # pieces: over the 1,024 + 1 per KB a file of a few tens of KB may hold


def _max_pieces(data: bytes) -> int:
    return 1024 + len(data) // 1024


def _png(testdata: Path) -> bytes:
    out = io.BytesIO()
    load_rgb(testdata / "obama_small.jpg").save(out, "PNG")
    return out.getvalue()


def _chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    """``png``'s chunks after the signature, as (type, data), up to and including IEND."""
    pos, chunks = 8, []
    while True:
        length, kind = struct.unpack_from(">I4s", png, pos)
        chunks.append((kind, png[pos + 8 : pos + 8 + length]))
        pos += 12 + length
        if kind == b"IEND":
            return chunks


def _assembled(chunks: list[tuple[bytes, bytes]]) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"".join(png_chunk(kind, data) for kind, data in chunks)


def _with_chunks_before(png: bytes, kind: bytes, extra: list[tuple[bytes, bytes]]) -> bytes:
    chunks = _chunks(png)
    at = next(i for i, (k, _) in enumerate(chunks) if k == kind)
    return _assembled(chunks[:at] + extra + chunks[at:])


def _idat_in_pieces(png: bytes, size: int, empty: int = 0) -> bytes:
    """``png`` with its compressed pixel data in IDAT chunks of ``size`` bytes, after ``empty``
    zero-length ones."""
    chunks = _chunks(png)
    stream = b"".join(data for kind, data in chunks if kind == b"IDAT")
    idats = [(b"IDAT", b"")] * empty
    idats += [(b"IDAT", stream[i : i + size]) for i in range(0, len(stream), size)]
    others = [(kind, data) for kind, data in chunks if kind not in (b"IDAT", b"IEND")]
    return _assembled([*others, *idats, (b"IEND", b"")])


def _png_floods(testdata: Path) -> dict[str, bytes]:
    png = _png(testdata)
    empty = [(b"zzZz", b"")] * FLOOD
    return {
        "ancillary_before_idat": _with_chunks_before(png, b"IDAT", empty),
        "ancillary_after_idat": _with_chunks_before(png, b"IEND", empty),
        "text_chunks": _with_chunks_before(png, b"IDAT", [(b"tEXt", b"k\0v")] * FLOOD),
        "one_byte_idats": _idat_in_pieces(png, 1),
        "empty_idats": _idat_in_pieces(png, 64 * 1024, empty=FLOOD),
    }


@pytest.mark.parametrize(
    "name",
    [
        "ancillary_before_idat",
        "ancillary_after_idat",
        "text_chunks",
        "one_byte_idats",
        "empty_idats",
    ],
)
def test_a_png_of_thousands_of_chunks_is_refused_before_decoding(testdata: Path, name: str) -> None:
    data = _png_floods(testdata)[name]
    with pytest.raises(TooManyScans) as caught:
        probe_image(data, DEFAULTS)
    assert (caught.value.code, caught.value.status) == ("too_many_scans", 422)
    assert caught.value.details == {"format": "png", "max_pieces": _max_pieces(data)}
    with pytest.raises(TooManyScans):
        decode_image(data, DEFAULTS)


def test_a_png_may_hold_as_many_chunks_as_the_allowance_and_no_more() -> None:
    base = handmade_png(32, 32, scanlines=bytes(32 * 32 * 3))  # IHDR, IDAT, IEND

    def flooded(extra: int) -> bytes:
        return _with_chunks_before(base, b"IDAT", [(b"zzZz", b"")] * extra)

    at_limit = next(n for n in range(1_000, 2_000) if 3 + n == _max_pieces(flooded(n)))
    assert probe_image(flooded(at_limit), DEFAULTS).width_px == 32
    over = flooded(at_limit + 1)
    assert png_chunks(over, 10**6) == _max_pieces(over) + 1
    with pytest.raises(TooManyScans):
        probe_image(over, DEFAULTS)


def test_pixel_data_in_kilobyte_chunks_is_a_real_png() -> None:
    # libpng writes 8 KB IDAT chunks, Pillow 64 KB; even 1 KB ones fit the allowance.
    png = noise_png(600, 600)
    in_pieces = _idat_in_pieces(png, 1024)
    assert png_chunks(in_pieces, 10**6) > 1024
    np.testing.assert_array_equal(
        decode_image(in_pieces, DEFAULTS).rgb, decode_image(png, DEFAULTS).rgb
    )


def test_png_chunks_are_counted_to_iend_and_no_further() -> None:
    png = handmade_png(16, 16, scanlines=bytes(16 * 16 * 3))
    assert png_chunks(png, 100) == 3
    assert png_chunks(png + png_chunk(b"zzZz", b"") * 500, 100) == 3  # after IEND: never read
    assert png_chunks(png[:-12], 100) == 2  # no IEND: the walk ends with the data
    assert png_chunks(png[:20], 100) == 1  # cut inside IHDR
    flood = _with_chunks_before(png, b"IDAT", [(b"zzZz", b"")] * 500)
    assert png_chunks(flood, 100) == 101  # stops one past the limit


def _apng(frames: int) -> tuple[bytes, tuple[int, int, int]]:
    """An animated PNG of ``frames`` small frames, alternately red and blue: a few dozen bytes a
    frame, two chunks (fcTL, fdAT) each."""
    colours = [(200, 30, 30), (30, 30, 200)]
    images = [Image.new("RGB", (16, 16), colours[i % 2]) for i in range(frames)]
    out = io.BytesIO()
    images[0].save(out, "PNG", save_all=True, append_images=images[1:], duration=20)
    return out.getvalue(), colours[0]


def test_an_animated_png_is_counted_to_the_end_of_its_first_frame() -> None:
    # Pillow stops at the second frame's fcTL: later frames are never read, however many chunks.
    data, first = _apng(1_500)
    assert [kind for kind, _ in _chunks(data)].count(b"fdAT") == 1_499
    assert len(_chunks(data)) > _max_pieces(data)
    assert png_chunks(data, 10**6) == 5  # IHDR, acTL, fcTL, IDAT, and the fcTL that ends it
    assert (decode_image(data, DEFAULTS).rgb == first).all()

    flood = _with_chunks_before(data, b"IDAT", [(b"zzZz", b"")] * FLOOD)
    with pytest.raises(TooManyScans):
        probe_image(flood, DEFAULTS)


def test_an_apng_whose_animation_pillow_ignores_is_counted_to_iend() -> None:
    # A second acTL makes Pillow forget the first: not animated, so it reads on past the fcTL.
    data, _ = _apng(1_500)
    actl = next(payload for kind, payload in _chunks(data) if kind == b"acTL")
    twice = _with_chunks_before(data, b"fcTL", [(b"acTL", actl)])
    assert png_chunks(twice, 10**6) == len(_chunks(twice))
    with pytest.raises(TooManyScans):
        probe_image(twice, DEFAULTS)


def _gif(testdata: Path) -> tuple[bytes, int]:
    """A one-frame GIF and where its blocks start (after the screen and global colour table)."""
    out = io.BytesIO()
    load_rgb(testdata / "obama_small.jpg").convert("P").save(out, "GIF")
    gif = out.getvalue()
    flags = gif[10]
    return gif, 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)


def _gif_flood(name: str, pieces: int) -> bytes:
    """``pieces`` pieces Pillow reads one by one, of one kind, to put before a GIF's image."""
    if name == "comment_blocks":  # an extension, one sub-block, the terminator
        return b"\x21\xfe\x01a\x00" * (pieces // 3)
    if name == "one_byte_sub_blocks":
        return b"\x21\xfe" + b"\x01a" * pieces + b"\x00"
    if name == "graphic_controls":
        return b"\x21\xf9\x04\x00\x00\x00\x00\x00" * (pieces // 3)
    return b"\x00" * pieces  # stray bytes between blocks


@pytest.mark.parametrize(
    "name", ["comment_blocks", "one_byte_sub_blocks", "graphic_controls", "stray_bytes"]
)
def test_a_gif_of_thousands_of_blocks_before_its_image_is_refused(
    testdata: Path, name: str
) -> None:
    gif, start = _gif(testdata)
    data = gif[:start] + _gif_flood(name, 3 * FLOOD) + gif[start:]
    with pytest.raises(TooManyScans) as caught:
        probe_image(data, DEFAULTS)
    assert (caught.value.code, caught.value.status) == ("too_many_scans", 422)
    assert caught.value.details == {"format": "gif", "max_pieces": _max_pieces(data)}
    few = gif[:start] + _gif_flood(name, 300) + gif[start:]
    np.testing.assert_array_equal(decode_image(few, DEFAULTS).rgb, decode_image(gif, DEFAULTS).rgb)


def test_blocks_after_the_first_image_are_not_counted(testdata: Path) -> None:
    # faceflow decodes the first frame and never counts frames: Pillow reads nothing after it.
    gif, _ = _gif(testdata)
    data = gif[:-1] + b"\x21\xfe\x01a\x00" * FLOOD * 10 + gif[-1:]
    assert gif_blocks(data, 10**6) == gif_blocks(gif, 10**6)
    np.testing.assert_array_equal(decode_image(data, DEFAULTS).rgb, decode_image(gif, DEFAULTS).rgb)


def test_gif_blocks_follow_pillow_s_walk(testdata: Path) -> None:
    gif, start = _gif(testdata)
    assert gif_blocks(gif, 100) == 1  # the image descriptor
    comment = b"\x21\xfe\x03abc\x02de\x00"  # the extension, two sub-blocks, the terminator
    assert gif_blocks(gif[:start] + comment + gif[start:], 100) == 5
    assert gif_blocks(gif[:start] + b"\x00\x00" + gif[start:], 100) == 3  # stray bytes
    assert gif_blocks(gif[:start] + b"\x21\xfe\x05ab", 100) == 2  # cut short
    assert gif_blocks(gif[:start] + _gif_flood("comment_blocks", 3 * FLOOD), 100) == 101
