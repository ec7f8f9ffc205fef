"""Safe ingest: untrusted bytes in, a checked header or an RGB array out.

Order of checks, cheapest first, and all of them before a single pixel is decoded:

1. empty → :class:`EmptyInput`; over ``limits.max_upload_bytes`` → :class:`TooLarge`;
2. magic bytes → :class:`UnsupportedFormat` (see :func:`sniff_format`);
3. the size the header claims, read from the bytes by :func:`read_dimensions` and again by
   Pillow's lazy ``Image.open`` restricted to the sniffed format: pixel count over the format's
   budget (``max_pixels`` for JPEG, ``max_pixels_lossless`` for PNG/WebP/GIF) →
   :class:`TooManyPixels`; then a side outside ``min_side_px … max_side_px`` →
   :class:`BadDimensions`. Pixels are checked first, so an image that breaks both rules (a JPEG
   claiming 65,000 × 65,000) is reported as ``too_many_pixels``;
4. for a JPEG, its structure (see :func:`~faceflow.imaging.dimensions.jpeg_layout`): more
   progressive scans than ``limits.max_jpeg_scans``, or more marker segments than any camera
   writes → :class:`TooManyScans` (each scan is a pass of the decoder over the whole image);
   for a PNG or a GIF, the chunks or blocks Pillow reads one by one in Python to decode the
   first image (:func:`png_chunks`, :func:`gif_blocks`): more than 1,024 and one per KB of the
   file → :class:`TooManyScans` too;
5. only then the pixels: anything corrupt or truncated → :class:`Undecodable`.

Behind these checks Pillow's ``MAX_IMAGE_PIXELS`` is set to the same budget, with its
``DecompressionBombWarning`` raised as an error, in case a file gets past the header checks
(an odd frame size in an animation, say).

Pillow never escapes from here: every exception it raises on hostile input becomes one of the typed
errors above. One that says nothing of the bytes (MemoryError, an OSError of the system's) is
not ``undecodable``, whose answer is cached for the cache's TTL: a 500, answered afresh at the
next try. Nothing is written to disk and ``cv2.imdecode`` is never used on these bytes.
"""

from __future__ import annotations

import io
import logging
import os
import struct
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import ArrayLike, NDArray
from PIL import Image, WebPImagePlugin

from faceflow.config import LimitSettings
from faceflow.errors import (
    BadDimensions,
    EmptyInput,
    FaceflowError,
    TooLarge,
    TooManyPixels,
    TooManyScans,
    Undecodable,
)
from faceflow.imaging.dimensions import jpeg_layout, read_dimensions
from faceflow.imaging.formats import ImageFormat, sniff_format

log = logging.getLogger(__name__)

_PILLOW_NAME = {
    ImageFormat.JPEG: "JPEG",
    ImageFormat.PNG: "PNG",
    ImageFormat.WEBP: "WEBP",
    ImageFormat.GIF: "GIF",
}

_EXIF_ORIENTATION_TAG = 0x0112

# The transposition that turns the stored pixels into the displayed image, per EXIF orientation.
# The same table as ImageOps.exif_transpose; applied by hand so that a malformed EXIF block, which
# exif_transpose would try to rewrite, costs the image its orientation instead of failing it.
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

_WHITE = (255, 255, 255, 255)
_BAND_ROWS = 256

# Marker segments a JPEG may have besides its scans: APPn (EXIF, XMP and ICC profiles split into
# 64 KB pieces: ~160 in a 10 MB file), tables, comments; and per scan, the tables a progressive
# encoder writes before it (one or two).
_JPEG_SEGMENTS_BASE = 1024
_JPEG_SEGMENTS_PER_SCAN = 4

# Pillow reads a PNG's chunks, and a GIF's blocks up to its first image, one loop turn each in
# Python: 800,000 empty chunks in a 9.7 MB PNG took 2.5 s to decode, 2,000,000 comment blocks in a
# GIF 1.1 s. Real files have a few ancillary chunks or extension blocks and their pixel data in
# chunks of 8 KB or more (the most in 1,525 PNGs and GIFs on the development machine: 236, in a
# 1.9 MB PNG). So a file may hold 1,024 pieces and one more per KB: at the 10 MiB upload cap
# 11,264, which Pillow reads in 38 ms (a real 10 MiB PNG decodes in 26 ms). Counting them takes
# at most 2 ms.
_PIECES_BASE = 1024
_BYTES_PER_PIECE = 1024
_PNG_SIGNATURE_BYTES = 8
_GIF_SCREEN_BYTES = 13
# The text keywords Pillow reads an EXIF orientation from (ImageMagick's raw EXIF profile, and
# XMP's tiff:Orientation): the only PNG text the pipeline uses, through getexif().
_PNG_TEXT_READ = frozenset((b"Raw profile type exif", b"XML:com.adobe.xmp"))

# Pillow's pixel limit and the warnings filters are process-wide state. Decoding holds this lock
# while it has them changed, so concurrent threads never restore each other's values. faceflow
# decodes in single-threaded worker processes, where the lock is never contended.
_PILLOW_STATE = threading.Lock()
# A fork waits for a decode in another thread to leave that state: a child forked while one
# was inside inherited the lock held by a thread it does not have, and its first decode waited
# forever (a library user's multiprocessing pool, or os.fork, beside a thread analysing: 4 of
# 12 children hung), with the pixel limit and the warnings filters left changed.
os.register_at_fork(
    before=_PILLOW_STATE.acquire,
    after_in_parent=_PILLOW_STATE.release,
    after_in_child=_PILLOW_STATE.release,
)


@dataclass(frozen=True, slots=True)
class ImageHeader:
    """What the header says, after the limits were enforced.

    ``width_px``/``height_px`` are the stored size; ``oriented_*`` the size once the EXIF
    orientation (``1`` when absent or unreadable) is applied, i.e. the size the user sees.
    ``frame_count`` is ``None`` where counting would mean scanning the file (GIF).

    For a PNG whose EXIF block comes after the pixel data the orientation is unknown from the
    header and reported as 1; :func:`decode_image` still applies it.
    """

    format: ImageFormat
    width_px: int
    height_px: int
    orientation: int
    oriented_width_px: int
    oriented_height_px: int
    frame_count: int | None

    @property
    def pixels(self) -> int:
        return self.width_px * self.height_px


@dataclass(frozen=True, slots=True)
class DecodedImage:
    """An image ready for the pipeline.

    ``rgb`` is ``(H, W, 3)`` uint8, C-contiguous, RGB order, and read-only (copy it before drawing).
    ``source_width_px``/``source_height_px`` are the full-resolution size after EXIF orientation:
    the coordinate space of every result. ``scale`` is source pixels per decoded pixel: 1.0 unless
    JPEG draft decoding (or :func:`as_drafted`'s reduce) shrank the image, in which case a decoded
    coordinate times ``scale`` is a source coordinate.
    """

    rgb: NDArray[np.uint8]
    format: ImageFormat
    source_width_px: int
    source_height_px: int
    scale: float
    icc_profile: bytes | None = None
    """The colour profile the file embeds, if any, as it came: ``rgb`` holds the file's numbers
    untouched (see :func:`faceflow.imaging.colour.in_srgb`)."""

    @property
    def width_px(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height_px(self) -> int:
        return int(self.rgb.shape[0])


@dataclass(frozen=True, slots=True)
class DecodedRgbaImage:
    """A full-resolution image that keeps its transparency.

    ``rgba`` is ``(H, W, 4)`` uint8, C-contiguous, read-only, straight (not premultiplied) alpha;
    images without transparency get alpha 255 everywhere. Sizes are after EXIF orientation.
    """

    rgba: NDArray[np.uint8]
    format: ImageFormat

    @property
    def width_px(self) -> int:
        return int(self.rgba.shape[1])

    @property
    def height_px(self) -> int:
        return int(self.rgba.shape[0])


def pixel_limit(fmt: ImageFormat, limits: LimitSettings) -> int:
    """The pixel budget for ``fmt``: ``max_pixels`` for JPEG, ``max_pixels_lossless`` otherwise."""
    return limits.max_pixels_lossless if fmt.lossless else limits.max_pixels


def probe_image(data: bytes, limits: LimitSettings) -> ImageHeader:
    """Check ``data`` against ``limits`` from its header alone, without decoding pixels.

    Passing the probe does not prove the pixel data is intact: a truncated file is only found by
    :func:`decode_image`.

    Raises:
        EmptyInput, TooLarge, UnsupportedFormat, TooManyPixels, BadDimensions, TooManyScans,
        Undecodable.
    """
    fmt = _check_bytes(data, limits)
    with _opened(data, fmt, pixel_limit(fmt, limits)) as image:
        return _read_header(image, fmt, limits, exif_loaded=False)


def decode_image(
    data: bytes, limits: LimitSettings, *, max_long_side_px: int | None = None
) -> DecodedImage:
    """Check ``data`` like :func:`probe_image`, then decode it to RGB.

    EXIF orientation is applied; 16-bit samples become 8-bit by dropping the low byte; palette,
    grey, CMYK and YCbCr become RGB; transparency is composited over white; of an animation only
    the first frame is decoded.

    ``max_long_side_px`` lets a JPEG decode at 1/2, 1/4 or 1/8 size (libjpeg's DCT scaling, far
    cheaper than decoding in full and resizing), never below ``max_long_side_px`` on the long side.
    ``None`` decodes in full; other formats always decode in full.

    Raises:
        EmptyInput, TooLarge, UnsupportedFormat, TooManyPixels, BadDimensions, TooManyScans,
        Undecodable.
        ValueError: ``max_long_side_px`` is not positive.
    """
    if max_long_side_px is not None and max_long_side_px < 1:
        raise ValueError(f"max_long_side_px must be positive, got {max_long_side_px}")
    fmt = _check_bytes(data, limits)
    with _opened(data, fmt, pixel_limit(fmt, limits)) as image:
        header = _read_header(image, fmt, limits, exif_loaded=False)
        scale = 1.0
        if fmt is ImageFormat.JPEG and max_long_side_px is not None:
            scale = _draft(image, max_long_side_px)
        _load_first_frame(image)
        orientation = _orientation(image, exif_loaded=True)
        oriented = _apply_orientation(image, orientation)
        rgb = _to_rgb_array(oriented)
        icc_profile = image.info.get("icc_profile")
    source_w, source_h = _oriented_size(header.width_px, header.height_px, orientation)
    return DecodedImage(
        rgb=_frozen(rgb),
        format=fmt,
        source_width_px=source_w,
        source_height_px=source_h,
        scale=scale,
        icc_profile=icc_profile if isinstance(icc_profile, bytes) and icc_profile else None,
    )


def decode_rgba(data: bytes, limits: LimitSettings) -> DecodedRgbaImage:
    """Like :func:`decode_image` at full resolution, but keep transparency instead of flattening.

    Raises:
        EmptyInput, TooLarge, UnsupportedFormat, TooManyPixels, BadDimensions, TooManyScans,
        Undecodable.
    """
    fmt = _check_bytes(data, limits)
    with _opened(data, fmt, pixel_limit(fmt, limits)) as image:
        _read_header(image, fmt, limits, exif_loaded=False)
        _load_first_frame(image)
        oriented = _apply_orientation(image, _orientation(image, exif_loaded=True))
        rgba = _to_rgba_array(oriented)
    return DecodedRgbaImage(rgba=_frozen(rgba), format=fmt)


def _load_first_frame(image: Image.Image) -> None:
    """Decode ``image``'s pixels (its first frame), then let go of what Pillow keeps to read the
    others: for a WebP, libwebp's animation decoder (two canvases of 4 bytes a pixel, allocated
    as the file is opened, still or animated) and the frame's bytes, 12 bytes a pixel held until
    the image is closed, through the orientation and conversion that follow. A 1 KB WebP of
    25 MP turned on its side by its EXIF took a process 555 MB above its start to decode, 400 MB
    with them released (their peak as it loads)."""
    image.load()
    if isinstance(image, WebPImagePlugin.WebPImageFile):
        del image._decoder
        image.fp = None


def _check_bytes(data: bytes, limits: LimitSettings) -> ImageFormat:
    if not data:
        raise EmptyInput("the image is empty (0 bytes)")
    if len(data) > limits.max_upload_bytes:
        raise TooLarge(
            f"the image is {len(data)} bytes; the limit is {limits.max_upload_bytes} bytes",
            {"bytes": len(data), "max_bytes": limits.max_upload_bytes},
        )
    fmt = sniff_format(data)
    claimed = read_dimensions(data, fmt)
    if claimed is not None:
        _check_size(fmt, *claimed, limits)
    if fmt is ImageFormat.JPEG:
        _check_jpeg_layout(data, limits.max_jpeg_scans)
    elif fmt is ImageFormat.PNG or fmt is ImageFormat.GIF:
        _check_pieces(data, fmt)
    return fmt


def _check_jpeg_layout(data: bytes, max_scans: int) -> None:
    max_segments = _JPEG_SEGMENTS_BASE + _JPEG_SEGMENTS_PER_SCAN * max_scans
    layout = jpeg_layout(data, max_scans, max_segments)
    details = {"max_scans": max_scans}
    if layout.scans > max_scans:
        raise TooManyScans(
            f"the JPEG holds more than {max_scans} scans (a progressive JPEG from a camera or an "
            "encoder holds about 10); save it again as a baseline or standard progressive JPEG",
            details,
        )
    if layout.cut_short:
        raise TooManyScans(
            f"the JPEG is split into more than {max_segments} marker segments (a camera's holds a "
            "few dozen); save it again as a standard JPEG",
            details,
        )


def _check_pieces(data: bytes, fmt: ImageFormat) -> None:
    max_pieces = _PIECES_BASE + len(data) // _BYTES_PER_PIECE
    if fmt is ImageFormat.PNG:
        pieces, what = png_chunks(data, max_pieces), "chunks"
    else:
        pieces, what = gif_blocks(data, max_pieces), "blocks"
    if pieces > max_pieces:
        raise TooManyScans(
            f"the {fmt.value.upper()} is split into more than {max_pieces} {what} (an encoder "
            f"writes a few, and its pixel data in pieces of kilobytes); save it again as a "
            f"standard {fmt.value.upper()}",
            {"format": fmt.value, "max_pieces": max_pieces},
        )


def png_chunks(data: bytes, max_chunks: int) -> int:
    """The chunks of the PNG ``data`` that Pillow reads to decode its first frame, counted up to
    one past ``max_chunks``.

    Chunks are followed by their lengths from the signature to IEND (whatever follows it is
    never read). In an animated PNG whose acTL chunk Pillow takes (the only one before the image
    data, of at least two frames) the first frame ends at the next fcTL chunk after its data,
    where Pillow stops, so the later frames' fcTL and fdAT chunks are not counted; any other
    file is counted to IEND. Structure that stops making sense ends the walk: the decoder
    reports the file itself.
    """
    pos, chunks = _PNG_SIGNATURE_BYTES, 0
    animations, animated, image_data = 0, False, False
    try:
        while chunks <= max_chunks:
            length, kind = struct.unpack_from(">I4s", data, pos)
            chunks += 1
            if kind == b"IEND":
                break
            if kind in (b"IDAT", b"fdAT"):
                image_data = True
            elif kind == b"acTL" and not image_data:
                animations += 1
                (frames,) = struct.unpack_from(">I", data, pos + 8)
                # Pillow ignores a count of 0 or over 2^31, and a second acTL unsets the first.
                animated = animations == 1 and length >= 8 and 2 <= frames <= 0x8000_0000
            elif kind == b"fcTL" and image_data and animated:
                break
            pos += 12 + length  # length, type, data, CRC
    except struct.error:
        pass
    return chunks


def png_without_text(data: bytes) -> bytes:
    """The PNG ``data`` without its compressed text chunks (zTXt, and iTXt marked compressed)
    but the last of each keyword Pillow takes an orientation from (:data:`_PNG_TEXT_READ`;
    Pillow keeps the last of a keyword too); ``data`` itself when there is none to drop.

    Pillow inflates each (up to 1 MB each, 64 MB in all) and decodes it to a string as it opens
    or loads the image, for nothing here: 60 chunks of 1 MB each, 170 KB uploaded, cost 0.2 s
    (0.35 s as iTXt) against 2.4 ms for the same photo without them, and 200 made the photo
    undecodable. Text stored plainly costs Pillow what its bytes cost and is left, so that the
    usual photo (a tEXt naming its software) is not copied. Chunks are followed by their lengths
    as in :func:`png_chunks`; what stops making sense is kept as it is, for the decoder."""
    pos = _PNG_SIGNATURE_BYTES
    chunks: list[tuple[int, int, bytes | None, bool]] = []  # span, text keyword, compressed
    try:
        while True:
            length, kind = struct.unpack_from(">I4s", data, pos)
            end = pos + 12 + length
            if end > len(data):
                break
            keyword, compressed = None, False
            if kind in (b"zTXt", b"iTXt"):
                keyword, _, rest = data[pos + 8 : end - 4].partition(b"\0")
                compressed = kind == b"zTXt" or rest[:1] == b"\1"
            chunks.append((pos, end, keyword, compressed))
            pos = end
            if kind == b"IEND":
                break
    except struct.error:
        pass
    last: dict[bytes | None, int] = {
        key: i for i, (_, _, key, _) in enumerate(chunks) if key in _PNG_TEXT_READ
    }
    kept = [
        (start, end)
        for i, (start, end, key, compressed) in enumerate(chunks)
        if not compressed or last.get(key) == i
    ]
    if len(kept) == len(chunks):
        return data
    return b"".join(
        [data[:_PNG_SIGNATURE_BYTES], *(data[start:end] for start, end in kept), data[pos:]]
    )


def gif_blocks(data: bytes, max_blocks: int) -> int:
    """The pieces of the GIF ``data`` that Pillow reads one by one before its first image,
    counted up to one past ``max_blocks``: each extension block and each of its sub-blocks, and
    any other byte between blocks (Pillow skips those one at a time).

    The walk ends at the first image descriptor, as Pillow's does: the image's own data is
    decoded in C, and faceflow neither counts the frames of a GIF nor reads past the first.
    """
    pos, blocks = _GIF_SCREEN_BYTES, 0
    try:
        flags = data[10]
        if flags & 0x80:  # a global colour table: 3 bytes for each of 2^(n+1) colours
            pos += 3 << ((flags & 0x07) + 1)
        while blocks <= max_blocks:
            introducer = data[pos]
            blocks += 1
            if introducer in (0x2C, 0x3B):  # image descriptor, trailer
                break
            if introducer != 0x21:  # not an extension: Pillow moves on by one byte
                pos += 1
                continue
            pos += 2  # introducer, label
            while blocks <= max_blocks:
                size = data[pos]
                blocks += 1
                pos += 1 + size
                if size == 0:  # the terminator
                    break
    except IndexError:
        pass
    return blocks


def _read_header(
    image: Image.Image, fmt: ImageFormat, limits: LimitSettings, *, exif_loaded: bool
) -> ImageHeader:
    width, height = image.size
    # Again with the size Pillow parsed: read_dimensions may have given up on this header.
    _check_size(fmt, width, height, limits)
    orientation = _orientation(image, exif_loaded=exif_loaded)
    oriented_w, oriented_h = _oriented_size(width, height, orientation)
    # GIF counts frames by walking the whole file; the others know it from their header.
    frames = None if fmt is ImageFormat.GIF else int(getattr(image, "n_frames", 1))
    return ImageHeader(
        format=fmt,
        width_px=width,
        height_px=height,
        orientation=orientation,
        oriented_width_px=oriented_w,
        oriented_height_px=oriented_h,
        frame_count=frames,
    )


def _check_size(fmt: ImageFormat, width: int, height: int, limits: LimitSettings) -> None:
    budget = pixel_limit(fmt, limits)
    if width * height > budget:
        raise TooManyPixels(
            f"the image has {width}×{height} = {width * height} pixels; "
            f"the limit for {fmt.value} is {budget}",
            {"width": width, "height": height, "pixels": width * height, "max_pixels": budget},
        )
    if not (
        limits.min_side_px <= width <= limits.max_side_px
        and limits.min_side_px <= height <= limits.max_side_px
    ):
        raise BadDimensions(
            f"the image is {width}×{height} px; each side must be between "
            f"{limits.min_side_px} and {limits.max_side_px} px",
            {
                "width": width,
                "height": height,
                "min_side_px": limits.min_side_px,
                "max_side_px": limits.max_side_px,
            },
        )


def _orientation(image: Image.Image, *, exif_loaded: bool) -> int:
    """The EXIF orientation 1–8; 1 when absent, out of range or unreadable."""
    # A PNG's getexif() decodes the whole image when the EXIF block is not in the header chunks.
    if not exif_loaded and image.format == "PNG" and "exif" not in image.info:
        return 1
    try:
        value = image.getexif().get(_EXIF_ORIENTATION_TAG, 1)
    except Exception:  # a broken EXIF block must not fail a good image
        log.debug("unreadable EXIF block ignored", exc_info=True)
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _oriented_size(width: int, height: int, orientation: int) -> tuple[int, int]:
    return (height, width) if orientation >= 5 else (width, height)


def _apply_orientation(image: Image.Image, orientation: int) -> Image.Image:
    method = _TRANSPOSE.get(orientation)
    return image if method is None else image.transpose(method)


def _draft_factor(long_side_px: int, max_long_side_px: int) -> int:
    """The largest s in (8, 4, 2) that keeps ``long_side_px`` / s (rounded up, as libjpeg and
    Pillow's reduce round) at or above ``max_long_side_px``; 1 if none does."""
    return next((s for s in (8, 4, 2) if -(-long_side_px // s) >= max_long_side_px), 1)


def as_drafted(image: DecodedImage, max_long_side_px: int) -> DecodedImage:
    """``image`` at the size :func:`decode_image` gives a JPEG for ``max_long_side_px``: a
    format decoded in full (PNG, WebP, GIF) reduced by the same factor (Pillow's box reduce,
    ``scale`` set to match), a drafted JPEG or an image already that small as it is. For a stage
    whose cost and output grow with the pixels it is given (an annotated image is drawn and
    encoded at its input's size), so that a lossless upload costs what a JPEG of it does."""
    if image.scale != 1.0:
        return image
    width, height = image.width_px, image.height_px
    factor = _draft_factor(max(width, height), max_long_side_px)
    if factor == 1:
        return image
    reduced = np.asarray(Image.fromarray(image.rgb).reduce(factor), dtype=np.uint8)
    return replace(image, rgb=_frozen(reduced), scale=float(factor))


def _draft(image: Image.Image, max_long_side_px: int) -> float:
    """Ask libjpeg to decode at 1/s size for the largest s in (8, 4, 2) that keeps the long side
    at or above ``max_long_side_px``; return the scale actually configured (1.0 if none)."""
    width, height = image.size
    factor = _draft_factor(max(width, height), max_long_side_px)
    if factor == 1:
        return 1.0
    # Pillow picks the largest power of two <= min(width // w, height // h); asking for the floor
    # of each side makes that exactly `factor` (or less for slivers), never more.
    requested = (max(1, width // factor), max(1, height // factor))
    result = image.draft(image.mode, requested)
    if result is None:
        return 1.0
    _, box = result
    return width / box[2]


def _to_rgb_array(image: Image.Image) -> NDArray[np.uint8]:
    if image.mode == "RGB":
        return np.asarray(image, dtype=np.uint8)
    if image.mode.startswith("I"):
        grey = _high_byte(image)
        return np.repeat(grey[:, :, np.newaxis], 3, axis=2)
    if _has_alpha(image):
        return _over_white(image)
    # "F" lands here too: Pillow rounds and clips floats to 0–255, the only sensible reading.
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _by_bands(
    image: Image.Image, channels: tuple[int, ...], convert: Callable[[Image.Image], ArrayLike]
) -> NDArray[np.uint8]:
    """``convert`` applied to the image in bands of _BAND_ROWS rows, into one uint8 array of
    ``(height, width, *channels)``. Converting a whole image at once held several full-size
    copies at a time (Pillow's conversions and the bytes numpy copies them through): decoding a
    transparent 25 MP PNG of a few hundred KB took a process 430 MB above its size before, by
    bands 190 MB (the decoded image, the result and the decoder's buffers)."""
    width, height = image.size
    out = np.empty((height, width, *channels), dtype=np.uint8)
    for top in range(0, height, _BAND_ROWS):
        bottom = min(top + _BAND_ROWS, height)
        out[top:bottom] = convert(image.crop((0, top, width, bottom)))
    return out


def _over_white(image: Image.Image) -> NDArray[np.uint8]:
    """An image with transparency composited over white, band by band."""

    def flatten(band: Image.Image) -> ArrayLike:
        white = Image.new("RGBA", band.size, _WHITE)
        return np.asarray(Image.alpha_composite(white, band.convert("RGBA")).convert("RGB"))

    return _by_bands(image, (3,), flatten)


def _to_rgba_array(image: Image.Image) -> NDArray[np.uint8]:
    if image.mode.startswith("I"):
        grey = _high_byte(image)
        opaque = np.full(grey.shape, 255, dtype=np.uint8)
        return np.dstack([grey, grey, grey, opaque])
    if image.mode == "RGBA":
        return np.asarray(image, dtype=np.uint8)
    alpha = _has_alpha(image)

    def to_rgba(band: Image.Image) -> ArrayLike:
        return np.asarray(band.convert("RGBA") if alpha else band.convert("RGB").convert("RGBA"))

    return _by_bands(image, (4,), to_rgba)


def _has_alpha(image: Image.Image) -> bool:
    return "A" in image.getbands() or "transparency" in image.info


def _high_byte(image: Image.Image) -> NDArray[np.uint8]:
    """16-bit (or 32-bit "I" holding 16-bit) grey to 8-bit by dropping the low byte.

    Shifting maps 0–65535 onto 0–255 proportionally; Pillow's own convert("L") clips instead,
    which turns every value above 255 white.
    """
    return _by_bands(
        image, (), lambda band: np.clip(np.asarray(band).astype(np.int64), 0, 0xFFFF) >> 8
    )


def _frozen(pixels: NDArray[np.uint8]) -> NDArray[np.uint8]:
    # Every array reaching here was made by this module and is referenced nowhere else, so
    # clearing the flag (no copy) is enough to make the result immutable like its dataclass.
    out = np.ascontiguousarray(pixels, dtype=np.uint8)
    out.flags.writeable = False
    return out


@contextmanager
def _opened(data: bytes, fmt: ImageFormat, budget: int) -> Iterator[Image.Image]:
    """Open ``data`` with Pillow restricted to ``fmt``, under the guard and the error mapping.

    Everything done with the yielded image inside the block is covered by both.
    """
    with (
        _pillow_guard(budget),
        _typed_errors(fmt, budget),
        Image.open(
            io.BytesIO(_unread_parts_dropped(data, fmt)), formats=[_PILLOW_NAME[fmt]]
        ) as image,
    ):
        yield image


def _unread_parts_dropped(data: bytes, fmt: ImageFormat) -> bytes:
    return png_without_text(data) if fmt is ImageFormat.PNG else data


@contextmanager
def _pillow_guard(budget: int) -> Iterator[None]:
    """Make Pillow's own decompression-bomb check match ``budget`` and turn its warning into an
    error, as a second line of defence behind the explicit header check; restore both after.
    Pillow's other warnings are dropped: each is two lines on stderr, outside the log, and a
    file may earn one per EXIF entry (65,535 in a PNG's eXIf chunk: a 788 KB upload wrote 13 MB
    to the server's log, a 71 KB JPEG 1 MB; the image itself decodes as it would anyway)."""
    with _PILLOW_STATE, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = budget
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


@contextmanager
def _typed_errors(fmt: ImageFormat, budget: int) -> Iterator[None]:
    """Turn whatever Pillow raises on hostile input into faceflow's typed errors."""
    try:
        yield
    except FaceflowError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise TooManyPixels(
            f"the image has more pixels than the limit for {fmt.value} ({budget})",
            {"max_pixels": budget},
        ) from exc
    except MemoryError:
        # Not the client's fault once the limits above have passed: let it surface as a 500.
        raise
    except Exception as exc:
        if _of_the_system(exc):
            # Not the bytes' fault (the system refused Pillow something): a 500, which is not
            # cached. As undecodable it was, for the cache's TTL (a day), though the next try
            # might have decoded the photo.
            log.error("could not decode a %s image", fmt.value, exc_info=exc)
            raise FaceflowError(
                f"could not decode this {fmt.value} image here: an internal error"
            ) from exc
        # The usual corrupt-file errors are logged quietly; the others loudly, in case it is
        # a bug here rather than a bad file. The client's message is fixed: Pillow's can name
        # memory addresses.
        expected = isinstance(
            exc, OSError | SyntaxError | EOFError | struct.error
        ) or _refused_by_a_reader(exc)
        log.log(
            logging.DEBUG if expected else logging.WARNING,
            "undecodable %s image (%s)",
            fmt.value,
            type(exc).__name__,
            exc_info=not expected,
        )
        raise Undecodable(
            f"cannot decode this {fmt.value} image: the data is corrupt or truncated",
            {"format": fmt.value},
        ) from exc


def _refused_by_a_reader(exc: Exception) -> bool:
    """Whether ``exc`` is a ValueError raised by one of Pillow's file readers (a format plugin,
    or ``ImageFile`` that drives them) about what the file holds: a PNG's colour profile or
    text inflating past ``MAX_TEXT_CHUNK`` (a 65 KB upload), its text past ``MAX_TEXT_MEMORY``,
    a truncated tRNS, gAMA or fcTL chunk, APNG frames out of sequence. Told by where it was
    raised, not by its words: each of those was logged as a possible bug here, at warning with
    a 2 KB traceback for a client's upload. A ValueError from this module's own code, numpy's
    or Pillow's image operations (a bug here, called wrongly) is not one."""
    if not isinstance(exc, ValueError):
        return False
    frame = exc.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    if frame is None:
        return False
    module = str(frame.tb_frame.f_globals.get("__name__", ""))
    return module == "PIL.ImageFile" or (
        module.startswith("PIL.") and module.endswith("ImagePlugin")
    )


def _of_the_system(exc: Exception) -> bool:
    """Whether ``exc``, raised by Pillow decoding bytes in memory, comes from the system rather
    than the bytes: an OSError with an errno (no memory, no file descriptor; these bytes are
    read from memory), where Pillow's plugins raise OSError with a message alone on bad data
    (UnidentifiedImageError, truncation). Anything else Pillow raises on these bytes (its
    usual SyntaxError, struct.error, ValueError…, or another type a hostile file provokes) is
    the bytes' doing: the same bytes raise it again, so it is ``undecodable``, a 422."""
    return isinstance(exc, OSError) and exc.errno is not None
