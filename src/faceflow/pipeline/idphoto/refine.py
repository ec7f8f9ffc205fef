"""Matte refinement: edge-aware guided filtering, keeping the subject, foreground colour estimation.

All functions take and return float32 arrays with values in [0, 1]; images are (H, W, 3) RGB,
alphas (H, W). Everything is built from box filters (``cv2.blur``), so cost is linear in pixels
and independent of the radius.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from faceflow.domain import Point

FloatImage = NDArray[np.float32]


def box_mean(values: FloatImage, radius_px: int) -> FloatImage:
    """Mean over a (2r+1)² window, edges handled by reflection (cv2.boxFilter, normalised)."""
    size = 2 * radius_px + 1
    return np.asarray(
        cv2.boxFilter(values, -1, (size, size), normalize=True, borderType=cv2.BORDER_REFLECT),
        dtype=np.float32,
    )


def shrink_by(values: FloatImage, factor: int) -> FloatImage:
    """``values`` shrunk ``factor`` times by block means, to (H // factor, W // factor).

    The last H mod factor rows and W mod factor columns are left out, so each output pixel is
    the mean of exactly factor × factor input pixels: OpenCV's whole-factor area path, which
    cost a half to a sixteenth of its path for a fractional scale (what ``cv2.resize`` to
    ``W // factor`` takes when W is not a multiple) on a portrait's crop.
    """
    height, width = values.shape[:2]
    if factor <= 1:
        return np.ascontiguousarray(values, dtype=np.float32)
    small = (max(1, width // factor), max(1, height // factor))
    whole = values[: small[1] * factor, : small[0] * factor]
    return np.asarray(cv2.resize(whole, small, interpolation=cv2.INTER_AREA), np.float32)


def enlarge_by(values: FloatImage, factor: int, size: tuple[int, int]) -> FloatImage:
    """A grid made by :func:`shrink_by` enlarged bilinearly back to ``size`` (width, height).

    Its pixels are factor × factor blocks from the top-left corner, so it is enlarged by exactly
    ``factor`` (each pixel's centre lands on its block's centre) and the rows and columns
    :func:`shrink_by` left out repeat the last ones.
    """
    width, height = size
    if values.shape[:2] == (height, width):
        return np.ascontiguousarray(values, dtype=np.float32)
    rows, cols = values.shape[:2]
    big = cv2.resize(values, (cols * factor, rows * factor), interpolation=cv2.INTER_LINEAR)
    big = big[:height, :width]
    bottom, right = height - big.shape[0], width - big.shape[1]
    if bottom or right:
        big = cv2.copyMakeBorder(big, 0, bottom, 0, right, cv2.BORDER_REPLICATE)
    return np.asarray(big, np.float32)


def channels(values: FloatImage) -> FloatImage:
    """A one-channel (H, W) image as (H, W, 3), each channel a copy.

    numpy broadcasting an (H, W, 1) operand over three channels runs an inner loop of length 3
    per pixel: six times slower than the same operation on arrays of one shape (measured on a
    portrait's crop), so per-pixel weights are spread to three channels first (``cv2.merge``
    costs a tenth of one such multiplication).
    """
    return np.asarray(cv2.merge([values, values, values]), np.float32)


def guided_filter(
    guide: FloatImage, src: FloatImage, radius_px: int, eps: float, subsample: int = 1
) -> FloatImage:
    """He, Sun & Tang's guided filter (ECCV 2010 / TPAMI 2013) of ``src`` steered by ``guide``.

    ``guide`` is (H, W) or (H, W, 3); ``src`` is (H, W). Locally the output is an affine function
    of the guide, ``q = a·I + b``, fitted by least squares in each window with ridge ``eps``;
    so ``src``'s edges snap to the guide's edges where the guide has contrast (hair strands against
    the background) and ``src`` is smoothed where it has none. Larger ``eps`` smooths more.

    ``subsample`` > 1 is He & Sun's *fast* guided filter (arXiv 1505.00996): the coefficients are
    fitted on images shrunk by that factor, then enlarged and applied to the full-size guide, so
    edges stay as sharp as the guide's while the cost drops by about ``subsample²``.
    """
    if radius_px < 1:
        return src.astype(np.float32, copy=True)
    full = guide.astype(np.float32, copy=False)
    p = src.astype(np.float32, copy=False)
    factor = max(1, min(subsample, radius_px))
    if factor > 1:
        # Not shrink_by: its whole blocks moved the matte's alpha (textured backdrops' hair-band
        # MSE 7.9 → 8.1 ×10⁻³ in bench/matting.py) for 1–2 ms.
        small = (max(1, p.shape[1] // factor), max(1, p.shape[0] // factor))
        fit_guide = np.asarray(cv2.resize(full, small, interpolation=cv2.INTER_AREA), np.float32)
        fit_src = np.asarray(cv2.resize(p, small, interpolation=cv2.INTER_AREA), np.float32)
        fit_radius = max(1, round(radius_px / factor))
    else:
        fit_guide, fit_src, fit_radius = full, p, radius_px
    if full.ndim == 2:
        coefficients = _coefficients_gray(fit_guide, fit_src, fit_radius, eps)
    else:
        coefficients = _coefficients_colour(fit_guide, fit_src, fit_radius, eps)
    if factor > 1:
        size = (p.shape[1], p.shape[0])
        coefficients = [
            np.asarray(cv2.resize(c, size, interpolation=cv2.INTER_LINEAR), np.float32)
            for c in coefficients
        ]
    *slopes, offset = coefficients
    out = offset.copy()
    if full.ndim == 2:
        out += slopes[0] * full
    else:
        for channel, slope in enumerate(slopes):
            out += slope * full[..., channel]
    return out


def _coefficients_gray(guide: FloatImage, p: FloatImage, r: int, eps: float) -> list[FloatImage]:
    """Window means of the per-window fit ``q = a·I + b``: [mean a, mean b]."""
    mean_i = box_mean(guide, r)
    mean_p = box_mean(p, r)
    cov_ip = box_mean(guide * p, r) - mean_i * mean_p
    var_i = box_mean(guide * guide, r) - mean_i * mean_i
    a = np.asarray(cov_ip / (var_i + np.float32(eps)), dtype=np.float32)
    b = np.asarray(mean_p - a * mean_i, dtype=np.float32)
    return [box_mean(a, r), box_mean(b, r)]


def _coefficients_colour(guide: FloatImage, p: FloatImage, r: int, eps: float) -> list[FloatImage]:
    """Window means of the fit ``q = a·I + b`` with a 3-vector ``a``: [a_r, a_g, a_b, b]."""
    # Each window solves a 3×3 system (Σ + eps·I) a = cov(I, p); the inverse is written out with
    # cofactors so the whole image is solved in a few vectorised passes.
    mean_i = box_mean(guide, r)
    mean_p = box_mean(p, r)
    cov_ip = box_mean(guide * p[..., None], r) - mean_i * mean_p[..., None]
    ch = [guide[..., k] for k in range(3)]
    mu = [mean_i[..., k] for k in range(3)]
    e = np.float32(eps)
    s_rr = box_mean(ch[0] * ch[0], r) - mu[0] * mu[0] + e
    s_rg = box_mean(ch[0] * ch[1], r) - mu[0] * mu[1]
    s_rb = box_mean(ch[0] * ch[2], r) - mu[0] * mu[2]
    s_gg = box_mean(ch[1] * ch[1], r) - mu[1] * mu[1] + e
    s_gb = box_mean(ch[1] * ch[2], r) - mu[1] * mu[2]
    s_bb = box_mean(ch[2] * ch[2], r) - mu[2] * mu[2] + e
    inv_rr = s_gg * s_bb - s_gb * s_gb
    inv_rg = s_gb * s_rb - s_rg * s_bb
    inv_rb = s_rg * s_gb - s_gg * s_rb
    inv_gg = s_rr * s_bb - s_rb * s_rb
    inv_gb = s_rb * s_rg - s_rr * s_gb
    inv_bb = s_rr * s_gg - s_rg * s_rg
    det = s_rr * inv_rr + s_rg * inv_rg + s_rb * inv_rb
    c_r, c_g, c_b = cov_ip[..., 0], cov_ip[..., 1], cov_ip[..., 2]
    a_r = np.asarray((inv_rr * c_r + inv_rg * c_g + inv_rb * c_b) / det, dtype=np.float32)
    a_g = np.asarray((inv_rg * c_r + inv_gg * c_g + inv_gb * c_b) / det, dtype=np.float32)
    a_b = np.asarray((inv_rb * c_r + inv_gb * c_g + inv_bb * c_b) / det, dtype=np.float32)
    b = np.asarray(mean_p - a_r * mu[0] - a_g * mu[1] - a_b * mu[2], dtype=np.float32)
    return [box_mean(a_r, r), box_mean(a_g, r), box_mean(a_b, r), box_mean(b, r)]


def keep_connected(alpha: FloatImage, seeds: tuple[Point, ...], feather_px: int) -> FloatImage:
    """``alpha`` with everything not connected to the ``seeds`` (points in alpha pixels) removed.

    The subject is the 8-connected region of ``alpha > 0.5`` that holds a seed (the face's eyes
    and nose). Its soft edge lies partly below 0.5, so the kept region is grown by ``feather_px``
    and its border blurred before it multiplies ``alpha``: unrelated objects (another person, a
    lamp the network found salient) vanish, the subject's hair fringe stays. If no seed lies on
    the subject (the network missed it), the largest region is kept instead.
    """
    binary = (alpha > 0.5).astype(np.uint8)
    count, labels = cv2.connectedComponents(binary, connectivity=8)
    if count <= 2:
        return alpha.astype(np.float32, copy=True)
    height, width = alpha.shape
    wanted = {
        int(labels[min(height - 1, max(0, round(p.y))), min(width - 1, max(0, round(p.x)))])
        for p in seeds
    } - {0}
    if not wanted:
        sizes = np.bincount(labels.reshape(-1), minlength=count)
        sizes[0] = 0
        wanted = {int(np.argmax(sizes))}
    # One comparison per wanted label (usually one): np.isin sorts all labels, 20 times slower.
    region = np.zeros(alpha.shape, dtype=np.uint8)
    for label in wanted:
        region[labels == label] = 1
    if feather_px > 0:
        # Grown by a distance transform rather than a dilation: the same disc, at a cost that
        # does not depend on its radius.
        distance = cv2.distanceTransform(1 - region, cv2.DIST_L2, 3)
        grown = (distance <= feather_px).astype(np.float32)
        soft = box_mean(grown, max(1, feather_px // 2))
    else:
        soft = region.astype(np.float32)
    return np.asarray(alpha * soft, dtype=np.float32)


def fill_holes(
    alpha: FloatImage,
    fill_zone: NDArray[np.bool_],
    keep_open: NDArray[np.bool_] | None = None,
) -> FloatImage:
    """``alpha`` with the subject's holes filled where they cannot be background.

    A hole is a region of ``alpha < 0.5`` that does not reach the crop's edge: enclosed by the
    subject. One whose centre lies in ``fill_zone`` (the face and the body) is filled, with a
    pixel of margin, unless most of it is ``keep_open`` (backdrop colour seen through hair);
    holes elsewhere (loops of hair) are left as they are.
    """
    below = (alpha < 0.5).astype(np.uint8)
    # Labels only (a quarter of the CPU of OpenCV's per-label statistics): the areas and centres
    # needed are those of the enclosed regions, a few percent of the pixels, taken from them.
    count, labels = cv2.connectedComponents(below, connectivity=4)
    out = alpha.astype(np.float32, copy=True)
    if count <= 1:
        return out
    enclosed = np.ones(count, dtype=bool)
    enclosed[0] = False
    for edge in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
        enclosed[edge] = False
    if not enclosed.any():
        return out
    ys, xs = np.nonzero(enclosed[labels])
    hole = labels[ys, xs]
    area = np.bincount(hole, minlength=count)
    size = np.maximum(area, 1)
    height, width = alpha.shape
    cx = np.clip(np.round(np.bincount(hole, xs, count) / size).astype(int), 0, width - 1)
    cy = np.clip(np.round(np.bincount(hole, ys, count) / size).astype(int), 0, height - 1)
    wanted = enclosed & fill_zone[cy, cx]
    if keep_open is not None and wanted.any():
        open_count = np.bincount(hole[keep_open[ys, xs]], minlength=count)
        wanted &= open_count * 2 < area
    if not wanted.any():
        return out
    holes = np.zeros(alpha.shape, dtype=np.uint8)
    filled = wanted[hole]
    holes[ys[filled], xs[filled]] = 1
    out[cv2.dilate(holes, np.ones((3, 3), np.uint8)) > 0] = 1.0
    return out


def estimate_foreground(
    image: FloatImage,
    alpha: FloatImage,
    radii_px: tuple[int, ...] = (45, 3),
    *,
    background: FloatImage | None = None,
) -> FloatImage:
    """The subject's own colour F where it is see-through, so it can go on a new background.

    A pixel of the photo is ``I = αF + (1 − α)B``; at a hair strand with α = 0.4, 60 % of what the
    camera saw is the old background, which would show as a halo on a new one. This is the
    blur-fusion estimator of Forte & Pitié ("Approximate fast foreground colour estimation",
    ICIP 2021): local foreground and background colours are estimated as alpha-weighted box means
    of the current guesses, then F is corrected so ``αF + (1 − α)B`` reproduces ``I``:

        F ← F̄ + α (I − α F̄ − (1 − α) B̄)

    run once with a wide radius (for colours far from the subject) and once with a narrow one
    (for local detail). Where α = 1 the result is exactly ``I``. Wide means are smooth, so they
    are computed on a shrunk copy and enlarged again: same result, a fraction of the cost.

    ``background``, when the old backdrop's colour is known at every pixel (a plain backdrop's
    model), replaces the estimated B̄: the correction then removes exactly that colour, so no
    fringe of it remains on a new background. Only pixels with 0 < α < 1 change.
    """
    result = image.astype(np.float32, copy=True)
    soft = soft_foreground(image, alpha, radii_px, background=background)
    if soft is not None:
        ys, xs, colours = soft
        result[ys, xs] = colours
    return result


def foreground_u8(
    crop: NDArray[np.uint8],
    image: FloatImage,
    alpha: FloatImage,
    *,
    background: FloatImage | None = None,
) -> NDArray[np.uint8]:
    """:func:`estimate_foreground` as 8-bit RGB, black where α = 0; ``image`` is ``crop`` / 255.

    Where α = 1 the estimate is the photo itself, so those pixels are copied from ``crop``
    instead of converted back from floats (the same bytes: ``round(c / 255 · 255) = c``), and
    only the see-through pixels are converted: a full-size float copy and conversion less.
    Fully transparent pixels carry no colour: zeroed, the serialised matte compresses to less.
    """
    visible = (alpha > 0.0).astype(np.uint8)
    out = np.asarray(cv2.bitwise_and(crop, crop, mask=visible), dtype=np.uint8)
    soft = soft_foreground(image, alpha, background=background)
    if soft is not None:
        ys, xs, colours = soft
        out[ys, xs] = (colours * np.float32(255.0) + np.float32(0.5)).astype(np.uint8)
    return out


def soft_foreground(
    image: FloatImage,
    alpha: FloatImage,
    radii_px: tuple[int, ...] = (45, 3),
    *,
    background: FloatImage | None = None,
) -> tuple[NDArray[np.intp], NDArray[np.intp], FloatImage] | None:
    """The foreground colours of :func:`estimate_foreground` at the pixels with 0 < α < 1 only.

    Returns their rows, columns and (n, 3) colours in [0, 1], or ``None`` when there are none.
    The local means F̄ and B̄ are smooth: they are estimated on a copy at half size (a quarter of
    the pixels); only the last step, which brings back the photo's own detail through ``I``,
    runs at full resolution, and only at those pixels (a few percent of a portrait's crop).
    """
    soft = (alpha > 0.0) & (alpha < 1.0)
    if not soft.any():
        return None
    height, width = alpha.shape
    factor = 2 if min(height, width) >= 64 else 1

    part, alpha_part = shrink_by(image, factor), shrink_by(alpha, factor)
    known = None if background is None else shrink_by(background, factor)
    mean_f, mean_b = _blur_fusion(part, alpha_part, radii_px, factor, known)
    ys, xs = np.nonzero(soft)
    f_bar = _sample(mean_f, ys, xs, factor, (width, height))
    if background is not None:
        b_bar = background[ys, xs]
    else:
        b_bar = _sample(mean_b, ys, xs, factor, (width, height))
    a_soft = alpha[ys, xs][:, None]
    final = f_bar * (1.0 - a_soft * a_soft) - b_bar * (a_soft - a_soft * a_soft)
    final += image[ys, xs] * a_soft
    return ys, xs, np.clip(final, 0.0, 1.0)


def _blur_fusion(
    image: FloatImage,
    alpha: FloatImage,
    radii_px: tuple[int, ...],
    factor: int,
    known: FloatImage | None,
) -> tuple[FloatImage, FloatImage]:
    """F̄ and B̄ of the last of Forte & Pitié's passes, on ``image``'s (shrunk) grid.

    ``radii_px`` are in full-size pixels, ``factor`` the shrink of ``image`` and ``alpha``;
    ``known`` the backdrop on the same grid, if any.
    """
    a = channels(alpha)
    keep = 1.0 - a * a  # F̄'s weight: 1 − α²
    mix = a - a * a  # B̄'s weight: α (1 − α)
    seen = image * a  # α I, the first term
    foreground = image
    estimated_b = image if known is None else known
    radii = [max(1, round(r / factor)) for r in radii_px]
    mean_f, mean_b = foreground, estimated_b
    for index, radius in enumerate(radii):
        mean_f, mean_b = _weighted_means(foreground, estimated_b, alpha, radius, known)
        if index == len(radii) - 1:
            break
        estimate = mean_f * keep
        estimate -= mean_b * mix
        estimate += seen
        np.clip(estimate, 0.0, 1.0, out=estimate)
        foreground, estimated_b = estimate, mean_b
    return mean_f, mean_b


def _sample(
    grid: FloatImage,
    ys: NDArray[np.intp],
    xs: NDArray[np.intp],
    factor: int,
    full: tuple[int, int],
) -> FloatImage:
    """``grid`` (shrunk ``factor`` times) enlarged to ``full`` (width, height), read at (ys, xs).

    Enlarging the whole grid and gathering costs less than interpolating at the soft pixels
    alone (tried: numpy's gathers and per-point weights cost as much as OpenCV's resize).
    """
    return np.asarray(enlarge_by(grid, factor, full)[ys, xs], np.float32)


def _weighted_means(
    foreground: FloatImage,
    background: FloatImage,
    alpha: FloatImage,
    radius_px: int,
    known_background: FloatImage | None = None,
) -> tuple[FloatImage, FloatImage]:
    """Box means of F weighted by α and of B weighted by 1 − α, at full size.

    With ``known_background`` B̄ is that, and only F's mean is computed.
    """
    eps = np.float32(1e-5)
    a = channels(alpha)
    weighted_f = foreground * a
    weighted_b = None if known_background is not None else background - background * a
    height, width = alpha.shape
    factor = max(1, min(radius_px // 8, min(height, width) // 16))
    alpha_s, radius = alpha, radius_px
    if factor > 1:
        weighted_f, alpha_s = shrink_by(weighted_f, factor), shrink_by(alpha, factor)
        weighted_b = None if weighted_b is None else shrink_by(weighted_b, factor)
        radius = max(1, round(radius_px / factor))
    mean_a = channels(box_mean(alpha_s, radius))
    mean_f = box_mean(weighted_f, radius) / (mean_a + eps)
    mean_b = None if weighted_b is None else box_mean(weighted_b, radius) / ((1 - mean_a) + eps)
    if factor > 1:
        mean_f = enlarge_by(mean_f, factor, (width, height))
        mean_b = None if mean_b is None else enlarge_by(mean_b, factor, (width, height))
    if mean_b is None:
        assert known_background is not None
        mean_b = known_background
    return np.asarray(mean_f, np.float32), np.asarray(mean_b, np.float32)


def solidify(alpha: FloatImage, band_px: int) -> FloatImage:
    """``alpha`` forced to 1 deep inside the subject and 0 deep outside it.

    The network is unsure over large flat areas (a dark jacket against a dark wall comes out at
    α ≈ 0.8), which on a new background shows as a tinted veil. Only a band of ``band_px`` around
    the α = 0.5 contour keeps soft values: that is where hair and edges are.
    """
    if band_px < 1:
        return alpha.astype(np.float32, copy=True)
    inside = (alpha > 0.5).astype(np.uint8)
    # Distances to the contour from either side (distance transforms cost the same for any band).
    # Pixels beyond the image count as "inside" for the inside distance, so a subject cut by the
    # crop's edge stays solid up to that edge.
    padded = cv2.copyMakeBorder(inside, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=1)
    deep_inside = cv2.distanceTransform(padded, cv2.DIST_L2, 3)[1:-1, 1:-1] > band_px
    deep_outside = cv2.distanceTransform(1 - inside, cv2.DIST_L2, 3) > band_px
    out = alpha.astype(np.float32, copy=True)
    out[deep_inside] = 1.0
    out[deep_outside] = 0.0
    return out
