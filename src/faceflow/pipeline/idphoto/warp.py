"""Resampling a matte into an ID photo's frame."""

from __future__ import annotations

import math

import cv2
import numpy as np
from numpy.typing import NDArray

from faceflow.pipeline.idphoto.layout import Layout, compose
from faceflow.pipeline.idphoto.matte import Matte

# Beyond a side where the frame cuts the person, the photo's edge is continued and fades out
# over this length.
CUT_FADE_MM = 2.0


def warp_matte(matte: Matte, layout: Layout) -> tuple[NDArray[np.uint8], NDArray[np.float32]]:
    """The matte's foreground (uint8 RGB) and alpha (float32) in the layout's output frame.

    Output pixels that map outside the matte get α = 0, so the background shows there, except
    beyond the crop sides where the layout could not avoid cutting the person
    (``layout.cut_edges``): there the photo's last row or column is continued and fades out
    over ``CUT_FADE_MM``, so no hard edge of empty background runs through the body (a sliver
    under a millimetre disappears; the report fails anything larger). A
    large reduction first shrinks the matte with area averaging: bilinear warping alone skips
    source pixels when it shrinks more than 2×, which aliases hair and fabric.
    """
    foreground, alpha = matte.foreground, matte.alpha
    transform = compose(layout.transform, matte.matte_to_source())
    # Output pixels per matte pixel, whatever the rotation.
    zoom = math.sqrt(abs(float(np.linalg.det(transform[:, :2]))))
    if zoom < 0.5:
        shrink = zoom * 1.5  # leave the warp a mild reduction, which bilinear handles well
        size = (
            max(1, round(foreground.shape[1] * shrink)),
            max(1, round(foreground.shape[0] * shrink)),
        )
        sx, sy = size[0] / foreground.shape[1], size[1] / foreground.shape[0]
        foreground = np.asarray(cv2.resize(foreground, size, interpolation=cv2.INTER_AREA))
        alpha = np.asarray(cv2.resize(alpha, size, interpolation=cv2.INTER_AREA))
        transform = compose(transform, np.array([[1 / sx, 0.0, 0.0], [0.0, 1 / sy, 0.0]]))
    # Pixel centres: OpenCV maps integer coordinates, i.e. centres, of both images, while the
    # transforms here map continuous coordinates whose pixel centres sit at +0.5.
    centred = compose(
        np.array([[1.0, 0.0, -0.5], [0.0, 1.0, -0.5]]),
        compose(transform, np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5]])),
    )
    size_out = (layout.width_px, layout.height_px)
    warped_fg = cv2.warpAffine(
        foreground, centred, size_out, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    warped_alpha = cv2.warpAffine(
        alpha,
        centred,
        size_out,
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0.0,
    )
    if layout.cut_edges:
        fade_px = CUT_FADE_MM * layout.spec.px_per_mm
        warped_alpha = _continue_cut_sides(
            alpha,
            centred,
            size_out,
            layout.cut_edges,
            np.asarray(warped_alpha, np.float32),
            fade_px,
        )
    return (
        np.asarray(warped_fg, dtype=np.uint8),
        np.clip(np.asarray(warped_alpha, dtype=np.float32), 0.0, 1.0),
    )


def _continue_cut_sides(
    alpha: NDArray[np.float32],
    centred: NDArray[np.float64],
    size_out: tuple[int, int],
    cut_edges: tuple[str, ...],
    warped: NDArray[np.float32],
    fade_px: float,
) -> NDArray[np.float32]:
    """``warped`` with the alpha continued (edge replicated) beyond the cut crop sides, fading
    to nothing ``fade_px`` output pixels past them."""
    replicated = np.asarray(
        cv2.warpAffine(
            alpha, centred, size_out, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        ),
        dtype=np.float32,
    )
    back = cv2.invertAffineTransform(centred)
    width, height = size_out
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    u = back[0, 0] * xs + back[0, 1] * ys + back[0, 2]
    v = back[1, 0] * xs + back[1, 1] * ys + back[1, 2]
    h, w = alpha.shape
    # How far past each side, in matte pixels.
    past = {
        "top": -0.5 - v,
        "bottom": v - (h - 0.5),
        "left": -0.5 - u,
        "right": u - (w - 0.5),
    }
    zoom = math.sqrt(abs(float(np.linalg.det(centred[:, :2]))))  # output px per matte px
    keep = np.zeros(u.shape, dtype=bool)
    distance = np.zeros(u.shape, dtype=np.float64)
    for name in cut_edges:
        keep |= past[name] > 0
        distance = np.maximum(distance, past[name] * zoom)
    for name, amount in past.items():
        if name not in cut_edges:
            keep &= amount <= 0  # beyond a side that is only background: leave it empty
    fade = np.clip(1.0 - distance / max(1.0, fade_px), 0.0, 1.0)
    return np.where(keep, replicated * fade, warped).astype(np.float32)
