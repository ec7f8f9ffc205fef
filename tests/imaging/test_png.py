"""The fast PNG writer: any PNG reader (Pillow, OpenCV) gets the exact pixels back."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from faceflow.imaging.png import encode_png_fast


def _pixels(height: int, width: int, channels: int) -> NDArray[np.uint8]:
    rng = np.random.default_rng(11)
    pixels = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
    pixels[: height // 3] = 0  # a transparent band, as around a cut-out
    return pixels


@pytest.mark.parametrize(
    ("height", "width", "channels", "mode"),
    [
        (37, 53, 4, "RGBA"),
        (40, 60, 3, "RGB"),
        (1, 1, 4, "RGBA"),
        (1, 9, 3, "RGB"),
        (9, 1, 4, "RGBA"),
    ],
)
def test_pillow_reads_back_the_exact_pixels(
    height: int, width: int, channels: int, mode: str
) -> None:
    pixels = _pixels(height, width, channels)

    with Image.open(io.BytesIO(encode_png_fast(pixels)), formats=["PNG"]) as image:
        image.load()
        assert image.mode == mode
        assert np.array_equal(np.asarray(image), pixels)


def test_opencv_reads_back_the_exact_pixels() -> None:
    # libpng checks every chunk's CRC and the zlib stream's checksum.
    pixels = _pixels(64, 48, 4)

    decoded = cv2.imdecode(np.frombuffer(encode_png_fast(pixels), np.uint8), cv2.IMREAD_UNCHANGED)

    assert decoded is not None
    assert np.array_equal(cv2.cvtColor(decoded, cv2.COLOR_BGRA2RGBA), pixels)


def test_a_smooth_image_compresses() -> None:
    # The "up" filter turns rows that repeat the one above into zeros.
    ramp = np.repeat(np.arange(200, dtype=np.uint8)[None, :, None], 4, axis=2)
    pixels = np.ascontiguousarray(np.repeat(ramp, 300, axis=0))

    assert len(encode_png_fast(pixels)) < pixels.nbytes // 20


@pytest.mark.parametrize(
    "pixels",
    [
        np.zeros((4, 4), np.uint8),
        np.zeros((4, 4, 2), np.uint8),
        np.zeros((4, 4, 4), np.uint16),
        np.zeros((0, 4, 4), np.uint8),
    ],
)
def test_refuses_what_is_not_rgb_or_rgba_bytes(pixels: NDArray[np.generic]) -> None:
    with pytest.raises(ValueError, match="pixel"):
        encode_png_fast(pixels)  # type: ignore[arg-type]
