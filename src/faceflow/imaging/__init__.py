"""Safe image ingest (limits, format sniffing, EXIF, colour modes), colour order and encoding."""

from faceflow.imaging.colour import bgr_to_rgb, rgb_to_bgr
from faceflow.imaging.encode import OutputFormat, encode_image, encode_jpeg_max_kb
from faceflow.imaging.formats import ImageFormat, sniff_format
from faceflow.imaging.ingest import (
    DecodedImage,
    DecodedRgbaImage,
    ImageHeader,
    decode_image,
    decode_rgba,
    pixel_limit,
    probe_image,
)

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
