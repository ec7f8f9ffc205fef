"""detect: every face in an image, with box, score and five landmarks in source pixels.

The 640 px pass runs on the image as it is. When it finds no face, or none that is both
upright-looking (:func:`plausibly_upright`) and surely scored, quick 320 px passes on the image
turned by 0, 90, 180 and 270 degrees choose the orientation, and the 640 px pass runs again in it;
faces are reported in the source's pixels with their ``roll``. The faces always come from a
640 px pass: the quick pass's landmarks are too coarse for a tilted head (12° of roll reads as 1°
at 320 px; on turned copies of the labelled photos it misses the tilt by 10.8° on average against
4.6° at 640 px, however large the face), and alignment and ID-photo levelling rest on them.
Faces too small for it can be looked for on tiles of a larger copy (:class:`SmallFaces`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from faceflow.domain import Box, Face, Landmarks, Point
from faceflow.models.aligner import turn_points
from faceflow.models.detector import INPUT_SIZE_PX, RawDetections, YuNetDetector, nms
from faceflow.pipeline.detect_options import DetectOptions, SmallFaces

# An upright face's eye line lies within this many degrees of horizontal.
MAX_UPRIGHT_ROLL_DEG = 60.0
# YuNet also finds faces lying on their side or upside down, with landmarks placed as for an
# upright face (so geometry alone cannot tell), but scores them lower. Over the 77 labelled photos
# of ../shared/testdata and ../shared/devset, the 640 px pass's best upright face scored at least
# 0.9207 on every photo as taken, and at most 0.9138 on any of them turned by 90/180/270. So an
# upright 640 px pass whose best face scores UPRIGHT_SURE_SCORE or more settles it, at no extra
# cost; otherwise quick passes at QUICK_SIDE_PX (a quarter of the cost each) in all four
# orientations choose it (at 320 px the right orientation scored highest on every labelled photo;
# upright on ties), and the 640 px pass runs again only if that is not upright.
QUICK_SIDE_PX = 320
UPRIGHT_SURE_SCORE = 0.92
# Tiles for small faces: the image is looked at with its long side this many times the
# detector's input, in tiles of the detector's input size overlapping by this many pixels (more
# than the faces a tile is there to find, so none is cut in every tile it touches).
TILE_ZOOM = 2.0
TILE_OVERLAP_PX = 128
# "auto" tiles a photo whose long side (in decoded pixels) is at least this, when the first pass
# found a group (this many faces or more) or a face this small at the detector's input.
AUTO_TILE_MIN_SIDE_PX = 960
AUTO_TILE_GROUP = 3
AUTO_TILE_SMALL_FACE_PX = 24.0
# Tiles keep only faces narrower than this at the enlarged scale: larger ones the 640 px pass
# sees whole, and a tile may cut them.
TILE_MAX_FACE_PX = 96.0


def fit_to_detector(
    rgb: NDArray[np.uint8], long_side_px: int = INPUT_SIZE_PX
) -> tuple[NDArray[np.uint8], float]:
    """``rgb`` resized so its long side is ``long_side_px``; and the factor back to ``rgb``.

    Small images are enlarged too: YuNet finds faces down to about 10 px at its input, so a
    200 px thumbnail's faces are easier to find at 640.

    A large image is first averaged over whole ``k`` × ``k`` blocks (the most that fit the
    shrink; OpenCV's fast integer path), then area-resized by the rest, less than 2×. Straight
    ``INTER_AREA`` at a fractional ratio cost 5.8 ms per photo over the 77 labelled photos
    (decoded as for analyze; 20 of them large enough for blocks), more than a third of the 640 px
    pass; this costs 4.4 ms, with the same faces, ages and genders and rolls within 0.6°
    (``bench/detect_levers.py``, ``bench/accuracy.py``). Bilinear for the rest would cost 1.0 ms,
    but moved two side-view faces' roll by 1.1° and narrowed the age ranges (73 to 69 % covering
    the label on the devset). Bilinear up to twice the target, then 2 × 2 averaging, would save
    2.8 ms with rolls within 0.6°, but OpenCV's fixed-point bilinear is not exactly symmetric
    under a quarter turn, and that moved ages by over 2 years between a photo and its turned
    copy; its exact variant costs as much as ``INTER_AREA`` (``bench/detect_levers.py --levers
    new``, docs/performance.md).
    """
    height, width = rgb.shape[:2]
    factor = long_side_px / max(height, width)
    if factor == 1.0:
        return rgb, 1.0
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(block_shrink(rgb, factor), size, interpolation=interpolation)
    return np.asarray(resized, dtype=np.uint8), 1.0 / factor


def block_shrink(rgb: NDArray[np.uint8], factor: float) -> NDArray[np.uint8]:
    """``rgb`` averaged over the largest whole ``k`` × ``k`` blocks a shrink by ``factor`` allows
    (itself when none, ``k`` < 2); the rest of the shrink is left to the caller.

    Whole blocks only, the pixels left over cut evenly from both sides so that a photo turned
    by quarter turns is shrunk the same way turned (a cut from one side moved a face's box by
    10 px on a turned biden.jpg); so only a block size that leaves an even number over.
    """
    if factor >= 1.0:
        return rgb
    height, width = rgb.shape[:2]
    # No larger than the short side: a 12,000 × 16 banner shrunk 18× in blocks of 18 had no
    # whole block across, an empty image.
    block = min(math.floor(1.0 / factor), height, width)
    while block >= 2 and (height % block % 2 or width % block % 2):
        block -= 1
    if block < 2:
        return rgb
    top, left = height % block // 2, width % block // 2
    rows, cols = height // block * block, width // block * block
    return np.asarray(
        cv2.resize(
            rgb[top : top + rows, left : left + cols],
            (cols // block, rows // block),
            interpolation=cv2.INTER_AREA,
        ),
        dtype=np.uint8,
    )


def plausibly_upright(marks: NDArray[np.float32]) -> bool:
    """Whether five landmarks (YuNet's order, image y down) can belong to an upright face.

    Implausible: the eyes not above the mouth, the nose outside the eye–mouth quadrilateral
    (with a margin of a tenth of the eye distance, for faces turned part-way), or the eye line
    beyond ±60° of horizontal. A face lying on its side that YuNet still finds at 0° fails one
    of these: its landmarks are guessed for an upright face.
    """
    right_eye, left_eye, nose, mouth_right, mouth_left = (
        marks[i].astype(np.float64) for i in range(5)
    )
    eyes = (right_eye + left_eye) / 2
    mouth = (mouth_right + mouth_left) / 2
    if eyes[1] >= mouth[1]:
        return False
    eye_line = left_eye - right_eye
    if abs(math.degrees(math.atan2(eye_line[1], eye_line[0]))) > MAX_UPRIGHT_ROLL_DEG:
        return False
    margin = 0.1 * float(np.hypot(*eye_line))
    corners = (right_eye, left_eye, mouth_left, mouth_right)
    for index, start in enumerate(corners):
        end = corners[(index + 1) % 4]
        edge = end - start
        # Corners run clockwise on screen (y down): inside is on the right of every edge.
        cross = edge[0] * (nose[1] - start[1]) - edge[1] * (nose[0] - start[0])
        if cross < -margin * float(np.hypot(*edge)):
            return False
    return True


@dataclass(frozen=True, slots=True)
class _Found:
    """Detections in one image's pixels, with whether each looks upright where it was found."""

    boxes: NDArray[np.float64]
    scores: NDArray[np.float64]
    landmarks: NDArray[np.float64]
    upright: NDArray[np.bool_]

    @classmethod
    def empty(cls) -> _Found:
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2)), np.zeros(0, dtype=bool))

    @classmethod
    def join(cls, parts: list[_Found]) -> _Found:
        if not parts:
            return cls.empty()
        return cls(
            np.concatenate([p.boxes for p in parts]),
            np.concatenate([p.scores for p in parts]),
            np.concatenate([p.landmarks for p in parts]),
            np.concatenate([p.upright for p in parts]),
        )

    def take(self, keep: NDArray[np.intp]) -> _Found:
        return _Found(self.boxes[keep], self.scores[keep], self.landmarks[keep], self.upright[keep])

    def __len__(self) -> int:
        return int(self.scores.shape[0])


def _found(raw: RawDetections) -> _Found:
    upright = np.array([plausibly_upright(m) for m in raw.landmarks], dtype=bool)
    return _Found(
        raw.boxes.astype(np.float64),
        raw.scores.astype(np.float64),
        raw.landmarks.astype(np.float64),
        upright.reshape(-1),
    )


def _in_image(found: _Found, factor: float, turns: int, width_px: int, height_px: int) -> _Found:
    """Detections made on ``np.rot90(small, turns)``, where ``small`` is the ``width_px`` ×
    ``height_px`` image shrunk by ``1 / factor``, in that image's pixels.

    Coordinates are scaled first and turned in the image's own frame (box edges and landmarks
    alike as continuous positions), so a face found in a turned pass lands exactly where the same
    pass over the upright image would have put it.
    """
    boxes, marks = found.boxes * factor, found.landmarks * factor
    if turns % 4 and len(found):
        # The turned image's own size; turning it (4 - turns) more brings it back upright.
        turned_w, turned_h = (height_px, width_px) if turns % 2 else (width_px, height_px)
        back = (4 - turns) % 4
        corners = turn_points(boxes.reshape(-1, 2), back, turned_w, turned_h, edges=True)
        corners = corners.reshape(-1, 2, 2)
        boxes = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1)
        marks = turn_points(marks.reshape(-1, 2), back, turned_w, turned_h, edges=True)
        marks = marks.reshape(-1, 5, 2)
    return _Found(boxes, found.scores, marks, found.upright)


def _best_upright_score(found: _Found) -> float:
    return float(found.scores[found.upright].max()) if found.upright.any() else 0.0


def _detect_any_orientation(
    rgb: NDArray[np.uint8], detector: YuNetDetector, options: DetectOptions
) -> tuple[_Found, int]:
    """Faces in ``rgb`` (in its pixels), and the quarter turns of the orientation they were
    found in.

    The 640 px pass on the image as it is settles it when its best face is surely upright (see
    ``UPRIGHT_SURE_SCORE``); otherwise quick passes choose the orientation, and the 640 px pass
    runs on the image turned that way. The faces always come from a 640 px pass: the quick
    pass's landmarks are too coarse (a 12° head tilt reads as 1° at 320 px). A photo without
    faces thus costs two 640 px passes' worth; an upright portrait one 640 px pass.
    """
    height, width = rgb.shape[:2]
    small, back = fit_to_detector(rgb)

    def full_pass(turns: int) -> _Found:
        turned = np.rot90(small, turns)
        return _found(detector.detect(turned, options.score_threshold, options.nms_threshold))

    found = full_pass(0)
    if _best_upright_score(found) >= UPRIGHT_SURE_SCORE:
        return _in_image(found, back, 0, width, height), 0
    quick_small, _ = fit_to_detector(rgb, QUICK_SIDE_PX)

    def quick_score(turns: int) -> float:
        turned = np.rot90(quick_small, turns)
        quick = detector.detect(turned, options.score_threshold, options.nms_threshold)
        return _best_upright_score(_found(quick))

    scores = {turns: quick_score(turns) for turns in range(4)}
    # max() keeps the first of equals: upright on ties.
    turns = max(scores, key=lambda k: scores[k])
    if turns:
        found = full_pass(turns)
    return _in_image(found, back, turns, width, height), turns


def _tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def _detect_on_tiles(
    rgb: NDArray[np.uint8], detector: YuNetDetector, options: DetectOptions, turns: int
) -> _Found:
    """Small upright faces on 640 px tiles of ``rgb`` enlarged to ``TILE_ZOOM`` × 640 on its long
    side and turned by ``turns``, in ``rgb``'s pixels."""
    big, back = fit_to_detector(rgb, round(TILE_ZOOM * INPUT_SIZE_PX))
    turned = np.rot90(big, turns)
    height, width = turned.shape[:2]
    parts = []
    for y in _tile_starts(height, INPUT_SIZE_PX, TILE_OVERLAP_PX):
        for x in _tile_starts(width, INPUT_SIZE_PX, TILE_OVERLAP_PX):
            tile = turned[y : y + INPUT_SIZE_PX, x : x + INPUT_SIZE_PX]
            found = _found(detector.detect(tile, options.score_threshold, options.nms_threshold))
            offset = np.array([x, y], dtype=np.float64)
            parts.append(
                _Found(
                    found.boxes + np.tile(offset, 2),
                    found.scores,
                    found.landmarks + offset,
                    found.upright,
                )
            )
    every = _Found.join(parts)
    small = every.boxes[:, 2] - every.boxes[:, 0] < TILE_MAX_FACE_PX
    every = every.take(np.flatnonzero(every.upright & small))
    return _in_image(every, back, turns, rgb.shape[1], rgb.shape[0])


def _wants_tiles(rgb: NDArray[np.uint8], first: _Found, options: DetectOptions) -> bool:
    if options.small_faces is SmallFaces.TILES:
        return True
    if options.small_faces is SmallFaces.OFF or max(rgb.shape[:2]) < AUTO_TILE_MIN_SIDE_PX:
        return False
    if len(first) >= AUTO_TILE_GROUP:
        return True
    widths = (first.boxes[:, 2] - first.boxes[:, 0]) * INPUT_SIZE_PX / max(rgb.shape[:2])
    return bool(len(first) and widths.min() < AUTO_TILE_SMALL_FACE_PX)


def roll_degrees(landmarks: Landmarks) -> float:
    """The eye line's angle from horizontal, clockwise on screen, in (−180, 180]: 0 for an
    upright face, 90 for one whose top points to the image's right."""
    dx = landmarks.left_eye.x - landmarks.right_eye.x
    dy = landmarks.left_eye.y - landmarks.right_eye.y
    angle = math.degrees(math.atan2(dy, dx))
    return 180.0 if angle == -180.0 else angle


def detect_faces(
    rgb: NDArray[np.uint8],
    detector: YuNetDetector,
    options: DetectOptions,
    *,
    source_scale: float = 1.0,
) -> tuple[Face, ...]:
    """Faces in ``rgb``, largest first, in source pixels (``rgb`` pixels × ``source_scale``).

    ``source_scale`` is :attr:`DecodedImage.scale`: how many source pixels one pixel of ``rgb``
    stands for when the decoder shrank the image. Faces narrower than ``min_face_px`` source pixels
    are dropped, then at most ``max_faces`` of the largest are kept.
    """
    found, turns = _detect_any_orientation(rgb, detector, options)
    if _wants_tiles(rgb, found, options):
        tiled = _detect_on_tiles(rgb, detector, options, turns)
        # Tiles see faces of the first pass at a finer scale too; the first pass's are kept
        # (whole faces, and the same answer as without tiles), tiles add the ones it missed.
        every = _Found.join([found, tiled])
        priority = (np.arange(len(every)) < len(found)) * 10.0 + every.scores
        keep = nms(
            every.boxes.astype(np.float32), priority.astype(np.float32), options.nms_threshold
        )
        found = every.take(keep)
    to_source = source_scale
    height_px, width_px = rgb.shape[0] * source_scale, rgb.shape[1] * source_scale
    faces: list[Face] = []
    for index in range(len(found)):
        factor = to_source
        x1, y1, x2, y2 = (float(v) * factor for v in found.boxes[index])
        clipped = Box(max(0.0, x1), max(0.0, y1), min(width_px, x2), min(height_px, y2))
        if min(clipped.width_px, clipped.height_px) < max(1, options.min_face_px):
            continue
        points = [Point(float(x) * factor, float(y) * factor) for x, y in found.landmarks[index]]
        landmarks = Landmarks(*points)
        faces.append(
            Face(
                box=clipped,
                score=float(found.scores[index]),
                landmarks=landmarks,
                roll=roll_degrees(landmarks),
            )
        )
    faces.sort(key=lambda face: face.box.area_px, reverse=True)
    return tuple(faces[: options.max_faces])
