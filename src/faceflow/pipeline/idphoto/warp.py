"""Resampling a matte into an ID photo's frame."""

from __future__ import annotations

import math

import cv2
import numpy as np
from numpy.typing import NDArray

from faceflow.pipeline.idphoto.layout import Layout, compose
from faceflow.pipeline.idphoto.matte import Matte


def warp_matte(matte: Matte, layout: Layout) -> tuple[NDArray[np.uint8], NDArray[np.float32]]:
    """The matte's foreground (uint8 RGB) and alpha (float32) in the layout's output frame.

    Output pixels that map outside the matte get α = 0, so the background shows there. A large
    reduction first shrinks the matte with area averaging: bilinear warping alone skips source
    pixels when it shrinks more than 2×, which aliases hair and fabric.
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
    return (
        np.asarray(warped_fg, dtype=np.uint8),
        np.clip(np.asarray(warped_alpha, dtype=np.float32), 0.0, 1.0),
    )
