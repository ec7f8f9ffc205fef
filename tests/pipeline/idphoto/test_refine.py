"""Matte refinement on synthetic images: guided filter, subject selection, foreground colours."""

from __future__ import annotations

import numpy as np
import pytest

from faceflow.domain import Point
from faceflow.pipeline.idphoto.refine import (
    box_mean,
    estimate_foreground,
    fill_holes,
    guided_filter,
    keep_connected,
    solidify,
)


def step_image(width: int = 80, height: int = 40, edge_x: int = 40) -> np.ndarray:
    """A grey guide: dark left of ``edge_x``, bright from it on."""
    guide = np.full((height, width), 0.1, dtype=np.float32)
    guide[:, edge_x:] = 0.9
    return guide


def test_box_mean_is_the_window_average() -> None:
    values = np.zeros((9, 9), dtype=np.float32)
    values[4, 4] = 9.0

    mean = box_mean(values, 1)

    assert mean[4, 4] == pytest.approx(1.0)
    assert mean[3, 3] == pytest.approx(1.0)
    assert mean[2, 2] == pytest.approx(0.0)


@pytest.mark.parametrize("subsample", [1, 2])
@pytest.mark.parametrize("colour", [False, True])
def test_guided_filter_snaps_a_blurred_edge_to_the_guide(subsample: int, colour: bool) -> None:
    guide = step_image()
    # The source alpha is the right answer blurred over 16 px, as a coarse network output is.
    ramp = np.clip((np.arange(80, dtype=np.float32) - 32) / 16, 0, 1)
    src = np.broadcast_to(ramp, (40, 80)).astype(np.float32)
    guide_in = np.dstack([guide] * 3) if colour else guide

    out = guided_filter(guide_in, src, radius_px=8, eps=1e-4, subsample=subsample)

    row = out[20]
    # The source changes by 1/16 per pixel; the output jumps where the guide does.
    assert row[40] - row[39] > 0.4
    assert row[39] < 0.3 < 0.7 < row[40]
    assert row[:20].max() < 0.05
    assert row[60:].min() > 0.95


def test_guided_filter_smooths_where_the_guide_is_flat() -> None:
    rng = np.random.default_rng(7)
    guide = np.full((40, 40), 0.5, dtype=np.float32)
    src = (0.5 + 0.2 * rng.standard_normal((40, 40))).astype(np.float32)

    out = guided_filter(guide, src, radius_px=4, eps=1e-2)

    assert out.std() < src.std() / 3


def test_guided_filter_with_radius_zero_is_identity() -> None:
    src = np.random.default_rng(1).random((10, 10)).astype(np.float32)

    assert np.array_equal(guided_filter(src, src, 0, 1e-3), src)


def two_blobs() -> np.ndarray:
    alpha = np.zeros((60, 100), dtype=np.float32)
    alpha[10:50, 10:40] = 1.0  # the subject
    alpha[10:50, 70:90] = 1.0  # another salient object
    return alpha


def test_keep_connected_drops_what_is_not_attached_to_the_face() -> None:
    kept = keep_connected(two_blobs(), (Point(25, 30),), feather_px=3)

    assert kept[30, 25] == pytest.approx(1.0)
    assert kept[30, 80] == 0.0
    # The subject's soft edge survives the feathered mask.
    assert kept[30, 39] == pytest.approx(1.0)


def test_keep_connected_falls_back_to_the_largest_region() -> None:
    kept = keep_connected(two_blobs(), (Point(55, 5),), feather_px=2)

    assert kept[30, 25] == pytest.approx(1.0)
    assert kept[30, 80] == 0.0


def test_solidify_fills_unsure_interiors_and_clears_far_background() -> None:
    alpha = np.zeros((100, 100), dtype=np.float32)
    alpha[20:80, 20:80] = 0.8  # an unsure jacket
    alpha[5, 5] = 0.3  # a speck far from the subject

    out = solidify(alpha, band_px=5)

    assert out[50, 50] == 1.0
    assert out[5, 5] == 0.0
    assert out[20, 50] == pytest.approx(0.8)  # at the contour the soft value is kept


def test_solidify_keeps_a_subject_cut_by_the_edge_solid() -> None:
    alpha = np.zeros((50, 50), dtype=np.float32)
    alpha[30:, 10:40] = 0.7  # shoulders running off the bottom edge

    out = solidify(alpha, band_px=4)

    assert out[49, 25] == 1.0


def test_foreground_estimation_removes_the_old_background_from_edges() -> None:
    # A red subject on the left half, a green background; a soft 10 px edge between them.
    height, width = 40, 80
    ramp = np.clip((45 - np.arange(width, dtype=np.float32)) / 10, 0, 1)
    alpha = np.broadcast_to(ramp, (height, width)).astype(np.float32)
    red = np.array([0.8, 0.1, 0.1], dtype=np.float32)
    green = np.array([0.1, 0.7, 0.1], dtype=np.float32)
    image = alpha[..., None] * red + (1 - alpha[..., None]) * green

    foreground = estimate_foreground(image, alpha, radii_px=(20, 3))

    semi = (alpha > 0.2) & (alpha < 0.8)
    # The observed colour at the edge is half green; the estimate is close to the true red.
    assert np.abs(image[semi] - red).max() > 0.2
    assert np.abs(foreground[semi] - red).max() < 0.08
    # Where the subject is opaque the photo is kept exactly.
    opaque = alpha == 1.0
    assert np.allclose(foreground[opaque], image[opaque], atol=1e-5)


def ring_alpha() -> np.ndarray:
    """A subject (a filled square) with two enclosed holes: one at the top, one at the bottom."""
    alpha = np.zeros((60, 60), dtype=np.float32)
    alpha[10:50, 10:50] = 1.0
    alpha[15:22, 25:32] = 0.0  # the "hair" hole
    alpha[38:45, 25:32] = 0.0  # the "body" hole
    return alpha


def test_fill_holes_fills_enclosed_holes_in_the_fill_zone_only() -> None:
    fill_zone = np.zeros((60, 60), dtype=bool)
    fill_zone[30:] = True  # the body: everything below row 30

    out = fill_holes(ring_alpha(), fill_zone)

    assert out[41, 28] == 1.0
    assert out[18, 28] == 0.0
    assert out[2, 2] == 0.0  # the background around the subject reaches the edge: not a hole


def test_fill_holes_leaves_a_hole_of_backdrop_colour_open() -> None:
    keep_open = np.zeros((60, 60), dtype=bool)
    keep_open[38:45, 25:32] = True

    out = fill_holes(ring_alpha(), np.ones((60, 60), dtype=bool), keep_open)

    assert out[41, 28] == 0.0
    assert out[18, 28] == 1.0


def test_foreground_against_a_known_backdrop_removes_exactly_that_colour() -> None:
    truth = np.array([0.2, 0.3, 0.6], dtype=np.float32)
    backdrop = np.full((40, 80, 3), 0.9, dtype=np.float32)
    alpha = np.zeros((40, 80), dtype=np.float32)
    alpha[:, :30] = 1.0
    alpha[:, 30:50] = np.linspace(1.0, 0.0, 20, dtype=np.float32)
    image = alpha[..., None] * truth + (1 - alpha[..., None]) * backdrop

    out = estimate_foreground(image, alpha, background=backdrop)

    # What shows on a new background is α·F: off by under 2 % anywhere.
    error = np.abs(alpha[..., None] * (out - truth))
    assert error.max() < 0.02
    # A plain blur-fusion estimate (B̄ from the photo) leaves more of the old backdrop in.
    blind = np.abs(alpha[..., None] * (estimate_foreground(image, alpha) - truth))
    assert blind.max() > 1.5 * error.max()
    assert np.array_equal(out[:, :30], image[:, :30])
