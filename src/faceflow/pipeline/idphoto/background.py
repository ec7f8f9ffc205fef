"""Backgrounds for ID photos, painted, and compositing the cut-out over them.

A background (:mod:`.palette`) is a colour and a style: solid, a vertical gradient from the
colour at the top to white at the bottom, or a radial gradient from white behind the head to the
colour at the corners. Compositing happens in linear light: blending sRGB values directly makes
dark hair over a light background look thinner and leaves a dark seam at bright edges.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from faceflow.pipeline.idphoto.palette import Background, BackgroundStyle

_SRGB_TO_LINEAR = np.array(
    [
        c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
        for c in (i / 255.0 for i in range(256))
    ],
    dtype=np.float32,
)


def srgb_to_linear(pixels: NDArray[np.uint8]) -> NDArray[np.float32]:
    """uint8 sRGB → float32 linear light in [0, 1] (exact, by table)."""
    return np.asarray(_SRGB_TO_LINEAR[pixels], dtype=np.float32)


def _encode_srgb(linear: NDArray[np.float64]) -> NDArray[np.float64]:
    x = np.clip(linear, 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1 / 2.4) - 0.055)


# Linear light quantised to 16 bits: fine enough that every 8-bit sRGB value comes back exactly
# (the smallest gap between two of them in linear light is about 20 steps), and a lookup is
# several times faster than a power function per pixel.
_LINEAR_STEPS = 65535
_LINEAR_TO_SRGB = np.clip(
    np.round(_encode_srgb(np.arange(_LINEAR_STEPS + 1) / _LINEAR_STEPS) * 255.0), 0, 255
).astype(np.uint8)


def linear_to_srgb(linear: NDArray[np.float32]) -> NDArray[np.uint8]:
    """float32 linear light → uint8 sRGB, rounded; inverts :func:`srgb_to_linear` exactly."""
    index = np.clip(linear * np.float32(_LINEAR_STEPS) + np.float32(0.5), 0, _LINEAR_STEPS)
    return np.asarray(_LINEAR_TO_SRGB[index.astype(np.int32)], dtype=np.uint8)


def background_pixels(background: Background, width_px: int, height_px: int) -> NDArray[np.uint8]:
    """The background alone, (height, width, 3) uint8 sRGB."""
    colour = np.array(background.colour, dtype=np.float32)
    white = np.full(3, 255.0, dtype=np.float32)
    if background.style is BackgroundStyle.SOLID:
        solid = np.empty((height_px, width_px, 3), dtype=np.uint8)
        solid[...] = np.asarray(background.colour, dtype=np.uint8)
        return solid
    if background.style is BackgroundStyle.VERTICAL:
        t = np.linspace(0.0, 1.0, height_px, dtype=np.float32)[:, None, None]
        t = np.broadcast_to(t, (height_px, width_px, 1))
    else:
        # Radial: white around a point a third of the way down (behind the head), the colour at
        # the farthest corner.
        ys = np.arange(height_px, dtype=np.float32)[:, None] - height_px / 3
        xs = np.arange(width_px, dtype=np.float32)[None, :] - width_px / 2
        reach = float(np.hypot(width_px / 2, height_px * 2 / 3))
        t = 1.0 - np.clip(np.hypot(xs, ys) / reach, 0.0, 1.0)[..., None]
    # Interpolated in sRGB, where the eye sees equal steps as even.
    mixed = np.asarray(colour * (1.0 - t) + white * t, dtype=np.float32)
    return np.clip(np.round(mixed), 0, 255).astype(np.uint8)


def composite(
    foreground: NDArray[np.uint8], alpha: NDArray[np.float32], background: NDArray[np.uint8]
) -> NDArray[np.uint8]:
    """``foreground`` over ``background`` with ``alpha``, blended in linear light.

    Where α = 0 the result is exactly the background; where α = 1 exactly the foreground. Only
    the pixels between (the person's edge) are blended: over the whole frame a 4000 × 4000 px
    photo took a second and four float copies of it, for an edge of a few per cent.
    """
    a = np.clip(alpha, 0.0, 1.0)
    out = np.where((a >= 1.0)[..., None], foreground, background)
    edge = (a > 0.0) & (a < 1.0)
    weight = a[edge][:, None]
    mixed = srgb_to_linear(foreground[edge]) * weight + srgb_to_linear(background[edge]) * (
        1.0 - weight
    )
    out[edge] = linear_to_srgb(np.asarray(mixed, dtype=np.float32))
    return np.asarray(out, dtype=np.uint8)
