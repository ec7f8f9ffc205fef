"""The source photo's backdrop: its colour model, and alpha re-estimated against it.

Most ID-photo sources are shot against a plain backdrop: a wall or paper sweep whose colour
changes slowly across the frame. Where the backdrop shows through hair (between strands, inside
loops of hair and buns), the network's coarse matte calls it "subject", and on a new background it
shows as pale or dark half-transparent patches. Knowing the backdrop's colour at every pixel turns
that into a keying problem: a pixel ``I`` mixing the subject's colour ``F`` and the backdrop ``B``
has ``α = (I − B)·(F − B) / |F − B|²`` (the projection of ``I − B`` onto ``F − B``).

:func:`fit_backdrop` fits the model (a quadratic surface per colour channel, so a light fall-off
across the frame is part of it) to the confidently-background pixels, and says whether the backdrop
is *plain* (the model explains it within a few ΔE) or *busy* (a room, a street, a sign: no colour
model holds, and the matte is left as the network and guided filter made it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import cv2
import numpy as np
from numpy.typing import NDArray

FloatImage = NDArray[np.float32]

# The model is fitted on a grid of about this many samples along the long side: a smooth surface
# needs few, and the fit then costs about a millisecond.
FIT_SIDE_PX = 96
# At least this share of the crop must be confident background for a model.
MIN_BACKGROUND_SHARE = 0.04
# Plain: 90 % of the background pixels lie within this ΔE (CIE 1976) of the model.
PLAIN_P90_DELTA_E = 6.0
# Re-estimating alpha needs the subject's colour to differ from the backdrop's by at least the
# first (weight 0) and trusts it fully from the second (RGB distance, 0–1 per channel).
CONTRAST_LOW = 0.10
CONTRAST_HIGH = 0.25
# Keyed alphas this close to 0 or 1 are noise (JPEG, grain) and are snapped.
KEY_SNAP = 0.06
# Where the key would call the subject's own opaque pixels see-through (α below SELF_KEY_ALPHA:
# blonde strands on a light wall, whose highlights lie between the hair's mean colour and the
# wall's), it cannot separate subject from backdrop: trusted fully while at most the first share
# of those nearby pixels are such, not at all from the second, and the old alpha kept there.
SELF_KEY_ALPHA = 0.7
SELF_KEY_SHARE_LOW = 0.03
SELF_KEY_SHARE_HIGH = 0.15
# A pixel outside the subject's edge this close to the backdrop's colour (RGB distance, 0–1: the
# wall's own grain and JPEG noise) is the wall: the key lowers its alpha even where the subject's
# own pixels nearby confuse it (skin beside dark hair). Half of SEEN_THROUGH_DISTANCE: blonde
# strands over a light wall lie further out (bench/matting.py: df_img12 moves by 0.1 at most).
WALL_DISTANCE = 0.06
# Colours this close to the backdrop's (RGB distance, 0–1) are the backdrop seen through the
# subject (what the key is for), not the subject's own colour.
SEEN_THROUGH_DISTANCE = 0.12
# The subject wears the backdrop's colours (dark hair on black, blonde on beige) when more than
# this share of its opaque hair-zone pixels lie within SEEN_THROUGH_DISTANCE of the backdrop: then
# colour cannot tell them apart and alpha is not re-keyed.
CAMOUFLAGE_SHARE = 0.15
# Below this lightness (CIE L*) a backdrop looks like the shadows in hair and clothes, so colour
# cannot tell them apart either: alpha is not re-keyed (edge colours are still decontaminated).
MIN_KEY_LIGHTNESS = 35.0
# A smudge of a dark backdrop that the network took for hair: pixels within this ΔE of the
# backdrop, or within its own grain (the model's p90 ΔE) when that is larger. Dark hair is brown
# or grey-black, a few ΔE lighter or warmer.
SMUDGE_DELTA_E = 2.5
# Background pixels this far (ΔE) from the backdrop's model are something else than the wall:
# below the chin and reaching the crop's edge, the subject's own clothes the cut-out dropped.
CLOTHES_DELTA_E = 15.0
# Leftover backdrop: a subject pixel (α ≥ 0.5) whose colour lies within this ΔE of the backdrop.
LEFTOVER_DELTA_E = 10.0
# The head's shadow on the wall (a flash beside the camera, a lamp to one side) darkens the backdrop
# beside the hair, where the colour model says it is lit; keyed against the lit colour, that
# shadow is dark hair half seen, and the cut-out kept it as a grey halo. The wall's shade is read
# off the background pixels (α = 0) near the subject that are the model's colour scaled (within
# SHADE_HUE_DISTANCE, RGB 0–1, of the scaled colour), no darker than SHADE_MIN, and smooth (the
# mean of what a 3 × 3 mean leaves out, over SHADE_SMOOTH_PX², under SHADE_SMOOTH: a wisp of hair
# the network left out has strands, a shadow none, and the slope of its soft edge leaves nothing).
# A shadow is a patch of them darker than SHADE_DEEP and at least (key radius × SHADE_AREA)²
# in size; the shade reaches SHADE_REACH key radii from it towards the subject (its deepest part
# lies under the network's soft edge).
SHADE_HUE_DISTANCE = 0.03
SHADE_MIN = 0.25
SHADE_SMOOTH = 0.012
SHADE_SMOOTH_PX = 5
SHADE_DEEP = 0.9
SHADE_AREA = 0.5
SHADE_REACH = 0.5


_CHANNEL_SUM = np.ones((1, 3), dtype=np.float32)
_CHANNEL_MEAN = np.full((1, 3), 1 / 3, dtype=np.float32)


class BackdropKind(StrEnum):
    """What the source's background looked like around the subject."""

    PLAIN = "plain"
    BUSY = "busy"


@dataclass(frozen=True, slots=True, eq=False)
class BackdropModel:
    """A quadratic colour surface over the crop, in sRGB 0–1, and how well it fits.

    ``coefficients`` is (6, 3): per channel, the weights of 1, x, y, x², xy, y² with x and y the
    crop's coordinates scaled to [0, 1]. ``p90_delta_e`` is the 90th percentile of the background
    pixels' ΔE from the surface; ``std`` the colour standard deviation (0–255, mean over channels)
    of those pixels, as :attr:`Matte.background_std` reports it.
    """

    coefficients: NDArray[np.float64]
    p90_delta_e: float
    std: float
    lightness: float
    """Mean CIE L* of the backdrop's pixels."""

    @property
    def kind(self) -> BackdropKind:
        return BackdropKind.PLAIN if self.p90_delta_e <= PLAIN_P90_DELTA_E else BackdropKind.BUSY

    def render(self, height: int, width: int) -> FloatImage:
        """The backdrop's colour at every pixel of a (height, width) crop, (H, W, 3) float32."""
        ys = (np.arange(height, dtype=np.float32) + 0.5) / height
        xs = (np.arange(width, dtype=np.float32) + 0.5) / width
        c = self.coefficients.astype(np.float32)
        # Separable: each channel is a(y) + b(y)·x + c·x², evaluated by broadcasting.
        out = np.empty((height, width, 3), dtype=np.float32)
        for k in range(3):
            w = c[:, k]
            row = w[0] + w[2] * ys + w[5] * ys * ys
            slope = w[1] + w[4] * ys
            out[..., k] = row[:, None] + slope[:, None] * xs[None, :] + w[3] * (xs * xs)[None, :]
        return np.clip(out, 0.0, 1.0, out=out)


def _design(xs: NDArray[np.float64], ys: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.stack([np.ones_like(xs), xs, ys, xs * xs, xs * ys, ys * ys], axis=1)


def to_lab(rgb: FloatImage) -> FloatImage:
    """sRGB floats in [0, 1] (any leading shape, last axis 3) → CIE Lab (L 0–100)."""
    flat = np.ascontiguousarray(rgb, dtype=np.float32).reshape(-1, 1, 3)
    return np.asarray(cv2.cvtColor(flat, cv2.COLOR_RGB2Lab), np.float32).reshape(rgb.shape)


def fit_backdrop(
    image: FloatImage, background: NDArray[np.bool_], chin_row: int | None = None
) -> BackdropModel | None:
    """The backdrop's colour model from the pixels ``background`` marks as surely background.

    ``image`` is the crop, (H, W, 3) sRGB in [0, 1]. ``None`` when too little background is
    visible to say anything. The fit is robust: pixels far from a first fit (a sign, a lamp at
    the edge) are dropped and the surface fitted again. Its ``std`` leaves out the subject's
    clothes the cut-out dropped below ``chin_row`` (:func:`dropped_clothes`).
    """
    height, width = background.shape
    # Every step-th pixel: a smooth surface needs no more, and sampling costs nothing.
    step = max(1, -(-max(height, width) // FIT_SIDE_PX))
    small = image[step // 2 :: step, step // 2 :: step]
    sure = background[step // 2 :: step, step // 2 :: step]
    if sure.mean() < MIN_BACKGROUND_SHARE or int(sure.sum()) < 24:
        return None
    ys, xs = np.nonzero(sure)
    colours = small[ys, xs].astype(np.float64)
    design = _design((xs * step + step // 2 + 0.5) / width, (ys * step + step // 2 + 0.5) / height)
    keep = np.ones(len(colours), dtype=bool)
    coefficients: NDArray[np.float64] = np.zeros((6, 3))
    for _ in range(2):
        coefficients = _least_squares(design[keep], colours[keep])
        residual = np.linalg.norm(colours - design @ coefficients, axis=1)
        cut = max(3.0 * float(np.median(residual[keep])), 0.02)
        keep = residual <= cut
        if keep.sum() < 12:
            keep[:] = True
            break
    fitted = (design @ coefficients).astype(np.float32)
    delta = np.linalg.norm(to_lab(colours.astype(np.float32)) - to_lab(fitted), axis=1)
    if chin_row is not None:
        # The samples' grid: row i is the crop's row i·step + step // 2.
        far = np.zeros(sure.shape, dtype=bool)
        far[ys, xs] = delta > CLOTHES_DELTA_E
        first_row = -(-(chin_row - step // 2) // step)
        colours = colours[~dropped_clothes(far, first_row)[ys, xs]]
    std = float((colours * 255.0).std(axis=0).mean())
    lightness = float(to_lab(fitted)[:, 0].mean())
    return BackdropModel(coefficients, float(np.percentile(delta, 90)), std, lightness)


def dropped_clothes(far: NDArray[np.bool_], chin_row: int) -> NDArray[np.bool_]:
    """The pieces of ``far`` (background pixels far from the backdrop's model) that lie wholly at
    or below ``chin_row`` and reach the crop's side or bottom edge: the subject's own shoulders or
    arms, which the cut-out dropped (a dark jacket beside a red drape), or something standing
    below the head. Neither is the backdrop around the hair the spread is about."""
    _, labels, stats, _ = cv2.connectedComponentsWithStats(far.astype(np.uint8), connectivity=8)
    height, width = far.shape
    top, left = stats[:, cv2.CC_STAT_TOP], stats[:, cv2.CC_STAT_LEFT]
    right = left + stats[:, cv2.CC_STAT_WIDTH]
    bottom = top + stats[:, cv2.CC_STAT_HEIGHT]
    edge = (left == 0) | (right == width) | (bottom == height)
    clothes = (top >= chin_row) & edge
    clothes[0] = False  # label 0: everything not far
    return np.asarray(clothes[labels], dtype=bool)


def _least_squares(design: NDArray[np.float64], values: NDArray[np.float64]) -> NDArray[np.float64]:
    """The least-squares fit of ``values`` (n, 3) by ``design`` (n, 6), through the 6×6 normal
    equations.

    ``np.linalg.lstsq`` on the tall (n, 6) matrix cost 2–7 ms of CPU a call (an SVD of a few
    thousand rows); the normal equations cost hundredths of that, and with coordinates in [0, 1]
    they are well conditioned in float64. Solved with ``lstsq`` too, so a degenerate sample (all
    on one row) still gets the minimum-norm surface instead of an error.
    """
    gram = design.T @ design
    return np.asarray(np.linalg.lstsq(gram, design.T @ values, rcond=None)[0], dtype=np.float64)


def shade(image: FloatImage, alpha: FloatImage, backdrop: FloatImage, radius_px: int) -> FloatImage:
    """The wall's shade beside the subject, (H, W) in [SHADE_MIN, 1]: what the lit colour model
    ``backdrop`` is scaled by where the head's shadow falls on the wall (1 elsewhere).

    Read at the background pixels (``alpha`` = 0) whose colour is the model's ``B`` scaled by
    ``s = I·B / |B|²`` (within :data:`SHADE_HUE_DISTANCE`) and smooth; a shadow is a broad patch
    of them (at least (``radius_px`` · SHADE_AREA)² pixels) with ``s`` under SHADE_DEEP, any
    other such pixel is lit wall (1). Each pixel within ``radius_px`` of one takes the darkest
    shade within ``radius_px`` · SHADE_REACH of its nearest (a shadow deepens towards the subject
    that casts it, where the network's soft edge hides it); the rest 1.
    """
    height, width = alpha.shape
    along = _dot(image, backdrop) / np.maximum(_dot(backdrop, backdrop), np.float32(1e-6))
    scaled = np.asarray(backdrop * along[..., None], np.float32)
    on_hue = colour_distance2(image, scaled) <= np.float32(SHADE_HUE_DISTANCE**2)
    window = (SHADE_SMOOTH_PX, SHADE_SMOOTH_PX)
    # Texture: what a 3 × 3 mean leaves out (strands, grain), not the slope of a soft shadow's edge.
    detail = cv2.transform(cv2.absdiff(image, cv2.blur(image, (3, 3))), _CHANNEL_MEAN)
    smooth = cv2.blur(detail, window) < SHADE_SMOOTH
    wall = on_hue & smooth & (along >= SHADE_MIN) & (alpha <= 0.0)
    shaded = (wall & (along < SHADE_DEEP)).astype(np.uint8)
    _, parts, stats, _ = cv2.connectedComponentsWithStats(shaded, connectivity=8)
    broad = stats[:, cv2.CC_STAT_AREA] >= max(1, round((radius_px * SHADE_AREA) ** 2))
    broad[0] = False
    if not broad.any():
        return np.ones((height, width), np.float32)
    lit = np.where(broad[parts], np.minimum(along, np.float32(1.0)), np.float32(1.0))
    # The nearest wall pixel's shade (labels count the zero pixels of the transform's input in
    # raster order, as boolean indexing lists them).
    distance, labels = cv2.distanceTransformWithLabels(
        (~wall).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    nearest = np.concatenate([np.ones(1, np.float32), lit[wall].astype(np.float32)])[labels]
    nearest[distance > radius_px] = 1.0
    reach = max(1, round(radius_px * SHADE_REACH))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
    # Eroded and blurred only around the shade (the rest stays 1): a disc's erosion is most of
    # this function's CPU over the whole crop (28 of 63 ms on df_img30), and the same to the bit
    # here, since every pixel under 1 lies more than the disc and the blur inside the region.
    x, y, w, h = cv2.boundingRect((nearest < 1.0).astype(np.uint8))
    pad = reach + SHADE_SMOOTH_PX
    rows = slice(max(0, y - pad), min(height, y + h + pad))
    cols = slice(max(0, x - pad), min(width, x + w + pad))
    factor = np.ones((height, width), np.float32)
    factor[rows, cols] = np.clip(
        cv2.blur(cv2.erode(nearest[rows, cols], disc), window), SHADE_MIN, 1.0
    )
    return factor


def rekey_alpha(
    image: FloatImage,
    alpha: FloatImage,
    backdrop: FloatImage,
    where: NDArray[np.bool_],
    lower_only: NDArray[np.bool_],
    radius_px: int,
) -> FloatImage:
    """``alpha`` re-estimated against the known ``backdrop`` at the pixels ``where`` marks.

    The subject's local colour ``F̄`` is the mean of nearby opaque pixels (window ``radius_px``,
    computed on a shrunk copy); then ``α = (I − B)·(F̄ − B) / |F̄ − B|²``, snapped near 0 and 1.
    Where ``F̄`` is close to ``B`` (dark hair on a black backdrop, a white shirt on a white one) the
    estimate cannot be trusted, so it is blended back into the old alpha by the contrast ``|F̄ −
    B|``; so it is where the key would call many of the subject's own opaque pixels nearby
    see-through (blonde hair on a light wall: :func:`_self_key_share`). In ``lower_only`` pixels
    the new alpha may only lower the old one (backdrop seen through hair goes; the subject is
    never grown there).
    """
    out = alpha.copy()
    if not where.any():
        return out
    height, width = alpha.shape
    factor = max(1, radius_px // 4)
    size = (max(1, width // factor), max(1, height // factor))

    def local_sum(values: FloatImage) -> FloatImage:
        small = cv2.resize(values, size, interpolation=cv2.INTER_AREA)
        return np.asarray(cv2.blur(small, window, borderType=cv2.BORDER_REFLECT), np.float32)

    r = max(1, round(radius_px / factor))
    window = (2 * r + 1, 2 * r + 1)
    eps = np.float32(1e-4)
    # Every opaque pixel counts, whatever its colour: where the subject's own colour is close to
    # the backdrop's (dark hair on black), F̄ comes out close to B and the old alpha is kept.
    opaque = (alpha >= 0.98).astype(np.float32)
    mean_w = local_sum(opaque)
    mean_f = local_sum(image * opaque[..., None]) / (mean_w[..., None] + eps)
    # Every other pixel is plenty for a share over the key's window, at a quarter of the cost.
    sample = (slice(None, None, 2), slice(None, None, 2))
    confused = _self_key_share(
        np.ascontiguousarray(image[sample]),
        np.ascontiguousarray(opaque[sample]),
        np.ascontiguousarray(backdrop[sample]),
        mean_f,
        local_sum,
    )
    full = (width, height)
    mean_f = np.asarray(cv2.resize(mean_f, full, interpolation=cv2.INTER_LINEAR), np.float32)
    mean_w = np.asarray(cv2.resize(mean_w, full, interpolation=cv2.INTER_LINEAR), np.float32)
    confused = np.asarray(cv2.resize(confused, full, interpolation=cv2.INTER_LINEAR), np.float32)
    ys, xs = np.nonzero(where)
    f = mean_f[ys, xs]
    support = mean_w[ys, xs]
    b = backdrop[ys, xs]
    i = image[ys, xs]
    direction = f - b
    contrast = np.linalg.norm(direction, axis=1)
    keyed = np.einsum("ij,ij->i", i - b, direction) / np.maximum(contrast * contrast, 1e-6)
    keyed = np.clip((keyed - KEY_SNAP) / (1.0 - 2 * KEY_SNAP), 0.0, 1.0)
    trust = np.clip((contrast - CONTRAST_LOW) / (CONTRAST_HIGH - CONTRAST_LOW), 0.0, 1.0)
    trust *= np.clip(support * 20.0, 0.0, 1.0)  # no opaque subject nearby: keep
    span = SELF_KEY_SHARE_HIGH - SELF_KEY_SHARE_LOW
    self_trust = np.clip((SELF_KEY_SHARE_HIGH - confused[ys, xs]) / span, 0.0, 1.0)
    old = alpha[ys, xs]
    # Outside the edge (α < 0.5) a pixel of the backdrop's own colour is backdrop whatever the
    # subject's pixels nearby key as: the guided filter's tail over the plain wall, which shows
    # as a rim on a new background. Keyed even where skin beside dark hair confuses the key.
    offset = i - b
    wall = (old < 0.5) & (np.einsum("ij,ij->i", offset, offset) < np.float32(WALL_DISTANCE**2))
    self_trust[wall] = 1.0
    trust *= self_trust
    new = trust * keyed + (1.0 - trust) * old
    only_lower = lower_only[ys, xs]
    new[only_lower] = np.minimum(new[only_lower], old[only_lower])
    out[ys, xs] = new.astype(np.float32)
    return out


def _self_key_share(
    image: FloatImage,
    opaque: FloatImage,
    backdrop: FloatImage,
    mean_f: FloatImage,
    local_sum: Callable[[FloatImage], FloatImage],
) -> FloatImage:
    """Share of the subject's own opaque pixels nearby that the key would call see-through.

    On the shrunk grid of ``mean_f`` (``local_sum`` shrinks any grid to it and sums over the key's
    window), from ``image``, ``opaque`` and ``backdrop`` on the same, possibly sampled, grid. Each
    opaque pixel is keyed against ``B`` with the local direction ``F̄ − B``; it counts when its α
    comes out below :data:`SELF_KEY_ALPHA`. Pixels of the backdrop's own colour do not count: they
    are backdrop seen through the hair, which the key is there to remove. Dark hair on a light
    wall keys to about 1 throughout (a share near 0); blonde hair on beige does not.
    """
    height, width = opaque.shape
    small_b = cv2.resize(backdrop, (mean_f.shape[1], mean_f.shape[0]), interpolation=cv2.INTER_AREA)
    direction = np.asarray(
        cv2.resize(mean_f - small_b, (width, height), interpolation=cv2.INTER_LINEAR), np.float32
    )
    offset = np.asarray(cv2.subtract(image, backdrop), np.float32)
    # α < SELF_KEY_ALPHA, multiplied out: (I − B)·d < SELF_KEY_ALPHA·|d|² (no division). The dot
    # products are OpenCV's per-pixel multiply and channel sum: a third of numpy's time.
    keyed = _dot(offset, direction)
    limit = _dot(direction, direction) * np.float32(SELF_KEY_ALPHA)
    distance2 = _dot(offset, offset)
    own = (opaque > 0) & (distance2 >= np.float32(SEEN_THROUGH_DISTANCE**2))
    weight = local_sum(own.astype(np.float32)) + np.float32(1e-4)
    confused = (own & (keyed < limit)).astype(np.float32)
    return np.asarray(local_sum(confused) / weight, np.float32)


def colour_distance2(a: FloatImage, b: FloatImage) -> FloatImage:
    """Squared RGB distance between two (H, W, 3) images, per pixel: a third of numpy's norm."""
    offset = np.asarray(cv2.subtract(a, b), np.float32)
    return _dot(offset, offset)


def _dot(a: FloatImage, b: FloatImage) -> FloatImage:
    """Per-pixel dot product of two (H, W, 3) images, (H, W)."""
    return np.asarray(cv2.transform(cv2.multiply(a, b), _CHANNEL_SUM), np.float32)


def drop_smudges(
    image: FloatImage,
    alpha: FloatImage,
    backdrop: FloatImage,
    zone: NDArray[np.bool_],
    depth_px: int,
    max_delta_e: float = SMUDGE_DELTA_E,
) -> FloatImage:
    """``alpha`` without the patches of a dark backdrop that cling to the subject's outline.

    On a black backdrop the key cannot run (shadows in hair look like it), and the network
    sometimes calls a patch of the backdrop beside the hair subject: a dark smudge on any new
    background. A smudge is a region of pixels in ``zone`` whose colour is the backdrop's (within
    ``max_delta_e``: the backdrop's own grain), reached from the background around the subject
    (α < 0.5 and connected to the crop's top or sides, so not a gap inside the hair) through such
    pixels, and no deeper than ``depth_px`` into the subject; it goes to α = 0 with a pixel of
    feather. Hair keeps its alpha: its strands are lighter or warmer than the backdrop, and its
    own black shadows lie inside it, behind lighter strands, where no such path reaches.
    """
    outside = (alpha < 0.5).astype(np.uint8)
    count, labels = cv2.connectedComponents(outside, connectivity=8)
    border = np.concatenate([labels[0], labels[:, 0], labels[:, -1]])
    exterior = np.isin(labels, border[border > 0])
    depth = cv2.distanceTransform(1 - outside, cv2.DIST_L2, 3)
    candidate = zone & (outside == 0) & (depth <= depth_px)
    # ΔE only where it matters: a thin band along the outline, not the whole crop.
    ys, xs = np.nonzero(candidate)
    delta = np.linalg.norm(to_lab(image[ys, xs]) - to_lab(backdrop[ys, xs]), axis=1)
    far = delta >= max_delta_e
    candidate[ys[far], xs[far]] = False
    if not candidate.any():
        return alpha.copy()
    count, labels = cv2.connectedComponents((candidate | exterior).astype(np.uint8), connectivity=8)
    reached = np.zeros(count, dtype=bool)
    reached[np.unique(labels[exterior])] = True
    reached[0] = False
    smudge = candidate & reached[labels]
    if not smudge.any():
        return alpha.copy()
    keep = 1.0 - cv2.blur(smudge.astype(np.float32), (3, 3))
    keep[smudge] = 0.0
    return np.asarray(alpha * keep, dtype=np.float32)


def leftover_share(
    image: FloatImage, alpha: FloatImage, backdrop: FloatImage, zone: NDArray[np.bool_]
) -> float:
    """Share of the subject's pixels in ``zone`` (α ≥ 0.5) whose colour is the backdrop's.

    Within ΔE :data:`LEFTOVER_DELTA_E`: what is left of the old backdrop inside the cut-out (0 when
    the zone holds no subject pixel).
    """
    subject = zone & (alpha >= 0.5)
    count = int(subject.sum())
    if count == 0:
        return 0.0
    delta = np.linalg.norm(to_lab(image[subject]) - to_lab(backdrop[subject]), axis=1)
    return float((delta < LEFTOVER_DELTA_E).sum() / count)
