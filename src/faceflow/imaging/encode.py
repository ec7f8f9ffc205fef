"""Encode RGB/RGBA arrays as JPEG or PNG, optionally with a DPI and a file-size cap.

Outputs carry no metadata from the input (no EXIF, no GPS, no ICC profile): they are built from
pixel arrays only. The DPI, when given, is written where printers and photo kiosks read it: the
JFIF density (dots per inch) for JPEG, the pHYs chunk (pixels per metre) for PNG.
"""

from __future__ import annotations

import io
import math

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from faceflow.errors import InvalidParameter
from faceflow.imaging.formats import OutputFormat

JPEG_MAX_QUALITY = 95
"""Above 95 libjpeg's output grows a lot for no visible gain (Pillow's own advice)."""
JPEG_MIN_QUALITY = 10
"""Below 10 a face photo breaks into blocks; a size cap that needs less is refused."""
FULL_CHROMA_MIN_QUALITY = 50
"""The lowest quality a size cap takes with full colour (4:4:4) before it gives the colour up.

Measured on the ID photos (China 1-inch) of the test and dev-set portraits: at the same byte cap
(40, 20, 12 KB), 4:4:4 at the quality it reaches (94, 80, 54–56) was closer to the rendered pixels
than 4:2:0 at its higher one (95, 86, 66), at the cut-out's edges and over the whole photo, on red
and on white. Below 50 nothing was measured, so a cap that tight keeps halved colour."""

_MAX_DPI = 65_535  # JFIF stores the density in 16 bits
# File-size caps count kilobytes of 1,000 bytes (see encode_jpeg_max_kb).
BYTES_PER_KB = 1000


def encode_image(
    pixels: NDArray[np.uint8],
    fmt: OutputFormat,
    *,
    quality: int = 90,
    dpi: int | None = None,
    full_chroma: bool = False,
) -> bytes:
    """Encode an ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA uint8 array.

    PNG keeps alpha. JPEG has no alpha channel, and flattening would silently pick a background
    for the caller, so RGBA with JPEG is refused: composite first or ask for PNG. ``quality``
    (1–100) applies to JPEG only; JPEG uses optimised Huffman tables and 4:2:0 chroma subsampling
    (colour at half the resolution each way), or with ``full_chroma`` 4:4:4: an ID photo's
    cut-out edge against a saturated background is a sharp colour edge, which 4:2:0 smears into a
    two-pixel fringe (on red, ΔE over 10 at 1 % of the edge's pixels at quality 95).

    Raises:
        InvalidParameter: RGBA with JPEG, ``quality`` outside 1–100, ``dpi`` outside 1–65535.
        ValueError: ``pixels`` is not a uint8 array shaped ``(H, W, 3)`` or ``(H, W, 4)``.
    """
    image = _to_pillow(pixels)
    _check_dpi(dpi)
    if fmt is OutputFormat.JPEG:
        if image.mode == "RGBA":
            raise InvalidParameter(
                "JPEG cannot store transparency; use PNG or put the image on a background first"
            )
        if not 1 <= quality <= 100:
            raise InvalidParameter(f"JPEG quality must be between 1 and 100, got {quality}")
        return _jpeg(image, quality, dpi, full_chroma=full_chroma)
    return _png(image, dpi)


def encode_jpeg_max_kb(
    rgb: NDArray[np.uint8], max_kb: int, *, dpi: int | None = None, full_chroma: bool = False
) -> tuple[bytes, int]:
    """Encode ``rgb`` as the best JPEG that fits in ``max_kb`` × 1,000 bytes.

    A kilobyte here is 1,000 bytes, the smaller of the two readings, so a portal that counts KB
    as either 1,000 or 1,024 bytes accepts the file.

    Returns the bytes and the quality used: the highest quality from 95 down to 10 whose output
    fits, found by binary search (8 or 9 encodes unless 95 fits at once). The image is never
    resized and the file never padded, so the result is usually somewhat under the cap. With
    ``full_chroma`` the search is first made at 4:4:4 down to :data:`FULL_CHROMA_MIN_QUALITY`,
    and only a cap that does not fit there is searched at 4:2:0.

    Raises:
        InvalidParameter: ``max_kb`` < 1, or even quality 10 does not fit; then ``details`` has
            ``min_achievable_kb``, the smallest size possible without resizing.
        ValueError: ``rgb`` is not a uint8 ``(H, W, 3)`` array.
    """
    if max_kb < 1:
        raise InvalidParameter(f"max_kb must be at least 1, got {max_kb}")
    image = _to_pillow(rgb)
    if image.mode != "RGB":
        raise ValueError(f"expected an (H, W, 3) RGB array, got shape {rgb.shape}")
    _check_dpi(dpi)
    cap_bytes = max_kb * BYTES_PER_KB
    if full_chroma:
        found = _highest_fitting(image, cap_bytes, dpi, FULL_CHROMA_MIN_QUALITY, full_chroma=True)
        if found is not None:
            return found
    found = _highest_fitting(image, cap_bytes, dpi, JPEG_MIN_QUALITY, full_chroma=False)
    if found is None:
        smallest = _jpeg(image, JPEG_MIN_QUALITY, dpi, full_chroma=False)
        smallest_kb = math.ceil(len(smallest) / BYTES_PER_KB)
        raise InvalidParameter(
            f"cannot fit a {image.width}×{image.height} JPEG in {max_kb} KB (1 KB = 1,000 "
            f"bytes); the smallest possible at this size is {smallest_kb} KB",
            {"parameter": "max_kb", "max_kb": max_kb, "min_achievable_kb": smallest_kb},
        )
    return found


def _highest_fitting(
    image: Image.Image, cap_bytes: int, dpi: int | None, floor: int, *, full_chroma: bool
) -> tuple[bytes, int] | None:
    """The JPEG at the highest quality from ``floor`` to 95 within ``cap_bytes``, and that
    quality; ``None`` if even ``floor`` is too big."""
    best = _jpeg(image, JPEG_MAX_QUALITY, dpi, full_chroma=full_chroma)
    if len(best) <= cap_bytes:
        return best, JPEG_MAX_QUALITY
    # Invariant: `fits` is known to fit (or is the untested floor), `too_big` is known not to.
    # JPEG size grows with quality almost monotonically; the search returns a quality that fits
    # whose next step up was encoded and did not.
    fits, too_big = floor, JPEG_MAX_QUALITY
    fitting: bytes | None = None
    while too_big - fits > 1:
        middle = (fits + too_big) // 2
        candidate = _jpeg(image, middle, dpi, full_chroma=full_chroma)
        if len(candidate) <= cap_bytes:
            fits, fitting = middle, candidate
        else:
            too_big = middle
    if fitting is None:
        fitting = _jpeg(image, floor, dpi, full_chroma=full_chroma)
        if len(fitting) > cap_bytes:
            return None
    return fitting, fits


def decoded_jpeg(data: bytes) -> NDArray[np.uint8]:
    """A JPEG this module wrote, back to its RGB pixels as a reader of the file sees them."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _to_pillow(pixels: NDArray[np.uint8]) -> Image.Image:
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] not in (3, 4):
        raise ValueError(
            f"expected a uint8 (H, W, 3) or (H, W, 4) array, got {pixels.dtype} {pixels.shape}"
        )
    # Pillow infers RGB or RGBA from the channel count.
    return Image.fromarray(np.ascontiguousarray(pixels))


def _check_dpi(dpi: int | None) -> None:
    if dpi is not None and not 1 <= dpi <= _MAX_DPI:
        raise InvalidParameter(f"dpi must be between 1 and {_MAX_DPI}, got {dpi}")


def _jpeg(image: Image.Image, quality: int, dpi: int | None, *, full_chroma: bool = False) -> bytes:
    out = io.BytesIO()
    subsampling = "4:4:4" if full_chroma else "4:2:0"
    if dpi is None:
        image.save(out, "JPEG", quality=quality, optimize=True, subsampling=subsampling)
    else:
        image.save(
            out, "JPEG", quality=quality, optimize=True, subsampling=subsampling, dpi=(dpi, dpi)
        )
    return out.getvalue()


def _png(image: Image.Image, dpi: int | None) -> bytes:
    out = io.BytesIO()
    # No optimize=True: it compresses a few percent better at several times the CPU cost.
    if dpi is None:
        image.save(out, "PNG")
    else:
        image.save(out, "PNG", dpi=(dpi, dpi))
    return out.getvalue()


def jpeg_thumbnail(data: bytes, long_side_px: int) -> bytes:
    """A JPEG of at most ``long_side_px`` on the long side of the image file ``data``.

    Only for bytes faceflow pulled and verified itself (the example photos): it decodes without
    the ingest limits an upload goes through (:mod:`faceflow.imaging.ingest`).
    """
    with Image.open(io.BytesIO(data)) as image:
        small = image.convert("RGB")
    small.thumbnail((long_side_px, long_side_px), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    small.save(out, "JPEG", quality=82, optimize=True)
    return out.getvalue()
