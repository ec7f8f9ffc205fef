"""The one place where colour channel order changes, and where a photo's colour profile is
applied.

RGB is the in-memory order everywhere in faceflow: decoded images, pipeline stages, model inputs
that want RGB, and everything handed to the encoder. BGR exists only at the boundary with OpenCV
(and YuNet, which was trained on OpenCV's BGR frames): convert with :func:`rgb_to_bgr` right before
such a call and with :func:`bgr_to_rgb` right after it, and name the variables ``bgr``/``rgb`` so
the order is visible at every use.

Decoded pixels are the file's numbers; what faceflow writes carries no profile, so it is read as
sRGB. Where the output is the photo itself (an ID photo), :func:`in_srgb` applies the profile the
source embeds first: a studio's Adobe RGB portrait or a phone's Display P3 one read as sRGB comes
out paler (portrait_2's face in Adobe RGB: a* 8.7 → 5.7, ΔE 3.5). Only profiles shaped like the
ones photos carry are handed to LittleCMS: see :func:`in_srgb`.
"""

from __future__ import annotations

import functools
import io
import logging
import struct
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageCms

log = logging.getLogger(__name__)

_Scalar = TypeVar("_Scalar", bound=np.generic)

# Photos embed a few hundred bytes to a few KB (the published Adobe RGB is 560 bytes, Display P3
# 536, sRGB v2 3,144; ICC's sRGB v4, with lookup tables, 60,960). A lookup-table profile (A2Bn:
# lut8, lut16, lutAtoB) is a fixed number of stages, so what it costs LittleCMS grows with its
# size only: over a 0.8 MP cut-out 50 ms at 59 KB (a matrix profile 23 ms), 59 ms at 1.6 MB,
# 0.98 s at 99 MB.
_MAX_PROFILE_BYTES = 64 * 1024
_HEADER_BYTES = 128
_MAX_PROFILE_TAGS = 100  # LittleCMS refuses more
# ICC v4.3's floating-point transforms (D2Bn, B2Dn, of type mpet) chain any number of elements,
# each evaluated at every one of the 33³ points LittleCMS samples a transform on: building one
# took 9 ms for a 476-byte chain, 0.48 s for 60 KB (under the size cap), 8.8 s for 1 MB. No
# camera or display profile has one.
_CHAIN_TAGS = frozenset({b"D2B0", b"D2B1", b"D2B2", b"D2B3", b"B2D0", b"B2D1", b"B2D2", b"B2D3"})
_CHAIN_TYPE = b"mpet"


def rgb_to_bgr(rgb: NDArray[_Scalar]) -> NDArray[_Scalar]:
    """Return a new C-contiguous ``(H, W, 3)`` array with the channels in BGR order.

    Raises:
        ValueError: ``rgb`` is not shaped ``(H, W, 3)``.
    """
    return _swap_red_blue(rgb)


def bgr_to_rgb(bgr: NDArray[_Scalar]) -> NDArray[_Scalar]:
    """Return a new C-contiguous ``(H, W, 3)`` array with the channels in RGB order.

    Raises:
        ValueError: ``bgr`` is not shaped ``(H, W, 3)``.
    """
    return _swap_red_blue(bgr)


def _swap_red_blue(pixels: NDArray[_Scalar]) -> NDArray[_Scalar]:
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) array, got shape {pixels.shape}")
    # A copy, not a view: OpenCV needs contiguous memory, and the caller's array must not change
    # when the result is drawn on.
    return np.ascontiguousarray(pixels[:, :, ::-1])


def rgb_into_bgr_planes(rgb: NDArray[np.uint8], planes: NDArray[np.float32]) -> None:
    """Write ``rgb`` (``(H, W, 3)``) into the top-left ``H`` × ``W`` of ``planes`` (``(3, H', W')``,
    ``H' ≥ H``, ``W' ≥ W``) as blue, green and red planes, converted to float in the same pass.

    For a model that wants BGR planes (YuNet): one strided copy instead of a BGR image first
    (:func:`rgb_to_bgr`) and the planes from it, which cost 1.0 and 0.5 ms per 640 px photo.
    ``rgb`` may be any view (a turned or cropped one): it is read, never copied.

    Raises:
        ValueError: ``rgb`` is not shaped ``(H, W, 3)`` or does not fit ``planes``.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) array, got shape {rgb.shape}")
    height, width = rgb.shape[:2]
    if (
        planes.ndim != 3
        or planes.shape[0] != 3
        or planes.shape[1] < height
        or planes.shape[2] < width
    ):
        raise ValueError(f"{rgb.shape} does not fit planes shaped {planes.shape}")
    planes[:, :height, :width] = rgb.transpose(2, 0, 1)[::-1]


@functools.cache
def _srgb() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def in_srgb(rgb: NDArray[np.uint8], icc_profile: bytes | None) -> NDArray[np.uint8]:
    """``rgb`` (``(H, W, 3)`` uint8, encoded in ``icc_profile``'s space) converted to sRGB.

    ``rgb`` itself comes back when there is nothing to convert: no profile, a profile that says
    it is sRGB (most cameras and phones that embed one), one of another kind of space (grey,
    CMYK: decoding already made those RGB), or one LittleCMS cannot read — a broken profile costs
    the photo its colour management, never the photo. Relative colorimetric: colours inside sRGB
    keep their values, the few outside it are clipped to its edge.

    A profile unlike any a photo carries is not applied either (the photo is taken as sRGB): over
    64 KiB, of more tags than LittleCMS reads, or with a floating-point transform (a D2Bn or
    B2Dn tag, an mpet element chain), whose evaluation a crafted file can make take minutes.
    """
    if not icc_profile:
        return rgb
    refused = _refusal(icc_profile)
    if refused is not None:
        log.info("colour profile not applied (%s): the pixels are taken as sRGB", refused)
        return rgb
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        if profile.profile.xcolor_space.strip() != "RGB":
            return rgb
        if "srgb" in ImageCms.getProfileDescription(profile).lower():
            return rgb
        transform = ImageCms.buildTransform(
            profile, _srgb(), "RGB", "RGB", ImageCms.Intent.RELATIVE_COLORIMETRIC
        )
        converted = ImageCms.applyTransform(Image.fromarray(rgb, "RGB"), transform)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as exc:
        log.debug("colour profile not applied (%s): the pixels are taken as sRGB", exc)
        return rgb
    assert converted is not None  # applyTransform returns the image unless inPlace
    return np.asarray(converted, dtype=np.uint8)


def _refusal(icc_profile: bytes) -> str | None:
    """Why ``icc_profile`` is not for LittleCMS, or ``None``: its size, and its tag table read
    here (a 128-byte header, the tag count, 12 bytes a tag: signature, offset, size)."""
    if len(icc_profile) > _MAX_PROFILE_BYTES:
        return f"{len(icc_profile)} bytes, over {_MAX_PROFILE_BYTES}"
    try:
        (count,) = struct.unpack_from(">I", icc_profile, _HEADER_BYTES)
        if count > _MAX_PROFILE_TAGS:
            return f"{count} tags, over {_MAX_PROFILE_TAGS}"
        for index in range(count):
            signature, offset, _ = struct.unpack_from(
                ">4sII", icc_profile, _HEADER_BYTES + 4 + 12 * index
            )
            if signature in _CHAIN_TAGS or icc_profile[offset : offset + 4] == _CHAIN_TYPE:
                return f"a {signature.decode('latin-1')!r} tag: a floating-point transform"
    except struct.error:
        return "its tag table cut short"
    return None
