"""Resampling a matte into an ID photo's frame."""

from __future__ import annotations

import math

import cv2
import numpy as np
from numpy.typing import NDArray

from faceflow.pipeline.idphoto.compliance.geometry import CUT_FAIL_MM
from faceflow.pipeline.idphoto.layout import Layout, compose
from faceflow.pipeline.idphoto.matte import Matte

# Beyond a side where the frame cuts the person, the photo's edge is continued and fades out
# over this length (not below a cut bottom, see _continue_cut_sides).
CUT_FADE_MM = 2.0
# Output pixels within this many matte pixels inside a cut side take the continued alpha too:
# the plain warp blends the photo's last row there with the empty border beyond it, and that
# half-transparent seam showed as a light dashed line along the cut (under a dark top, df_img30;
# above the hair, df_img34), dashed where the levelled frame's rows cross the photo's edge.
SEAM_PX = 1.0


def warp_matte(matte: Matte, layout: Layout) -> tuple[NDArray[np.uint8], NDArray[np.float32]]:
    """The matte's foreground (uint8 RGB) and alpha (float32) in the layout's output frame.

    Output pixels that map outside the matte get α = 0, so the background shows there, except
    beyond the crop sides where the layout could not avoid cutting the person
    (``layout.cut_edges``): there the photo's last row or column is continued, and fades out
    over ``CUT_FADE_MM`` at the top and the sides, so no hard edge of empty background runs
    through the body (a sliver under a millimetre disappears; the report fails anything
    larger); below a cut bottom it runs on unfaded to the frame's edge, as clothes would. Not
    at a top cut of ``CUT_FAIL_MM`` or more: there the edge is the head's, and its hair,
    continued, made a streaked smear above a crown the photo does not hold (rose_leslie on
    ``cn-1inch``, 3.3 mm short), painting what is missing; the chosen background shows the head
    cut as it is, which the report fails. A large reduction first shrinks the matte with area
    averaging: bilinear warping alone skips source pixels when it shrinks more than 2×, which
    aliases hair and fabric.
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
    continued = tuple(
        name
        for name, mm in zip(layout.cut_edges, layout.cut_mm, strict=True)
        if name != "top" or mm < CUT_FAIL_MM
    )
    if continued:
        fade_px = CUT_FADE_MM * layout.spec.px_per_mm
        warped_alpha = _continue_cut_sides(
            alpha,
            centred,
            size_out,
            continued,
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
    to nothing ``fade_px`` output pixels past a cut side, top or left or right, and not at all
    below a cut bottom.

    Below the photo's bottom edge the body goes on as it would in a photo taken lower: clothes
    run on out of the frame. Faded there, a dark top turned into a grey band over the
    background under the chest (df_img61, 5–18 mm short on every size); continued, suits,
    tops and bare shoulders run on to the frame's edge as if taken lower. Where the photo ends
    at the neck the neck is run on as a streaked column instead (df_img51), no better than the
    band; those photos fail ``subject_cut_off`` by 5 mm or more. At the top and the sides the
    fade stays: a streak run on to the frame's edge there reads as painted (hair above a crown,
    an arm's edge).

    Only the rows and columns that reach past a cut side are worked out (the strip under a body
    cut by the photo's bottom, say): done over the whole frame, the per-pixel maps of a 4000 ×
    4000 px photo cost a second and over a gigabyte of temporaries for a strip of a few rows.
    """
    replicated = np.asarray(
        cv2.warpAffine(
            alpha, centred, size_out, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        ),
        dtype=np.float32,
    )
    back = cv2.invertAffineTransform(centred)
    width, height = size_out
    h, w = alpha.shape

    def past(name: str, xs: NDArray[np.float64], ys: NDArray[np.float64]) -> NDArray[np.float64]:
        """How far past side ``name`` each output pixel (``xs``, ``ys``) falls, in matte px."""
        u = back[0, 0] * xs + back[0, 1] * ys + back[0, 2]
        v = back[1, 0] * xs + back[1, 1] * ys + back[1, 2]
        if name == "top":
            return np.asarray(-0.5 - v)
        if name == "bottom":
            return np.asarray(v - (h - 0.5))
        if name == "left":
            return np.asarray(-0.5 - u)
        return np.asarray(u - (w - 0.5))

    # The rows (columns) holding any pixel past a cut side: each side is a straight line, so a
    # row's first and last pixels tell.
    rows = np.arange(height, dtype=np.float64)
    cols = np.arange(width, dtype=np.float64)
    row_hit = np.zeros(height, dtype=bool)
    col_hit = np.zeros(width, dtype=bool)
    for name in cut_edges:
        for x in (0.0, width - 1.0):
            row_hit |= past(name, np.full(height, x), rows) > -SEAM_PX
        for y in (0.0, height - 1.0):
            col_hit |= past(name, cols, np.full(width, y)) > -SEAM_PX
    if not row_hit.any():
        return warped
    y0, y1 = int(np.argmax(row_hit)), height - int(np.argmax(row_hit[::-1]))
    x0, x1 = int(np.argmax(col_hit)), width - int(np.argmax(col_hit[::-1]))
    xs, ys = np.meshgrid(cols[x0:x1], rows[y0:y1])
    beyond = {name: past(name, xs, ys) for name in ("top", "bottom", "left", "right")}
    zoom = math.sqrt(abs(float(np.linalg.det(centred[:, :2]))))  # output px per matte px
    keep = np.zeros(xs.shape, dtype=bool)
    distance = np.zeros(xs.shape, dtype=np.float64)
    for name in cut_edges:
        keep |= beyond[name] > -SEAM_PX
        if name != "bottom":
            distance = np.maximum(distance, beyond[name] * zoom)
    for name, amount in beyond.items():
        if name not in cut_edges:
            keep &= amount <= 0  # beyond a side that is only background: leave it empty
    fade = np.clip(1.0 - distance / max(1.0, fade_px), 0.0, 1.0)
    out = np.array(warped, dtype=np.float32)
    box = (slice(y0, y1), slice(x0, x1))
    out[box] = np.where(keep, replicated[box] * fade, warped[box])
    return out
