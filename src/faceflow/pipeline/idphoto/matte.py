"""The portrait matte: a head-and-shoulders cut-out computed once and reused for every rendering.

A :class:`Matte` holds everything rendering needs and nothing it does not: the crop's place in
the source image, the subject's decontaminated colours and its alpha. Changing the background,
the size preset or the file format re-uses it without running the segmenter again; the service
caches it by content hash as the compact bytes of :func:`matte_to_bytes`.
"""

from __future__ import annotations

import io
import json
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from faceflow.domain import Box, Face, Landmarks, Point
from faceflow.errors import NoSubject
from faceflow.imaging.png import encode_png_fast
from faceflow.pipeline.idphoto.backdrop import (
    CAMOUFLAGE_SHARE,
    MIN_KEY_LIGHTNESS,
    SEEN_THROUGH_DISTANCE,
    SMUDGE_DELTA_E,
    BackdropKind,
    BackdropModel,
    colour_distance2,
    drop_smudges,
    fit_backdrop,
    leftover_share,
    rekey_alpha,
    shade,
)
from faceflow.pipeline.idphoto.refine import (
    channels,
    fill_holes,
    foreground_u8,
    guided_filter,
    keep_connected,
    solidify,
)
from faceflow.pipeline.idphoto.specs import PRESET_HEAD_PX

MATTE_MAGIC = b"FFMT"
MATTE_VERSION = 2
# The crop around a face, in face-box heights (YuNet's box runs from mid-forehead to the chin):
# enough above the eyes for tall hair and buns, below them for the shoulders of the tallest preset
# (Canada's 50×70 mm), and to each side for the widest (US 2×2 in).
CROP_ABOVE_EYES = 2.0
CROP_BELOW_EYES = 2.6
CROP_HALF_WIDTH = 1.6
# The largest crop ever refined, whatever the output: refinement time is linear in pixels.
DEFAULT_MAX_SIDE_PX = 1440
# A head (chin to crown) is at least this many face-box heights tall: 1.10–1.47 measured on the
# test and dev-set portraits (YuNet's box runs from mid-forehead to the chin). The crop is shrunk
# until the head, estimated this low, keeps the pixels the output needs; the real head is then
# never smaller than that.
HEAD_PER_FACE_BOX = 1.1
# Refinement sizes as fractions of the crop's long side, so results do not depend on resolution.
GUIDE_RADIUS_FRACTION = 1 / 160
GUIDE_EPS = 1e-4
# The guided filter fits its coefficients on a copy shrunk this many times (He & Sun's fast
# guided filter): the window spans 7 px or more at 1,000 px, so 3 keeps 2+ samples per radius.
GUIDE_SUBSAMPLE = 3
SOFT_BAND_FRACTION = 1 / 50
# The background-uniformity ring: from just outside the subject's edge to this far out.
RING_INNER_FRACTION = 1 / 40
RING_OUTER_FRACTION = 1 / 8
MIN_RING_PIXELS = 200
# The subject's colour near a pixel being re-keyed: opaque pixels within this fraction of the long
# side.
KEY_RADIUS_FRACTION = 1 / 24
# Patches of a dark backdrop stuck to the hair are dropped up to this fraction of the long side
# deep into the subject.
SMUDGE_DEPTH_FRACTION = 1 / 50
# The face, where alpha is never re-keyed and holes are always filled: an ellipse on the detector
# box, these fractions of its width and height from its centre.
FACE_HALF_WIDTH = 0.42
FACE_HALF_HEIGHT = 0.52
# Under this mean alpha over the face the cut-out has left the person out: u2netp takes the
# photo's main subject, and a face behind it (a bystander, a face in a crowd) comes out as
# background; so does a photo blurred past recognition (σ of an eighth of the eye distance).
# Measured over the 87 faces of the test photos and the devset: 0.94–1.0 for every main
# subject, 0 for the five bystanders it missed, 0.58 for one cut by the photo's edge.
SUBJECT_MIN_FACE_ALPHA = 0.5


class Segmenter(Protocol):
    """Anything that turns an RGB crop into an alpha of the same size (``U2NetpSegmenter``)."""

    def predict(self, rgb_crop: NDArray[np.uint8]) -> NDArray[np.float32]: ...


@dataclass(frozen=True, slots=True, eq=False)
class Matte:
    """A cut-out of one face's head and shoulders.

    ``crop_box`` is the crop in source pixels (whole numbers, inside the image); ``foreground`` is
    (h, w, 3) uint8 RGB, the subject's colour with the old background removed from see-through edges
    (equal to the photo where α = 1, black where α = 0); ``alpha`` is (h, w) float32 in [0, 1],
    quantised to steps of 1/255 so a serialised matte renders byte-identically. ``h × w`` may be
    smaller than the crop's size when the crop was shrunk. ``face`` is the face it was cut out for,
    in source pixels; ``source_size_px`` the source image's (width, height); ``background_std`` the
    standard deviation (0–255) of the source's background near the subject, ``None`` when too little
    background was visible. ``backdrop`` says whether the source's backdrop was plain (a colour
    model held: backdrop seen through hair was removed and edge colours decontaminated against it)
    or busy (left as the network saw it), ``None`` when too little of it was visible;
    ``leftover_backdrop`` is, for a plain backdrop, the share of the subject's pixels in the hair
    zone (above the chin, outside the face) whose colour is still the backdrop's (ΔE < 10), ``None``
    otherwise. Compliance reads both. ``others`` are the other faces the detector found in the
    source whose boxes reach into the crop (source pixels): the report's ``face_count`` counts
    those the cut-out kept and the photo shows.
    """

    crop_box: Box
    foreground: NDArray[np.uint8]
    alpha: NDArray[np.float32]
    face: Face
    source_size_px: tuple[int, int]
    background_std: float | None
    backdrop: BackdropKind | None = None
    leftover_backdrop: float | None = None
    others: tuple[Face, ...] = ()

    @property
    def source_px_per_matte_px(self) -> float:
        """How many source pixels one matte pixel spans (1.0 unless the crop was shrunk)."""
        return self.crop_box.width_px / int(self.alpha.shape[1])

    def to_matte_px(self, point: Point) -> Point:
        """A source-pixel point in this matte's pixel grid."""
        kx = self.alpha.shape[1] / self.crop_box.width_px
        ky = self.alpha.shape[0] / self.crop_box.height_px
        return Point((point.x - self.crop_box.x1) * kx, (point.y - self.crop_box.y1) * ky)

    def matte_to_source(self) -> NDArray[np.float64]:
        """The 2×3 affine map from matte pixels to source pixels."""
        kx = self.crop_box.width_px / self.alpha.shape[1]
        ky = self.crop_box.height_px / self.alpha.shape[0]
        return np.array([[kx, 0.0, self.crop_box.x1], [0.0, ky, self.crop_box.y1]])


def quantise_alpha(alpha: NDArray[np.float32]) -> NDArray[np.float32]:
    """``alpha`` rounded to steps of 1/255, what an 8-bit PNG stores exactly."""
    return np.asarray(np.round(alpha * np.float32(255.0)) / np.float32(255.0), dtype=np.float32)


def eye_centre(face: Face) -> Point:
    marks = face.landmarks
    return Point(
        (marks.right_eye.x + marks.left_eye.x) / 2, (marks.right_eye.y + marks.left_eye.y) / 2
    )


def crop_box_for(face: Face, width_px: int, height_px: int) -> Box:
    """The head-and-shoulders crop around ``face``, in whole pixels, clamped to the image."""
    eyes = eye_centre(face)
    centre_x = (eyes.x + face.landmarks.nose.x) / 2
    unit = max(face.box.height_px, face.box.width_px, 1.0)
    x1 = max(0, math.floor(centre_x - CROP_HALF_WIDTH * unit))
    x2 = min(width_px, math.ceil(centre_x + CROP_HALF_WIDTH * unit))
    y1 = max(0, math.floor(eyes.y - CROP_ABOVE_EYES * unit))
    y2 = min(height_px, math.ceil(eyes.y + CROP_BELOW_EYES * unit))
    if x2 - x1 < 2 or y2 - y1 < 2:
        raise ValueError(f"face {face.box} lies outside the {width_px}×{height_px} image")
    return Box(float(x1), float(y1), float(x2), float(y2))


def compute_matte(
    rgb: NDArray[np.uint8],
    face: Face,
    segmenter: Segmenter,
    *,
    source_scale: float = 1.0,
    max_side_px: int = DEFAULT_MAX_SIDE_PX,
    head_px: float | None = None,
    others: Sequence[Face] = (),
) -> Matte:
    """Cut out ``face``'s head and shoulders from ``rgb``; ``others``: the photo's other faces
    (kept in :attr:`Matte.others` where they reach into the crop).

    ``face`` is in source pixels; one pixel of ``rgb`` stands for ``source_scale`` source pixels
    (``DecodedImage.scale``). Steps: crop around the face; segment the crop; refine the alpha's
    edges with a guided filter steered by the crop's colours; keep only the region connected to
    the face (one person: unattached blobs go). Then fit the backdrop's colour model to the sure
    background: when it is plain, alpha is re-estimated against it (darkened where the head's
    shadow falls on it beside the hair: :func:`~faceflow.pipeline.idphoto.backdrop.shade`) at
    the subject's edge and where the backdrop shows through the hair (when it is plain and dark,
    patches of it stuck to the side of the hair are dropped instead). Holes inside the face and
    body are filled, and the subject's true colours are estimated at see-through edges (against
    the backdrop model when there is one, so no fringe of the old backdrop remains).

    Everything after the crop runs at the resolution the output needs, not the source's: the crop
    is shrunk until the head keeps ``head_px`` pixels (the tallest head the matte must serve, in
    output pixels; by default :data:`PRESET_HEAD_PX`, every preset's, so any preset renders from
    this matte at one or more matte pixels per output pixel), and to ``max_side_px`` at most,
    which bounds time and size.

    :class:`~faceflow.errors.NoSubject` (422) when the segmentation left the face out (a
    bystander behind the photo's main subject): the photo would be background only.
    """
    crop, crop_box, source_size = _crop(rgb, face, source_scale, max_side_px, head_px)
    coarse = segmenter.predict(crop)
    image = crop.astype(np.float32) / np.float32(255.0)
    long_side = max(crop.shape[:2])
    radius = max(2, round(long_side * GUIDE_RADIUS_FRACTION))
    alpha = np.clip(
        guided_filter(image, coarse, radius, GUIDE_EPS, subsample=GUIDE_SUBSAMPLE), 0.0, 1.0
    )
    alpha = solidify(alpha, max(3, round(long_side * SOFT_BAND_FRACTION)))
    geometry = Matte(crop_box, crop, alpha, face, source_size, None)
    marks = face.landmarks
    seeds = tuple(geometry.to_matte_px(p) for p in (marks.right_eye, marks.left_eye, marks.nose))
    alpha = keep_connected(alpha, seeds, feather_px=2 * radius)
    face_zone = face_ellipse(geometry, face)
    _check_subject(alpha, face_zone)
    chin_row = max(0, min(alpha.shape[0], round(geometry.to_matte_px(Point(0, face.box.y2)).y)))
    above_chin = np.zeros(alpha.shape, dtype=bool)
    above_chin[:chin_row] = True
    hair_zone = above_chin & ~face_zone
    model = fit_backdrop(image, _sure_background(alpha, long_side), chin_row)
    backdrop_image = None
    keep_open = None
    kind = None if model is None else model.kind
    if model is not None and kind is BackdropKind.PLAIN:
        zones = _Zones(face_zone, hair_zone, chin_row, seeds)
        alpha, backdrop_image, keep_open = _keyed_to_plain_backdrop(
            image, alpha, model, zones, long_side, radius
        )
    alpha = fill_holes(alpha, ~hair_zone, keep_open)
    alpha = quantise_alpha(alpha)
    foreground = foreground_u8(crop, image, alpha, background=backdrop_image)
    leftover = None
    if backdrop_image is not None:
        leftover = leftover_share(image, alpha, backdrop_image, hair_zone)
    return Matte(
        crop_box=crop_box,
        foreground=foreground,
        alpha=alpha,
        face=face,
        source_size_px=source_size,
        background_std=background_std(crop, alpha) if model is None else model.std,
        backdrop=kind,
        leftover_backdrop=leftover,
        others=tuple(other for other in others if _overlap(other.box, crop_box)),
    )


def _crop(
    rgb: NDArray[np.uint8],
    face: Face,
    source_scale: float,
    max_side_px: int,
    head_px: float | None,
) -> tuple[NDArray[np.uint8], Box, tuple[int, int]]:
    """The head-and-shoulders crop of ``rgb`` at the resolution the output needs (see
    :func:`compute_matte`), its exact extent in source pixels, and the source's size."""
    height, width = rgb.shape[:2]
    source_size = (round(width * source_scale), round(height * source_scale))
    box = crop_box_for(face, *source_size)
    inv = 1.0 / source_scale
    x1, y1 = math.floor(box.x1 * inv), math.floor(box.y1 * inv)
    x2, y2 = min(width, math.ceil(box.x2 * inv)), min(height, math.ceil(box.y2 * inv))
    crop = rgb[y1:y2, x1:x2]
    crop_box = Box(x1 * source_scale, y1 * source_scale, x2 * source_scale, y2 * source_scale)
    need_px = PRESET_HEAD_PX if head_px is None else max(head_px, PRESET_HEAD_PX)
    head_estimate = HEAD_PER_FACE_BOX * face.box.height_px / source_scale
    shrink = min(_plain_shrink(crop.shape[:2], max_side_px), need_px / max(1.0, head_estimate))
    if shrink < 1.0:
        size = (max(1, round(crop.shape[1] * shrink)), max(1, round(crop.shape[0] * shrink)))
        crop = np.asarray(cv2.resize(crop, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
        # Resizing rounds the crop's size; the box keeps its exact source extent.
    return np.ascontiguousarray(crop), crop_box, source_size


def _check_subject(alpha: NDArray[np.float32], face_zone: NDArray[np.bool_]) -> None:
    """:class:`~faceflow.errors.NoSubject` when the cut-out left the face out."""
    if not face_zone.any() or float(alpha[face_zone].mean()) < SUBJECT_MIN_FACE_ALPHA:
        raise NoSubject(
            "the cut-out left this person out: the portrait model did not take this face for the"
            " photo's subject (a person behind or beside the main one, or a photo too blurred to"
            " tell the person from the background); use a sharp photo in which this person is"
            " the main subject"
        )


@dataclass(frozen=True, slots=True)
class _Zones:
    """Where the crop's face and hair are: the face's ellipse, the rest above the chin (hair,
    and the backdrop beside it), the chin's row, and the points the subject is connected to."""

    face: NDArray[np.bool_]
    hair: NDArray[np.bool_]
    chin_row: int
    seeds: tuple[Point, ...]


def _keyed_to_plain_backdrop(
    image: NDArray[np.float32],
    alpha: NDArray[np.float32],
    model: BackdropModel,
    zones: _Zones,
    long_side: int,
    radius: int,
) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.bool_]]:
    """``alpha`` re-estimated against a plain backdrop (see :func:`compute_matte`); the
    backdrop as it lies behind the subject (shaded beside the head); and where the backdrop is
    seen through the hair, which filling holes leaves open."""
    backdrop_image = model.render(*alpha.shape)
    radius_key = max(4, round(long_side * KEY_RADIUS_FRACTION))
    if model.lightness >= MIN_KEY_LIGHTNESS:
        # The head's shadow on the wall beside the hair: keyed against the wall as shaded
        # there. Not below the chin, where light clothes and skin of the wall's hue (a
        # cream top on a white wall) read as its shade too.
        factor = shade(image, alpha, backdrop_image, radius_key)
        factor[zones.chin_row :] = 1.0
        backdrop_image = backdrop_image * channels(factor)
    # Inside the hair (not at its edge) only pixels of the backdrop's colour are re-keyed:
    # backdrop seen through loops and buns, never the hair's own highlights.
    close = colour_distance2(image, backdrop_image) < np.float32(SEEN_THROUGH_DISTANCE**2)
    hair_zone = zones.hair
    opaque_hair = hair_zone & (alpha >= 0.98)
    camouflaged = float(close[opaque_hair].mean()) > CAMOUFLAGE_SHARE if opaque_hair.any() else True
    if not camouflaged and model.lightness >= MIN_KEY_LIGHTNESS:
        edge = (alpha > 0.0) & (alpha < 1.0)
        edge = cv2.dilate(edge.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        inside_hair = hair_zone & (alpha > 0.0) & close
        where = (edge | inside_hair) & ~zones.face
        alpha = rekey_alpha(image, alpha, backdrop_image, where, ~edge, radius_key)
        alpha = keep_connected(alpha, zones.seeds, feather_px=2 * radius)
    elif model.lightness < MIN_KEY_LIGHTNESS:
        depth = max(4, round(long_side * SMUDGE_DEPTH_FRACTION))
        grain = max(SMUDGE_DELTA_E, model.p90_delta_e)
        alpha = drop_smudges(image, alpha, backdrop_image, hair_zone, depth, grain)
    return alpha, backdrop_image, hair_zone & close


def _overlap(a: Box, b: Box) -> bool:
    return a.x1 < b.x2 and b.x1 < a.x2 and a.y1 < b.y2 and b.y1 < a.y2


def _plain_shrink(crop_shape: tuple[int, ...], max_side_px: int) -> float:
    """The crop's shrink before any output's need: none, or down to ``max_side_px``."""
    return min(1.0, max_side_px / max(crop_shape[:2]))


# What :func:`sharp_to_head_px` answers for a matte as sharp as any new cut-out of its upload.
ANY_HEAD_PX = 1_000_000


def sharp_to_head_px(
    matte: Matte, source_scale: float = 1.0, max_side_px: int = DEFAULT_MAX_SIDE_PX
) -> int:
    """The tallest head (output px) for which a new cut-out of the same upload would be no
    sharper than ``matte``: the head it was shrunk to keep, or :data:`ANY_HEAD_PX` when it was
    not shrunk for an output's need (the crop was refined at the source's pixels, or at the bound
    on any crop). ``source_scale`` is as for :func:`compute_matte`.
    """
    crop_w = round(matte.crop_box.width_px / source_scale)
    crop_h = round(matte.crop_box.height_px / source_scale)
    unshrunk = round(max(crop_w, crop_h) * _plain_shrink((crop_h, crop_w), max_side_px))
    if max(matte.alpha.shape) >= unshrunk:
        return ANY_HEAD_PX
    return math.floor(HEAD_PER_FACE_BOX * matte.face.box.height_px / matte.source_px_per_matte_px)


def _sure_background(alpha: NDArray[np.float32], long_side: int) -> NDArray[np.bool_]:
    """Pixels surely background: α = 0 and a little away from the subject's edge."""
    outside = (alpha <= 0.0).astype(np.uint8)
    distance = cv2.distanceTransform(outside, cv2.DIST_L2, 3)
    return np.asarray(distance > long_side * RING_INNER_FRACTION, dtype=bool)


def face_ellipse(geometry: Matte, face: Face) -> NDArray[np.bool_]:
    """The face (forehead to chin, cheek to cheek) as a mask in the matte's pixels."""
    height, width = geometry.alpha.shape
    centre = geometry.to_matte_px(
        Point((face.box.x1 + face.box.x2) / 2, (face.box.y1 + face.box.y2) / 2)
    )
    k = 1.0 / geometry.source_px_per_matte_px
    half_w = max(1.0, face.box.width_px * FACE_HALF_WIDTH * k)
    half_h = max(1.0, face.box.height_px * FACE_HALF_HEIGHT * k)
    mask = np.zeros((height, width), dtype=np.uint8)
    cv2.ellipse(
        mask,
        (round(centre.x), round(centre.y)),
        (round(half_w), round(half_h)),
        0.0,
        0.0,
        360.0,
        1,
        thickness=-1,
    )
    return mask.astype(bool)


def background_std(crop: NDArray[np.uint8], alpha: NDArray[np.float32]) -> float | None:
    """Std (0–255, mean over channels) of the background in a ring around the subject.

    The ring starts a little outside the subject's edge, so hair fringe does not count, and stops
    well before the crop's far corners. ``None`` when fewer than ``MIN_RING_PIXELS`` pixels of
    background are visible.
    """
    long_side = max(alpha.shape)
    outside = (alpha <= 0.5).astype(np.uint8)
    # Distance of every pixel to the subject; cheaper than dilating with large kernels.
    distance = cv2.distanceTransform(outside, cv2.DIST_L2, 3)
    inner, outer = long_side * RING_INNER_FRACTION, long_side * RING_OUTER_FRACTION
    ring = (distance > inner) & (distance <= outer) & (alpha < 0.05)
    if int(ring.sum()) < MIN_RING_PIXELS:
        return None
    pixels = crop[ring].astype(np.float64)
    return float(pixels.std(axis=0).mean())


def matte_to_bytes(matte: Matte) -> bytes:
    """A compact, versioned encoding: magic, version byte, JSON header length and header, PNG.

    The PNG is RGBA: the decontaminated foreground and the 8-bit alpha. Never pickle.
    """
    header: dict[str, Any] = {
        "crop_box": [matte.crop_box.x1, matte.crop_box.y1, matte.crop_box.x2, matte.crop_box.y2],
        "source_size_px": list(matte.source_size_px),
        "face": _face_to_json(matte.face),
        "background_std": matte.background_std,
        "backdrop": None if matte.backdrop is None else matte.backdrop.value,
        "leftover_backdrop": matte.leftover_backdrop,
        "others": [_face_to_json(other) for other in matte.others],
    }
    # The alpha is already in steps of 1/255 (quantise_alpha).
    rgba = np.asarray(cv2.cvtColor(matte.foreground, cv2.COLOR_RGB2RGBA), dtype=np.uint8)
    rgba[..., 3] = np.round(matte.alpha * np.float32(255.0)).astype(np.uint8)
    png = encode_png_fast(rgba)
    header["png_bytes"] = len(png)
    header_bytes = json.dumps(header, separators=(",", ":")).encode()
    return (
        MATTE_MAGIC
        + bytes([MATTE_VERSION])
        + struct.pack(">I", len(header_bytes))
        + header_bytes
        + png
    )


def matte_from_bytes(data: bytes) -> Matte:
    """The matte :func:`matte_to_bytes` encoded; ``ValueError`` for anything else.

    A cache should treat ``ValueError`` (corrupt entry, or one written by another version) as a
    miss and recompute.
    """
    prefix = len(MATTE_MAGIC)
    if len(data) < prefix + 5 or data[:prefix] != MATTE_MAGIC:
        raise ValueError("not a faceflow matte")
    if data[prefix] != MATTE_VERSION:
        raise ValueError(f"matte version {data[prefix]} is not {MATTE_VERSION}")
    (length,) = struct.unpack(">I", data[prefix + 1 : prefix + 5])
    start = prefix + 5
    try:
        header = json.loads(data[start : start + length])
        if len(data) - start - length != int(header["png_bytes"]):
            raise ValueError("corrupt matte: truncated or padded")
        with Image.open(io.BytesIO(data[start + length :]), formats=["PNG"]) as image:
            image.load()
            if image.mode != "RGBA":
                raise ValueError(f"matte image is {image.mode}, not RGBA")
            rgba = np.asarray(image, dtype=np.uint8)
        x1, y1, x2, y2 = (float(v) for v in header["crop_box"])
        width, height = (int(v) for v in header["source_size_px"])
        face = _face_from_json(header["face"])
        std = header["background_std"]
        backdrop = None if header["backdrop"] is None else BackdropKind(header["backdrop"])
        leftover = header["leftover_backdrop"]
        others = tuple(_face_from_json(other) for other in header.get("others", ()))
    except (KeyError, TypeError, OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"corrupt matte: {exc}") from exc
    return Matte(
        crop_box=Box(x1, y1, x2, y2),
        foreground=np.ascontiguousarray(rgba[..., :3]),
        alpha=(rgba[..., 3].astype(np.float32) / np.float32(255.0)),
        face=face,
        source_size_px=(width, height),
        background_std=None if std is None else float(std),
        backdrop=backdrop,
        leftover_backdrop=None if leftover is None else float(leftover),
        others=others,
    )


def _face_to_json(face: Face) -> dict[str, Any]:
    return {
        "box": [face.box.x1, face.box.y1, face.box.x2, face.box.y2],
        "score": face.score,
        "landmarks": [[p.x, p.y] for p in face.landmarks.points()],
        "roll": face.roll,
        **({} if face.level_roll is None else {"level_roll": face.level_roll}),
    }


def _face_from_json(data: dict[str, Any]) -> Face:
    x1, y1, x2, y2 = (float(v) for v in data["box"])
    points = [Point(float(x), float(y)) for x, y in data["landmarks"]]
    if len(points) != 5:
        raise TypeError("a face has five landmarks")
    return Face(
        box=Box(x1, y1, x2, y2),
        score=float(data["score"]),
        landmarks=Landmarks(*points),
        roll=float(data.get("roll", 0.0)),
        level_roll=None if data.get("level_roll") is None else float(data["level_roll"]),
    )
