"""Encoding: formats, DPI metadata, alpha, and the JPEG file-size cap."""

from __future__ import annotations

import io
import math
import struct
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image, JpegImagePlugin

from faceflow.config import LimitSettings
from faceflow.errors import InvalidParameter
from faceflow.imaging.encode import (
    FULL_CHROMA_MIN_QUALITY,
    JPEG_MAX_QUALITY,
    JPEG_MIN_QUALITY,
    encode_image,
    encode_jpeg_max_kb,
)
from faceflow.imaging.formats import OutputFormat
from faceflow.imaging.ingest import decode_image, decode_rgba
from tests.fixtures.images import exif_rotated_jpeg, load_rgb

DEFAULTS = LimitSettings()


@pytest.fixture(scope="module")
def photo(testdata: Path) -> NDArray[np.uint8]:
    """A real 970 × 2204 photo as RGB."""
    return np.asarray(load_rgb(testdata / "biden.jpg"))


def _rgba(height: int = 40, width: int = 60) -> NDArray[np.uint8]:
    rng = np.random.default_rng(7)
    rgba = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
    rgba[:10, :, 3] = 0  # fully transparent band
    return rgba


def _jfif_density(jpeg: bytes) -> tuple[int, int, int]:
    """(units, x density, y density) from the JFIF APP0 segment right after SOI."""
    assert jpeg[2:4] == b"\xff\xe0"
    assert jpeg[6:11] == b"JFIF\x00"
    units = jpeg[13]
    x_density, y_density = struct.unpack_from(">HH", jpeg, 14)
    return units, x_density, y_density


def _png_phys(png: bytes) -> tuple[int, int, int] | None:
    """(x pixels per unit, y pixels per unit, unit) from the pHYs chunk, if any."""
    pos = 8
    while pos < len(png):
        (length,) = struct.unpack_from(">I", png, pos)
        kind = png[pos + 4 : pos + 8]
        if kind == b"pHYs":
            x, y, unit = struct.unpack_from(">IIB", png, pos + 8)
            return x, y, unit
        pos += 12 + length
    return None


# Formats and round trips


def test_png_is_lossless_for_rgb(photo: NDArray[np.uint8]) -> None:
    crop = photo[:300, :200]
    png = encode_image(crop, OutputFormat.PNG)
    assert png.startswith(b"\x89PNG")
    np.testing.assert_array_equal(decode_image(png, DEFAULTS).rgb, crop)


def test_png_keeps_alpha() -> None:
    rgba = _rgba()
    png = encode_image(rgba, OutputFormat.PNG)
    with Image.open(io.BytesIO(png)) as image:
        assert image.mode == "RGBA"
    np.testing.assert_array_equal(decode_rgba(png, DEFAULTS).rgba, rgba)


def test_jpeg_round_trip_is_close(photo: NDArray[np.uint8]) -> None:
    jpeg = encode_image(photo, OutputFormat.JPEG, quality=90)
    assert jpeg.startswith(b"\xff\xd8\xff")
    decoded = decode_image(jpeg, DEFAULTS).rgb
    assert decoded.shape == photo.shape
    diff = np.abs(decoded.astype(np.int16) - photo.astype(np.int16)).mean()
    assert diff < 3.0


def test_quality_changes_the_size(photo: NDArray[np.uint8]) -> None:
    low = encode_image(photo, OutputFormat.JPEG, quality=30)
    high = encode_image(photo, OutputFormat.JPEG, quality=90)
    assert len(low) < len(high)


def test_jpeg_refuses_alpha() -> None:
    with pytest.raises(InvalidParameter, match="transparency"):
        encode_image(_rgba(), OutputFormat.JPEG)


def test_input_metadata_never_reaches_the_output(testdata: Path) -> None:
    # The source carries EXIF; the encoder works from pixels only, so none of it is copied.
    rotated = exif_rotated_jpeg(testdata / "obama_small.jpg", 6)
    rgb = decode_image(rotated, DEFAULTS).rgb
    for fmt in OutputFormat:
        with Image.open(io.BytesIO(encode_image(rgb, fmt))) as image:
            assert len(image.getexif()) == 0
            assert "icc_profile" not in image.info


def test_encoder_accepts_read_only_and_non_contiguous_arrays(photo: NDArray[np.uint8]) -> None:
    view = photo[::2, ::3]  # strided view of a read-only array
    assert not view.flags.c_contiguous
    png = encode_image(view, OutputFormat.PNG)
    np.testing.assert_array_equal(decode_image(png, DEFAULTS).rgb, view)


@pytest.mark.parametrize("fmt", list(OutputFormat))
def test_output_format_mime_types(fmt: OutputFormat) -> None:
    assert fmt.mime_type == {"jpeg": "image/jpeg", "png": "image/png"}[fmt.value]


# DPI


@pytest.mark.parametrize("dpi", [72, 300, 350, 600])
def test_jpeg_dpi_is_written_as_jfif_density(photo: NDArray[np.uint8], dpi: int) -> None:
    jpeg = encode_image(photo[:100, :100], OutputFormat.JPEG, dpi=dpi)
    assert _jfif_density(jpeg) == (1, dpi, dpi)  # unit 1: dots per inch
    with Image.open(io.BytesIO(jpeg)) as image:
        assert image.info["dpi"] == (dpi, dpi)


@pytest.mark.parametrize("dpi", [72, 300, 350, 600])
def test_png_dpi_is_written_as_phys(photo: NDArray[np.uint8], dpi: int) -> None:
    png = encode_image(photo[:100, :100], OutputFormat.PNG, dpi=dpi)
    per_metre = round(dpi / 0.0254)
    assert _png_phys(png) == (per_metre, per_metre, 1)  # unit 1: metre
    with Image.open(io.BytesIO(png)) as image:
        assert tuple(round(v) for v in image.info["dpi"]) == (dpi, dpi)


def test_rgba_png_dpi() -> None:
    png = encode_image(_rgba(), OutputFormat.PNG, dpi=300)
    assert _png_phys(png) == (11811, 11811, 1)


def test_no_dpi_means_no_density() -> None:
    rgb = _rgba()[..., :3]
    assert _jfif_density(encode_image(rgb, OutputFormat.JPEG))[0] == 0  # aspect ratio only
    assert _png_phys(encode_image(rgb, OutputFormat.PNG)) is None


# Parameter checks


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"quality": 0}, "quality"),
        ({"quality": 101}, "quality"),
        ({"dpi": 0}, "dpi"),
        ({"dpi": 70_000}, "dpi"),
    ],
)
def test_bad_parameters_are_invalid(kwargs: dict[str, int], match: str) -> None:
    rgb = _rgba()[..., :3]
    with pytest.raises(InvalidParameter, match=match):
        encode_image(
            rgb, OutputFormat.JPEG, quality=kwargs.get("quality", 90), dpi=kwargs.get("dpi")
        )


@pytest.mark.parametrize(
    "pixels",
    [
        np.zeros((8, 8), dtype=np.uint8),
        np.zeros((8, 8, 2), dtype=np.uint8),
        np.zeros((8, 8, 5), dtype=np.uint8),
        np.zeros((8, 8, 3), dtype=np.uint16),
        np.zeros((8, 8, 3), dtype=np.float32),
    ],
    ids=["2d", "2ch", "5ch", "uint16", "float32"],
)
def test_wrong_arrays_are_programming_errors(pixels: NDArray[np.uint8]) -> None:
    for fmt in OutputFormat:
        with pytest.raises(ValueError, match="uint8"):
            encode_image(pixels, fmt)


# File-size cap


@pytest.mark.parametrize("max_kb", [30, 60, 120, 200])
def test_max_kb_picks_the_highest_quality_that_fits(photo: NDArray[np.uint8], max_kb: int) -> None:
    data, quality = encode_jpeg_max_kb(photo, max_kb, dpi=300)
    assert len(data) <= max_kb * 1000
    assert JPEG_MIN_QUALITY <= quality <= JPEG_MAX_QUALITY
    # The very next quality step no longer fits (unless the top quality already did).
    if quality < JPEG_MAX_QUALITY:
        bigger = encode_image(photo, OutputFormat.JPEG, quality=quality + 1, dpi=300)
        assert len(bigger) > max_kb * 1000
    # It is the same image, neither resized nor padded, and carries the DPI.
    decoded = decode_image(data, DEFAULTS).rgb
    assert decoded.shape == photo.shape
    assert data == encode_image(photo, OutputFormat.JPEG, quality=quality, dpi=300)
    assert _jfif_density(data) == (1, 300, 300)


def test_generous_cap_keeps_top_quality(photo: NDArray[np.uint8]) -> None:
    data, quality = encode_jpeg_max_kb(photo[:200, :200], 5000, dpi=None)
    assert quality == JPEG_MAX_QUALITY
    assert data == encode_image(photo[:200, :200], OutputFormat.JPEG, quality=JPEG_MAX_QUALITY)


def test_impossible_cap_names_the_smallest_achievable_size(photo: NDArray[np.uint8]) -> None:
    with pytest.raises(InvalidParameter) as caught:
        encode_jpeg_max_kb(photo, 1, dpi=None)
    error = caught.value
    assert error.code == "invalid_parameter"
    smallest = encode_image(photo, OutputFormat.JPEG, quality=JPEG_MIN_QUALITY)
    expected_kb = math.ceil(len(smallest) / 1000)
    assert expected_kb > 1
    assert error.details == {"parameter": "max_kb", "max_kb": 1, "min_achievable_kb": expected_kb}
    assert f"{expected_kb} KB" in error.message


def test_cap_exactly_at_the_lowest_quality_is_accepted(photo: NDArray[np.uint8]) -> None:
    smallest = encode_image(photo, OutputFormat.JPEG, quality=JPEG_MIN_QUALITY)
    max_kb = math.ceil(len(smallest) / 1000)
    data, quality = encode_jpeg_max_kb(photo, max_kb, dpi=None)
    assert len(data) <= max_kb * 1000
    assert quality >= JPEG_MIN_QUALITY


@pytest.mark.parametrize("max_kb", [0, -5])
def test_non_positive_cap_is_invalid(photo: NDArray[np.uint8], max_kb: int) -> None:
    with pytest.raises(InvalidParameter, match="max_kb"):
        encode_jpeg_max_kb(photo, max_kb, dpi=None)


def test_cap_refuses_rgba() -> None:
    with pytest.raises(ValueError, match="RGB"):
        encode_jpeg_max_kb(_rgba(), 100, dpi=None)


def test_full_chroma_keeps_colour_at_full_resolution(photo: NDArray[np.uint8]) -> None:
    halved = encode_image(photo, OutputFormat.JPEG, quality=95)
    full = encode_image(photo, OutputFormat.JPEG, quality=95, full_chroma=True)

    # Pillow's sampling: 0 is 4:4:4, 2 is 4:2:0.
    assert JpegImagePlugin.get_sampling(Image.open(io.BytesIO(halved))) == 2
    assert JpegImagePlugin.get_sampling(Image.open(io.BytesIO(full))) == 0


def test_max_kb_with_full_chroma_halves_colour_only_for_a_cap_that_needs_it(
    photo: NDArray[np.uint8],
) -> None:
    """A cap 4:4:4 meets at quality 50 or more keeps full colour; a tighter one falls back to
    4:2:0 rather than being refused."""
    floor_full = encode_image(
        photo, OutputFormat.JPEG, quality=FULL_CHROMA_MIN_QUALITY, full_chroma=True
    )
    roomy_kb = math.ceil(len(floor_full) / 1000) + 20
    tight_kb = math.ceil(len(floor_full) / 1000) - 5

    roomy, roomy_quality = encode_jpeg_max_kb(photo, roomy_kb, full_chroma=True)
    tight, tight_quality = encode_jpeg_max_kb(photo, tight_kb, full_chroma=True)

    assert JpegImagePlugin.get_sampling(Image.open(io.BytesIO(roomy))) == 0
    assert roomy_quality >= FULL_CHROMA_MIN_QUALITY
    assert len(roomy) <= roomy_kb * 1000
    assert JpegImagePlugin.get_sampling(Image.open(io.BytesIO(tight))) == 2
    assert len(tight) <= tight_kb * 1000
    assert tight == encode_image(photo, OutputFormat.JPEG, quality=tight_quality)
