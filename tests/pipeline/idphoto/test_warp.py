"""Resampling a matte into the photo's frame: the alpha continued past the sides the frame cuts."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from faceflow.pipeline.idphoto.warp import SEAM_PX, _continue_cut_sides

SIDES = ("top", "bottom", "left", "right")


def whole_frame(
    alpha: NDArray[np.float32],
    centred: NDArray[np.float64],
    size_out: tuple[int, int],
    cut_edges: tuple[str, ...],
    warped: NDArray[np.float32],
    fade_px: float,
) -> NDArray[np.float32]:
    """The continuation worked out for every pixel of the frame, as it was before only the rows
    and columns past a cut side were."""
    replicated = cv2.warpAffine(
        alpha, centred, size_out, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    back = cv2.invertAffineTransform(centred)
    width, height = size_out
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    u = back[0, 0] * xs + back[0, 1] * ys + back[0, 2]
    v = back[1, 0] * xs + back[1, 1] * ys + back[1, 2]
    h, w = alpha.shape
    past = {"top": -0.5 - v, "bottom": v - (h - 0.5), "left": -0.5 - u, "right": u - (w - 0.5)}
    zoom = math.sqrt(abs(float(np.linalg.det(centred[:, :2]))))
    keep = np.zeros(u.shape, dtype=bool)
    distance = np.zeros(u.shape, dtype=np.float64)
    for name in cut_edges:
        keep |= past[name] > -SEAM_PX
        if name != "bottom":  # the body runs on below the photo, unfaded
            distance = np.maximum(distance, past[name] * zoom)
    for name, amount in past.items():
        if name not in cut_edges:
            keep &= amount <= 0
    fade = np.clip(1.0 - distance / max(1.0, fade_px), 0.0, 1.0)
    return np.where(keep, replicated * fade, warped).astype(np.float32)


@pytest.mark.parametrize("seed", range(12))
def test_only_the_strip_past_a_cut_side_changes_and_as_over_the_whole_frame(seed: int) -> None:
    # A matte of 90 × 60 px placed by a random similarity (turned up to 25°, scaled 0.5-3×,
    # shifted so that one or more of its sides fall inside a 200 × 240 frame), with one or two
    # sides cut.
    rng = np.random.default_rng(seed)
    alpha = rng.random((90, 60)).astype(np.float32)
    turn = math.radians(rng.uniform(-25, 25))
    scale = rng.uniform(0.5, 3.0)
    shift = rng.uniform(-80, 160, 2)
    centred = np.array(
        [
            [scale * math.cos(turn), -scale * math.sin(turn), shift[0]],
            [scale * math.sin(turn), scale * math.cos(turn), shift[1]],
        ]
    )
    cut = tuple(str(side) for side in rng.choice(SIDES, int(rng.integers(1, 3)), replace=False))
    size_out = (200, 240)
    warped = np.asarray(
        cv2.warpAffine(alpha, centred, size_out, flags=cv2.INTER_LINEAR), np.float32
    )

    expected = whole_frame(alpha, centred, size_out, cut, warped.copy(), 12.0)
    got = _continue_cut_sides(alpha, centred, size_out, cut, warped.copy(), 12.0)

    np.testing.assert_array_equal(got, expected)
    assert not np.array_equal(got, warped)  # each case continues the alpha somewhere


@pytest.mark.parametrize("turn_deg", [0.0, 4.0, -7.0])
def test_no_seam_runs_along_a_cut_side(turn_deg: float) -> None:
    # An opaque matte cut at the bottom, levelled by a few degrees: the pixels just inside the
    # photo's last row were blended with the empty border beyond it, a half-transparent seam
    # between the photo and its continuation that showed as a light dashed line across a dark
    # top (df_img30) and above the hair of a head cut at the top (df_img34).
    alpha = np.ones((90, 60), dtype=np.float32)
    turn, scale = math.radians(turn_deg), 2.3
    centred = np.array(
        [
            [scale * math.cos(turn), -scale * math.sin(turn), 30.0],
            [scale * math.sin(turn), scale * math.cos(turn), 10.0],
        ]
    )
    size_out = (200, 240)
    warped = np.asarray(
        cv2.warpAffine(alpha, centred, size_out, flags=cv2.INTER_LINEAR), np.float32
    )

    got = _continue_cut_sides(alpha, centred, size_out, ("bottom",), warped, 12.0)

    back = cv2.invertAffineTransform(centred)
    ys, xs = np.mgrid[0:240, 0:200].astype(np.float64)
    u = back[0, 0] * xs + back[0, 1] * ys + back[0, 2]
    v = back[1, 0] * xs + back[1, 1] * ys + back[1, 2]
    # Well inside the matte's left and right sides, from a few rows above its bottom edge on.
    strip = (u > 2.0) & (u < 57.0) & (v > 85.0)
    assert strip.sum() > 1000
    assert got[strip].min() > 0.999
