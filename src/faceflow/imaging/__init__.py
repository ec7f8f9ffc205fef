"""Safe image ingest (limits, format sniffing, EXIF, colour modes), colour order and encoding.

The names below load their module on first use (PEP 562): the API process imports
:mod:`.formats` and :mod:`.dimensions` (magic bytes and header sizes, pure Python) through this
package, and must not pay for the decoders' numpy and Pillow, which only the inference
processes use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from faceflow.lazy import lazy_attributes

if TYPE_CHECKING:
    from faceflow.imaging.colour import bgr_to_rgb, rgb_to_bgr
    from faceflow.imaging.encode import encode_image, encode_jpeg_max_kb
    from faceflow.imaging.formats import ImageFormat, OutputFormat, sniff_format
    from faceflow.imaging.ingest import (
        DecodedImage,
        DecodedRgbaImage,
        ImageHeader,
        decode_image,
        decode_rgba,
        pixel_limit,
        probe_image,
    )

_MODULE_OF = {
    "bgr_to_rgb": "colour",
    "rgb_to_bgr": "colour",
    "encode_image": "encode",
    "encode_jpeg_max_kb": "encode",
    "ImageFormat": "formats",
    "OutputFormat": "formats",
    "sniff_format": "formats",
    "DecodedImage": "ingest",
    "DecodedRgbaImage": "ingest",
    "ImageHeader": "ingest",
    "decode_image": "ingest",
    "decode_rgba": "ingest",
    "pixel_limit": "ingest",
    "probe_image": "ingest",
}

__getattr__ = lazy_attributes(__name__, _MODULE_OF)


__all__ = [
    "DecodedImage",
    "DecodedRgbaImage",
    "ImageFormat",
    "ImageHeader",
    "OutputFormat",
    "bgr_to_rgb",
    "decode_image",
    "decode_rgba",
    "encode_image",
    "encode_jpeg_max_kb",
    "pixel_limit",
    "probe_image",
    "rgb_to_bgr",
    "sniff_format",
]
