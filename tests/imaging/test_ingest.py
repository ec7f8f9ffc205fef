"""Safe ingest: limits from the header, typed errors for hostile input, modes, EXIF, draft."""

from __future__ import annotations

import errno
import functools
import io
import logging
import math
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image, ImageFile

from faceflow.config import LimitSettings
from faceflow.errors import (
    BadDimensions,
    FaceflowError,
    TooManyPixels,
    Undecodable,
)
from faceflow.imaging import ingest
from faceflow.imaging.formats import ImageFormat
from faceflow.imaging.ingest import as_drafted, decode_image, decode_rgba, probe_image
from tests.fixtures.images import (
    EXIF_ORIENTATION_TAG,
    HostileInput,
    exif_rotated_jpeg,
    handmade_png,
    hostile_inputs,
    jpeg_claiming,
    load_rgb,
    matrix_icc_profile,
    png_chunk,
    png_claiming,
    solid_png,
    webp_claiming,
)

DEFAULTS = LimitSettings()
# Limits loose enough that the hand-made headers are accepted, to show they are well formed.
PERMISSIVE = LimitSettings(
    max_pixels=10**10, max_pixels_lossless=10**10, max_side_px=100_000, min_side_px=1
)

Pixels = NDArray[np.uint8]


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def _small_jpeg() -> bytes:
    return encode(Image.new("RGB", (64, 48), (200, 100, 50)), "JPEG")


def mean_abs_diff(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> float:
    assert a.shape == b.shape
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


# Hostile input


@pytest.mark.parametrize("case", hostile_inputs(), ids=lambda case: case.name)
def test_hostile_input_gets_its_typed_error(testdata: Path, case: HostileInput) -> None:
    data = case.make(testdata, DEFAULTS)
    with pytest.raises(FaceflowError) as caught:
        decode_image(data, DEFAULTS)
    assert (caught.value.code, caught.value.status) == (case.code, case.status)
    assert type(caught.value).code == case.code  # a real subclass, not a renamed base error


@pytest.mark.parametrize(
    ("data", "size"),
    [
        (png_claiming(50_000, 50_000), (50_000, 50_000)),
        (webp_claiming(6000, 6000), (6000, 6000)),
        (jpeg_claiming(_small_jpeg(), 65_000, 65_000), (65_000, 65_000)),
    ],
    ids=["png", "webp", "jpeg"],
)
def test_too_many_pixels_names_the_claimed_size(data: bytes, size: tuple[int, int]) -> None:
    # The size in the error shows faceflow's own header check fired, ahead of Pillow's.
    with pytest.raises(TooManyPixels) as caught:
        probe_image(data, DEFAULTS)
    details = caught.value.details
    assert (details["width"], details["height"]) == size
    assert details["max_pixels"] == (40_000_000 if size[0] == 65_000 else 25_000_000)


@pytest.mark.parametrize(
    "case", [c for c in hostile_inputs() if c.header_only], ids=lambda case: case.name
)
def test_header_problems_are_found_without_decoding(testdata: Path, case: HostileInput) -> None:
    with pytest.raises(FaceflowError) as caught:
        probe_image(case.make(testdata, DEFAULTS), DEFAULTS)
    assert caught.value.code == case.code


@pytest.mark.parametrize(
    "case", [c for c in hostile_inputs() if not c.header_only], ids=lambda case: case.name
)
def test_corrupt_pixel_data_passes_the_header_check(testdata: Path, case: HostileInput) -> None:
    header = probe_image(case.make(testdata, DEFAULTS), DEFAULTS)
    assert header.width_px > 0


def test_huge_png_header_is_well_formed_and_refused_before_decoding() -> None:
    data = png_claiming(50_000, 50_000)
    # The bytes are a valid header: with the limits lifted, the probe reads the claimed size.
    header = probe_image(data, PERMISSIVE)
    assert (header.width_px, header.height_px) == (50_000, 50_000)
    # Its IDAT holds one byte of pixels, so a decode would fail as truncated; too_many_pixels
    # proves the limit was applied before any decode, and 7.5 GB were never requested.
    with pytest.raises(TooManyPixels):
        decode_image(data, DEFAULTS)


def test_patched_jpeg_header_claims_the_patched_size(testdata: Path) -> None:
    data = jpeg_claiming((testdata / "obama_small.jpg").read_bytes(), 65_000, 65_000)
    header = probe_image(data, PERMISSIVE)
    assert (header.width_px, header.height_px) == (65_000, 65_000)


def test_pixels_are_checked_before_sides() -> None:
    # 20,000 × 20,000 breaks both rules; the documented answer is too_many_pixels.
    with pytest.raises(TooManyPixels):
        probe_image(png_claiming(20_000, 20_000), DEFAULTS)


def test_pillow_global_limit_is_restored(testdata: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Other code in the process (and other tests) must not inherit faceflow's budget.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 123_456_789)
    decode_image((testdata / "obama_small.jpg").read_bytes(), LimitSettings(max_pixels=100_000))
    assert Image.MAX_IMAGE_PIXELS == 123_456_789
    with pytest.raises(TooManyPixels):
        decode_image(png_claiming(50_000, 50_000), DEFAULTS)
    assert Image.MAX_IMAGE_PIXELS == 123_456_789


def test_pillow_bomb_check_is_the_second_line(
    testdata: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With faceflow's own size checks switched off, Pillow's (set to the same budget) still
    # refuses the file with the same typed error.
    monkeypatch.setattr(ingest, "_check_size", lambda _fmt, _w, _h, _limits: None)
    assert probe_image(png_claiming(4000, 4000), DEFAULTS).pixels == 16_000_000
    with pytest.raises(TooManyPixels):
        probe_image(png_claiming(50_000, 50_000), DEFAULTS)
    # Between the budget and twice the budget Pillow only warns; that warning must be an error.
    with pytest.raises(TooManyPixels):
        probe_image(png_claiming(6000, 6000), DEFAULTS)  # 36 MP against 25 MP


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_broken_exif_does_not_fail_a_good_image(testdata: Path) -> None:
    jpeg = (testdata / "obama_small.jpg").read_bytes()
    payload = b"Exif\x00\x00" + b"MM\x00*\x00\x00\x00\x08" + b"\xff" * 40
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    data = jpeg[:2] + app1 + jpeg[2:]
    image = decode_image(data, DEFAULTS)
    assert (image.source_width_px, image.source_height_px) == (320, 240)


def exif_of_bad_entries(entries: int) -> bytes:
    """An EXIF block (TIFF, little-endian) whose every entry claims more data than any file."""
    ifd = struct.pack("<H", entries) + b"".join(
        struct.pack("<HHLL", tag, 4, 2**28, 8) for tag in range(0x8000, 0x8000 + entries)
    )
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0)


def test_pillows_warnings_on_a_file_stay_out_of_the_servers_stderr() -> None:
    """Pillow warned once per bad EXIF entry, two lines on stderr each: a PNG's eXIf chunk of
    65,535 such entries (788 KB) wrote 13 MB to the server's log."""
    payload = b"Exif\x00\x00" + exif_of_bad_entries(5000)
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    jpeg = _small_jpeg()
    data = jpeg[:2] + app1 + jpeg[2:]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image = decode_image(data, DEFAULTS)
        probe_image(data, DEFAULTS)
    assert (image.source_width_px, image.source_height_px) == (64, 48)
    assert [str(warning.message) for warning in caught] == []


# Limits


def _jpeg_100x80() -> bytes:
    return encode(Image.new("RGB", (100, 80), (90, 120, 150)), "JPEG")


def _png_100x80() -> bytes:
    return encode(Image.new("RGB", (100, 80), (90, 120, 150)), "PNG")


@pytest.mark.parametrize(
    ("make", "limits", "error"),
    [
        # JPEG is held to max_pixels, PNG to max_pixels_lossless.
        (_jpeg_100x80, LimitSettings(max_pixels=8000, max_pixels_lossless=256), None),
        (_jpeg_100x80, LimitSettings(max_pixels=7999), TooManyPixels),
        (_png_100x80, LimitSettings(max_pixels=256, max_pixels_lossless=8000), None),
        (_png_100x80, LimitSettings(max_pixels_lossless=7999), TooManyPixels),
        # Sides are inclusive bounds.
        (_png_100x80, LimitSettings(min_side_px=80), None),
        (_png_100x80, LimitSettings(min_side_px=81), BadDimensions),
        (_png_100x80, LimitSettings(max_side_px=100), None),
        (_png_100x80, LimitSettings(max_side_px=99), BadDimensions),
    ],
)
def test_limits_are_inclusive_and_per_format(
    make: Callable[[], bytes], limits: LimitSettings, error: type[FaceflowError] | None
) -> None:
    data = make()
    if error is None:
        assert probe_image(data, limits).pixels == 8000
        assert decode_image(data, limits).rgb.shape == (80, 100, 3)
    else:
        with pytest.raises(error):
            probe_image(data, limits)
        with pytest.raises(error):
            decode_image(data, limits)


# Headers of real photos


@pytest.mark.parametrize(
    ("name", "fmt", "size"),
    [
        ("obama.jpg", ImageFormat.JPEG, (910, 1137)),
        ("biden.jpg", ImageFormat.JPEG, (970, 2204)),
        ("obama_rgba.png", ImageFormat.PNG, (626, 1200)),
        ("portrait_1.jpg", ImageFormat.WEBP, (764, 1146)),
    ],
)
def test_probe_reads_real_headers(
    testdata: Path, name: str, fmt: ImageFormat, size: tuple[int, int]
) -> None:
    header = probe_image((testdata / name).read_bytes(), DEFAULTS)
    assert header.format is fmt
    assert (header.width_px, header.height_px) == size
    assert (header.oriented_width_px, header.oriented_height_px) == size
    assert header.frame_count == 1


@pytest.mark.parametrize("name", ["obama.jpg", "obama_rgba.png", "portrait_1.jpg", "cat.jpg"])
def test_decoded_array_contract(testdata: Path, name: str) -> None:
    data = (testdata / name).read_bytes()
    image = decode_image(data, DEFAULTS)
    expected = load_rgb(data)
    assert image.rgb.dtype == np.uint8
    assert image.rgb.shape == (expected.height, expected.width, 3)
    assert image.rgb.flags.c_contiguous
    assert not image.rgb.flags.writeable
    assert (image.source_width_px, image.source_height_px) == expected.size
    assert image.scale == 1.0
    # RGB order: identical to Pillow's own RGB conversion of the same file.
    np.testing.assert_array_equal(image.rgb, np.asarray(expected))


# Colour modes


def _photo_rgb(testdata: Path) -> Pixels:
    return np.asarray(load_rgb(testdata / "obama_small.jpg"))


def _grey16(_testdata: Path) -> tuple[bytes, Pixels, float]:
    samples = np.array([[0xABCD, 0x00FF, 0xFF00, 0x1234]] * 16, dtype=">u2")
    samples = np.tile(samples, (1, 4))  # 16 × 16
    data = handmade_png(16, 16, bit_depth=16, colour_type=0, scanlines=samples.tobytes())
    # Shifting keeps the high byte: 0x00FF → 0x00 (clipping would give 0xFF).
    grey = (samples.astype(np.uint16) >> 8).astype(np.uint8)
    return data, np.dstack([grey, grey, grey]), 0


def _rgb16(_testdata: Path) -> tuple[bytes, Pixels, float]:
    samples = np.empty((16, 16, 3), dtype=">u2")
    samples[...] = (0xABCD, 0x1234, 0x00FF)
    data = handmade_png(16, 16, bit_depth=16, colour_type=2, scanlines=samples.tobytes())
    return data, np.full((16, 16, 3), (0xAB, 0x12, 0x00), dtype=np.uint8), 0


def _rgba16_opaque(_testdata: Path) -> tuple[bytes, Pixels, float]:
    samples = np.empty((16, 16, 4), dtype=">u2")
    samples[...] = (0xABCD, 0x1234, 0x00FF, 0xFFFF)
    data = handmade_png(16, 16, bit_depth=16, colour_type=6, scanlines=samples.tobytes())
    return data, np.full((16, 16, 3), (0xAB, 0x12, 0x00), dtype=np.uint8), 0


def _cmyk_jpeg(testdata: Path) -> tuple[bytes, Pixels, float]:
    rgb = _photo_rgb(testdata)
    data = encode(Image.fromarray(rgb).convert("CMYK"), "JPEG", quality=95)
    return data, rgb, 4.0


def _palette_png(testdata: Path) -> tuple[bytes, Pixels, float]:
    palette = Image.fromarray(_photo_rgb(testdata)).quantize(64)
    return encode(palette, "PNG"), np.asarray(palette.convert("RGB")), 0


def _palette_png_with_transparent_index(_testdata: Path) -> tuple[bytes, Pixels, float]:
    image = Image.new("P", (20, 20), 1)
    image.putpalette([0, 0, 255, 200, 30, 30] + [0] * (254 * 3))
    image.paste(0, (0, 0, 10, 20))  # left half: index 0, declared transparent
    expected = np.zeros((20, 20, 3), dtype=np.uint8)
    expected[:, :10] = 255
    expected[:, 10:] = (200, 30, 30)
    return encode(image, "PNG", transparency=0), expected, 0


def _la_png(_testdata: Path) -> tuple[bytes, Pixels, float]:
    grey = np.full((16, 48), 100, dtype=np.uint8)
    alpha = np.zeros((16, 48), dtype=np.uint8)
    alpha[:, 16:32] = 128
    alpha[:, 32:] = 255
    data = encode(Image.fromarray(np.dstack([grey, alpha])), "PNG")  # mode LA
    value = np.full((16, 48), 255.0)
    value[:, 16:32] = 100 * 128 / 255 + 255 * 127 / 255
    value[:, 32:] = 100
    out = np.round(value).astype(np.uint8)
    return data, np.dstack([out, out, out]), 1


def _rgba_png(testdata: Path) -> tuple[bytes, Pixels, float]:
    rgb = _photo_rgb(testdata)
    height, width = rgb.shape[:2]
    alpha = np.tile(np.linspace(0, 255, width).astype(np.uint8), (height, 1))
    data = encode(Image.fromarray(np.dstack([rgb, alpha])), "PNG")
    a = alpha[:, :, np.newaxis].astype(np.float64) / 255
    expected = np.round(rgb * a + 255 * (1 - a)).astype(np.uint8)
    return data, expected, 1


def _grey_jpeg(testdata: Path) -> tuple[bytes, Pixels, float]:
    grey = Image.fromarray(_photo_rgb(testdata)).convert("L")
    data = encode(grey, "JPEG", quality=95)
    g = np.asarray(grey)
    return data, np.dstack([g, g, g]), 2.0


def _bilevel_png(_testdata: Path) -> tuple[bytes, Pixels, float]:
    image = Image.new("1", (16, 16), 0)
    image.paste(1, (8, 0, 16, 16))
    expected = np.zeros((16, 16, 3), dtype=np.uint8)
    expected[:, 8:] = 255
    return encode(image, "PNG"), expected, 0


def _grey_png_with_transparent_value(_testdata: Path) -> tuple[bytes, Pixels, float]:
    image = Image.new("L", (16, 16), 40)
    image.paste(0, (0, 0, 8, 16))
    expected = np.full((16, 16, 3), 40, dtype=np.uint8)
    expected[:, :8] = 255
    return encode(image, "PNG", transparency=0), expected, 0


def _animated_gif(_testdata: Path) -> tuple[bytes, Pixels, float]:
    colours = [(220, 20, 60), (20, 200, 60), (30, 60, 220), (250, 250, 0)] * 5
    frames = [Image.new("RGB", (32, 32), colour) for colour in colours]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=40, loop=0)
    return data, np.full((32, 32, 3), colours[0], dtype=np.uint8), 0


def _animated_webp(_testdata: Path) -> tuple[bytes, Pixels, float]:
    colours = [(220, 20, 60), (20, 200, 60), (30, 60, 220)]
    frames = [Image.new("RGB", (32, 32), colour) for colour in colours]
    data = encode(
        frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True, duration=40
    )
    return data, np.full((32, 32, 3), colours[0], dtype=np.uint8), 0


@pytest.mark.parametrize(
    "build",
    [
        _grey16,
        _rgb16,
        _rgba16_opaque,
        _cmyk_jpeg,
        _palette_png,
        _palette_png_with_transparent_index,
        _la_png,
        _rgba_png,
        _grey_jpeg,
        _bilevel_png,
        _grey_png_with_transparent_value,
        _animated_gif,
        _animated_webp,
    ],
    ids=lambda build: build.__name__.lstrip("_"),
)
def test_every_mode_becomes_rgb(
    testdata: Path, build: Callable[[Path], tuple[bytes, Pixels, float]]
) -> None:
    data, expected, tolerance = build(testdata)
    image = decode_image(data, DEFAULTS)
    assert image.rgb.shape == expected.shape
    assert image.rgb.dtype == np.uint8
    if tolerance == 0:
        np.testing.assert_array_equal(image.rgb, expected)
    else:
        assert mean_abs_diff(image.rgb, expected) <= tolerance


def test_sixteen_bit_grey_is_shifted_not_clipped() -> None:
    data, _, _ = _grey16(Path())
    rgb = decode_image(data, DEFAULTS).rgb
    assert rgb[0, :4, 0].tolist() == [0xAB, 0x00, 0xFF, 0x12]


def test_gif_frame_count_is_not_scanned_but_webp_is_reported(testdata: Path) -> None:
    gif, _, _ = _animated_gif(testdata)
    webp, _, _ = _animated_webp(testdata)
    assert probe_image(gif, DEFAULTS).frame_count is None
    assert probe_image(webp, DEFAULTS).frame_count == 3


# EXIF orientation


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(testdata: Path, orientation: int) -> None:
    original = np.asarray(load_rgb(testdata / "rose_leslie.jpg"))  # 1280 × 799, not square
    data = exif_rotated_jpeg(testdata / "rose_leslie.jpg", orientation)

    header = probe_image(data, DEFAULTS)
    assert header.orientation == orientation
    stored = (799, 1280) if orientation >= 5 else (1280, 799)
    assert (header.width_px, header.height_px) == stored
    assert (header.oriented_width_px, header.oriented_height_px) == (1280, 799)

    image = decode_image(data, DEFAULTS)
    assert (image.source_width_px, image.source_height_px) == (1280, 799)
    assert image.rgb.shape == original.shape
    # Only JPEG re-encoding noise remains; a wrong flip or turn differs by tens of levels.
    assert mean_abs_diff(image.rgb, original) < 3.0


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_exif_orientation_is_applied_in_png_and_webp(testdata: Path, fmt: str) -> None:
    original = load_rgb(testdata / "obama_small.jpg")  # 320 × 240
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = original.transpose(Image.Transpose.ROTATE_90)
    data = encode(stored, fmt, exif=exif.tobytes(), lossless=True)
    image = decode_image(data, DEFAULTS)
    assert (image.source_width_px, image.source_height_px) == (320, 240)
    np.testing.assert_array_equal(image.rgb, np.asarray(original))


def test_exif_rotated_builder_really_rotates_the_stored_pixels(testdata: Path) -> None:
    data = exif_rotated_jpeg(testdata / "rose_leslie.jpg", 6)
    with Image.open(io.BytesIO(data)) as stored:
        assert stored.size == (799, 1280)
        assert stored.getexif()[0x0112] == 6


# Draft decoding


@pytest.mark.parametrize("name", ["biden.jpg", "rose_leslie.jpg", "two_people.jpg"])
@pytest.mark.parametrize("max_long_side_px", [100, 300, 640, 1000, 5000])
def test_draft_shrinks_as_far_as_allowed_and_reports_the_scale(
    testdata: Path, name: str, max_long_side_px: int
) -> None:
    data = (testdata / name).read_bytes()
    full = decode_image(data, DEFAULTS)
    image = decode_image(data, DEFAULTS, max_long_side_px=max_long_side_px)
    source_w, source_h = full.source_width_px, full.source_height_px
    source_long = max(source_w, source_h)

    assert (image.source_width_px, image.source_height_px) == (source_w, source_h)
    assert image.scale in (1.0, 2.0, 4.0, 8.0)
    assert max(image.width_px, image.height_px) >= min(max_long_side_px, source_long)
    # libjpeg rounds partial blocks up: decoded = ceil(source / scale).
    factor = int(image.scale)
    assert (image.width_px, image.height_px) == (-(-source_w // factor), -(-source_h // factor))
    assert abs(image.scale * image.width_px - source_w) < image.scale
    assert abs(image.scale * image.height_px - source_h) < image.scale
    # As small as allowed: the next power of two would go under the requested long side.
    if factor < 8:
        assert math.ceil(source_long / (2 * factor)) < max_long_side_px


def test_draft_to_640_shrinks_a_large_jpeg(testdata: Path) -> None:
    data = (testdata / "biden.jpg").read_bytes()  # 970 × 2204
    image = decode_image(data, DEFAULTS, max_long_side_px=640)
    assert image.scale > 1
    assert max(image.width_px, image.height_px) >= 640
    assert image.scale * image.height_px == pytest.approx(2204, abs=image.scale)
    # Same picture, just smaller: compare with a full decode reduced by the same factor.
    full = load_rgb(data)
    reduced = np.asarray(full.reduce(int(image.scale)))
    assert reduced.shape == image.rgb.shape
    assert mean_abs_diff(image.rgb, reduced) < 4.0


def test_draft_with_orientation_keeps_source_space(testdata: Path) -> None:
    data = exif_rotated_jpeg(testdata / "biden.jpg", 6)  # shown 970 × 2204, stored 2204 × 970
    image = decode_image(data, DEFAULTS, max_long_side_px=640)
    assert (image.source_width_px, image.source_height_px) == (970, 2204)
    assert image.scale == 2.0
    assert (image.width_px, image.height_px) == (485, 1102)


def test_other_formats_ignore_the_draft_hint(testdata: Path) -> None:
    image = decode_image((testdata / "obama_rgba.png").read_bytes(), DEFAULTS, max_long_side_px=64)
    assert image.scale == 1.0
    assert (image.width_px, image.height_px) == (626, 1200)


@functools.cache
def _lossless_copy(photo: Path, fmt: str) -> bytes:
    """``photo`` encoded in the lossless ``fmt``, once per module: the same bytes for every
    size a test drafts them to (a lossless WebP of biden.jpg is ≈ 1 s of a core)."""
    return encode(
        load_rgb(photo.read_bytes()), fmt, **({"lossless": True} if fmt == "WEBP" else {})
    )


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "GIF"])
@pytest.mark.parametrize("max_long_side_px", [300, 640, 1000, 5000])
def test_a_lossless_format_as_drafted_is_the_size_of_the_jpeg_draft(
    testdata: Path, fmt: str, max_long_side_px: int
) -> None:
    data = (testdata / "biden.jpg").read_bytes()  # 970 × 2204
    drafted = decode_image(data, DEFAULTS, max_long_side_px=max_long_side_px)
    other = _lossless_copy(testdata / "biden.jpg", fmt)
    full = decode_image(other, DEFAULTS, max_long_side_px=max_long_side_px)

    image = as_drafted(full, max_long_side_px)

    assert image.rgb.shape == drafted.rgb.shape
    assert image.scale == drafted.scale
    assert (image.source_width_px, image.source_height_px) == (970, 2204)
    assert not image.rgb.flags.writeable
    if fmt != "GIF":  # a palette of 256 colours is no match for the photo's
        assert mean_abs_diff(image.rgb, drafted.rgb) < 4.0


def test_as_drafted_leaves_a_drafted_jpeg_and_a_small_image_as_they_are(testdata: Path) -> None:
    drafted = decode_image((testdata / "biden.jpg").read_bytes(), DEFAULTS, max_long_side_px=640)
    small = decode_image((testdata / "obama_rgba.png").read_bytes(), DEFAULTS)  # 626 × 1200
    assert as_drafted(drafted, 100) is drafted
    assert as_drafted(small, 601) is small


def test_max_long_side_must_be_positive(testdata: Path) -> None:
    with pytest.raises(ValueError, match="positive"):
        decode_image((testdata / "cat.jpg").read_bytes(), DEFAULTS, max_long_side_px=0)


# Keeping alpha


def test_decode_rgba_keeps_transparency(testdata: Path) -> None:
    data, _, _ = _rgba_png(testdata)
    with Image.open(io.BytesIO(data)) as reference:
        expected = np.asarray(reference.convert("RGBA"))
    image = decode_rgba(data, DEFAULTS)
    assert image.format is ImageFormat.PNG
    assert not image.rgba.flags.writeable
    np.testing.assert_array_equal(image.rgba, expected)


@pytest.mark.parametrize(
    ("build", "alpha_values"),
    [(_palette_png_with_transparent_index, {0, 255}), (_la_png, {0, 128, 255})],
    ids=["palette_trns", "la"],
)
def test_decode_rgba_keeps_alpha_of_other_modes(
    testdata: Path, build: Callable[[Path], tuple[bytes, Pixels, float]], alpha_values: set[int]
) -> None:
    data, _, _ = build(testdata)
    rgba = decode_rgba(data, DEFAULTS).rgba
    assert set(np.unique(rgba[..., 3]).tolist()) == alpha_values


def test_decode_rgba_of_opaque_and_16_bit_images(testdata: Path) -> None:
    jpeg = decode_rgba((testdata / "obama_small.jpg").read_bytes(), DEFAULTS).rgba
    assert jpeg.shape == (240, 320, 4)
    assert (jpeg[..., 3] == 255).all()
    data, expected, _ = _grey16(testdata)
    grey = decode_rgba(data, DEFAULTS).rgba
    np.testing.assert_array_equal(grey[..., :3], expected)
    assert (grey[..., 3] == 255).all()


def test_decode_rgba_applies_orientation_and_limits(testdata: Path) -> None:
    data = exif_rotated_jpeg(testdata / "rose_leslie.jpg", 8)
    assert decode_rgba(data, DEFAULTS).rgba.shape == (799, 1280, 4)
    with pytest.raises(BadDimensions):
        decode_rgba(solid_png(15, 15), DEFAULTS)
    with pytest.raises(Undecodable):
        decode_rgba(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", b"\x00" * 3), DEFAULTS)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_the_embedded_colour_profile_comes_with_the_pixels(fmt: str) -> None:
    # The pixels are the file's numbers; whoever writes the photo back applies the profile.
    profile = matrix_icc_profile("Adobe RGB (1998) compatible")
    pixels = Image.new("RGB", (64, 48), (180, 120, 90))
    tagged, plain = io.BytesIO(), io.BytesIO()
    pixels.save(tagged, fmt, icc_profile=profile)
    pixels.save(plain, fmt)
    assert decode_image(tagged.getvalue(), LimitSettings()).icc_profile == profile
    assert decode_image(plain.getvalue(), LimitSettings()).icc_profile is None


def test_images_taller_than_a_band_convert_as_one_image() -> None:
    """Alpha, 16-bit grey and palette images are converted in bands of rows (one full-size copy
    at a time, not four): the bands must join into exactly the whole image's conversion."""
    height, width = 700, 37  # bands of 256 rows: two whole and a part
    rng = np.random.default_rng(7)
    rgba = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
    transparent = Image.fromarray(rgba, "RGBA")
    white = Image.new("RGBA", transparent.size, (255, 255, 255, 255))
    flattened = np.asarray(Image.alpha_composite(white, transparent).convert("RGB"))
    decoded = decode_image(encode(transparent, "PNG"), LimitSettings())
    assert np.array_equal(decoded.rgb, flattened)
    assert np.array_equal(decode_rgba(encode(transparent, "PNG"), LimitSettings()).rgba, rgba)

    deep = rng.integers(0, 65536, (height, width), dtype=np.uint16)
    grey = decode_image(encode(Image.fromarray(deep), "PNG"), LimitSettings()).rgb
    assert np.array_equal(grey, np.repeat((deep >> 8).astype(np.uint8)[:, :, None], 3, axis=2))

    palette = transparent.convert("RGB").quantize(64)
    expected = np.asarray(palette.convert("RGB").convert("RGBA"))
    assert np.array_equal(decode_rgba(encode(palette, "PNG"), LimitSettings()).rgba, expected)


@pytest.mark.parametrize(
    ("raised", "deterministic"),
    [
        (OSError("image file is truncated (3 bytes not processed)"), True),
        (OSError("decoder error -2"), True),
        (SyntaxError("not a JPEG file"), True),
        (ValueError("tile cannot extend outside image"), True),
        (OSError(errno.EMFILE, "Too many open files"), False),
        (OSError(errno.ENOMEM, "Cannot allocate memory"), False),
        (KeyError("a hostile file tripping a plugin"), True),  # still the client's bytes: 4xx
    ],
    ids=["truncated", "decoder", "syntax", "value", "emfile", "enomem", "unexpected"],
)
def test_only_an_error_of_the_bytes_is_undecodable(
    testdata: Path, monkeypatch: pytest.MonkeyPatch, raised: Exception, deterministic: bool
) -> None:
    # An error of the moment answered as undecodable was cached with it, for the cache's TTL.
    def load(image: ImageFile.ImageFile) -> None:
        raise raised

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    with pytest.raises(FaceflowError) as caught:
        decode_image((testdata / "obama_small.jpg").read_bytes(), DEFAULTS)
    error = caught.value
    assert error.deterministic is deterministic
    assert (error.code, error.status) == (
        ("undecodable", 422) if deterministic else ("internal", 500)
    )
    assert error.__cause__ is raised


def test_memory_running_out_while_decoding_is_not_undecodable(
    testdata: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def load(image: ImageFile.ImageFile) -> None:
        raise MemoryError

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    with pytest.raises(MemoryError):  # a 500 from the inference pool, not cached
        decode_image((testdata / "obama_small.jpg").read_bytes(), DEFAULTS)


_DECODE_PEAK = """
import sys
from faceflow.config import LimitSettings
from faceflow.imaging.ingest import decode_image

def peak_kib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

data = sys.stdin.buffer.read()
before = peak_kib()
image = decode_image(data, LimitSettings(), max_long_side_px=640)
assert (image.width_px, image.height_px) == (4000, 5000), image.rgb.shape
print(peak_kib() - before)
"""


def test_a_webp_decoder_is_let_go_before_its_pixels_are_converted() -> None:
    # Pillow keeps libwebp's animation decoder (two canvases of 4 bytes a pixel) and the frame's
    # bytes (4 more) until the image is closed, still or animated; held through the orientation
    # and the conversion to RGB they took the peak from 16 to 22 bytes a pixel: 555 MB for a
    # 1 KB upload of 25 MP. Measured in a process of its own, by its resident set's high-water
    # mark (VmHWM: ru_maxrss would keep pytest's, the process it was forked from).
    exif = Image.Exif()
    exif[EXIF_ORIENTATION_TAG] = 6
    width, height = 5000, 4000
    webp = encode(Image.new("RGB", (width, height)), "WEBP", lossless=True, exif=exif.tobytes())
    assert len(webp) < 2048
    run = subprocess.run(
        [sys.executable, "-c", _DECODE_PEAK],
        input=webp,
        capture_output=True,
        check=True,
        timeout=120,
        # The faceflow under test, wherever the interpreter's own install points.
        env={**os.environ, "PYTHONPATH": str(Path(ingest.__file__).parents[2])},
    )
    peak_bytes = int(run.stdout) * 1024
    # Measured: 16.1 bytes a pixel now (the canvases, the frame's bytes and Pillow's image at
    # once, as it loads), 22.2 with the decoder kept.
    assert peak_bytes < 19 * width * height, f"{peak_bytes / (width * height):.1f} B/px"


def _png_with_chunk(chunk: bytes) -> bytes:
    """A valid 64 px PNG with ``chunk`` right after its IHDR (the signature and IHDR: 33 bytes)."""
    plain = handmade_png(64, 64, scanlines=b"\x80" * (64 * 64 * 3))
    return plain[:33] + chunk + plain[33:]


_TWO_MB_OF_ZEROS = zlib.compress(b"\0" * 2_000_000, 9)

# What Pillow refuses with a ValueError as it reads a PNG: each a client's upload of a few KB.
_PNGS_PILLOW_REFUSES_WITH_VALUE_ERROR = {
    "iccp_over_max_text_chunk": png_chunk(b"iCCP", b"icc\0\0" + _TWO_MB_OF_ZEROS),
    "ztxt_raw_exif_over_max_text_chunk": png_chunk(
        b"zTXt", b"Raw profile type exif\0\0" + _TWO_MB_OF_ZEROS
    ),
    "itxt_xmp_over_max_text_chunk": png_chunk(
        b"iTXt", b"XML:com.adobe.xmp\0\1\0\0\0" + _TWO_MB_OF_ZEROS
    ),
    "truncated_trns": png_chunk(b"tRNS", b"\0"),
    "truncated_gama": png_chunk(b"gAMA", b"\0"),
}


@pytest.mark.parametrize(
    "chunk",
    list(_PNGS_PILLOW_REFUSES_WITH_VALUE_ERROR.values()),
    ids=list(_PNGS_PILLOW_REFUSES_WITH_VALUE_ERROR),
)
def test_a_png_pillow_refuses_is_logged_as_one_quiet_line(
    chunk: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    # Each was logged at warning with its 2 KB traceback, as if a bug here: a client could fill
    # the server's log with tracebacks, 2.5 KB for every 2 KB it uploaded.
    with (
        caplog.at_level(logging.DEBUG, logger="faceflow.imaging.ingest"),
        pytest.raises(Undecodable),
    ):
        decode_image(_png_with_chunk(chunk), DEFAULTS)
    records = [r for r in caplog.records if r.name == "faceflow.imaging.ingest"]
    assert [(r.levelno, r.getMessage(), bool(r.exc_info)) for r in records] == [
        (logging.DEBUG, "undecodable png image (ValueError)", False)
    ]


@pytest.mark.parametrize(
    "chunk",
    list(_PNGS_PILLOW_REFUSES_WITH_VALUE_ERROR.values()),
    ids=list(_PNGS_PILLOW_REFUSES_WITH_VALUE_ERROR),
)
def test_pillow_refuses_these_pngs_with_a_value_error_of_its_png_reader(chunk: bytes) -> None:
    # Pins the Pillow behaviour the quiet line above relies on (ingest._refused_by_a_reader): a
    # ValueError raised in PngImagePlugin. If an upgrade raises something else from elsewhere,
    # this fails, rather than the log getting a traceback per upload again unnoticed.
    with (
        pytest.raises(ValueError) as raised,  # noqa: PT011 - Pillow gives nothing narrower
        Image.open(io.BytesIO(_png_with_chunk(chunk)), formats=["PNG"]) as image,
    ):
        image.load()
    innermost = raised.tb
    while innermost.tb_next is not None:
        innermost = innermost.tb_next
    assert innermost.tb_frame.f_globals["__name__"] == "PIL.PngImagePlugin"


def test_a_value_error_of_this_module_is_still_logged_loudly(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A ValueError raised outside Pillow's readers may be a bug here: it keeps its traceback.
    def broken(image: Image.Image) -> NDArray[np.uint8]:
        raise ValueError("a bug in the conversion")

    monkeypatch.setattr(ingest, "_to_rgb_array", broken)
    with (
        caplog.at_level(logging.DEBUG, logger="faceflow.imaging.ingest"),
        pytest.raises(Undecodable),
    ):
        decode_image(solid_png(64, 64), DEFAULTS)
    (record,) = [r for r in caplog.records if r.name == "faceflow.imaging.ingest"]
    assert record.levelno == logging.WARNING
    assert record.exc_info is not None


# Set by a fork in this process as it starts, before ingest's own hook (hooks registered later
# run first): the moment a test knows a fork is under way.
_FORK_STARTED: list[threading.Event] = []


def _announce_fork() -> None:
    for started in _FORK_STARTED:
        started.set()


os.register_at_fork(before=_announce_fork)


def test_a_child_forked_while_another_thread_decodes_can_decode() -> None:
    """A child forked while another thread held the decoder's lock (Pillow's limit and warnings
    changed) inherited it held, by a thread it does not have: its first decode waited forever.
    Now the fork waits for that decode to leave."""
    inside, leave, started = threading.Event(), threading.Event(), threading.Event()

    def decode_in_thread() -> None:
        with ingest._pillow_guard(1_000_000):
            inside.set()
            leave.wait(30)

    holder = threading.Thread(target=decode_in_thread)

    def release_once_forking() -> None:
        started.wait(30)
        leave.set()

    releaser = threading.Thread(target=release_once_forking)
    holder.start()
    releaser.start()
    inside.wait(60)
    _FORK_STARTED.append(started)
    try:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                decode_image(solid_png(32, 32), LimitSettings())
                code = 0
            finally:
                os._exit(code)
    finally:
        _FORK_STARTED.remove(started)
        leave.set()
    holder.join()
    releaser.join()
    with os.fdopen(os.pidfd_open(pid)) as child:
        ended = select.select([child], [], [], 30)[0]
    if not ended:
        os.kill(pid, signal.SIGKILL)
    status = os.waitpid(pid, 0)[1]
    assert ended, "the child's first decode hung"
    assert os.waitstatus_to_exitcode(status) == 0
