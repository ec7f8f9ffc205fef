"""Frozen value types shared by the pipeline, the runtime and the service.

Coordinates are floats in source-image pixels (after EXIF orientation is applied), origin top-left.
Landmark names follow the subject: the *right* eye is the subject's right, which is on the left of
the image for a face looking at the camera.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from faceflow.errors import InvalidParameter, did_you_mean, quoted


class Gender(StrEnum):
    FEMALE = "female"
    MALE = "male"


class Attribute(StrEnum):
    AGE = "age"
    GENDER = "gender"


class Operation(StrEnum):
    """What faceflow can do with an image: the one list of verbs, shared by the routes, jobs,
    the CLI and the cache keys (:mod:`faceflow.operations` says how each is asked for and run).
    Defined here, below the runtime, because the inference tasks branch on it too."""

    DETECT = "detect"
    ANALYZE = "analyze"
    ANNOTATE = "annotate"
    ID_PHOTO = "id-photo"
    ID_PHOTO_SHEET = "id-photo-sheet"


def parse_attributes(value: str) -> tuple[Attribute, ...]:
    """'age,gender' → (AGE, GENDER), duplicates dropped; '' or 'none' → () (detection only)."""
    names = [part.strip().lower() for part in value.split(",") if part.strip()]
    if names in ([], ["none"]):
        return ()
    allowed = [a.value for a in Attribute]
    for name in names:
        if name not in allowed:
            raise InvalidParameter(
                f"unknown attribute {quoted(name)}{did_you_mean(name, allowed)}; allowed:"
                f" {', '.join(allowed)} (or none)",
                {"parameter": "attributes"},
            )
    return tuple(dict.fromkeys(Attribute(name) for name in names))


@dataclass(frozen=True, slots=True)
class Point:
    x: float
    y: float

    def scaled(self, factor: float) -> Point:
        return Point(self.x * factor, self.y * factor)

    def to_dict(self) -> list[float]:
        return [round(self.x, 2), round(self.y, 2)]


@dataclass(frozen=True, slots=True)
class Box:
    """Axis-aligned box ``(x1, y1, x2, y2)`` in source pixels; x2/y2 are exclusive edges."""

    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def width_px(self) -> float:
        return self.x2 - self.x1

    @property
    def height_px(self) -> float:
        return self.y2 - self.y1

    @property
    def area_px(self) -> float:
        return max(0.0, self.width_px) * max(0.0, self.height_px)

    @property
    def center(self) -> Point:
        return Point((self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2)

    def contains(self, point: Point, margin_px: float = 0.0) -> bool:
        return (
            self.x1 - margin_px <= point.x <= self.x2 + margin_px
            and self.y1 - margin_px <= point.y <= self.y2 + margin_px
        )

    def to_dict(self) -> list[float]:
        return [round(self.x1, 2), round(self.y1, 2), round(self.x2, 2), round(self.y2, 2)]


@dataclass(frozen=True, slots=True)
class Landmarks:
    """YuNet's five points, in the subject's terms."""

    right_eye: Point
    left_eye: Point
    nose: Point
    mouth_right: Point
    mouth_left: Point

    def points(self) -> tuple[Point, Point, Point, Point, Point]:
        return (self.right_eye, self.left_eye, self.nose, self.mouth_right, self.mouth_left)

    def scaled(self, factor: float) -> Landmarks:
        """The same points with every coordinate multiplied by ``factor``."""
        return Landmarks(*(point.scaled(factor) for point in self.points()))

    @property
    def eye_centre(self) -> Point:
        return Point(
            (self.right_eye.x + self.left_eye.x) / 2, (self.right_eye.y + self.left_eye.y) / 2
        )

    @property
    def mouth_centre(self) -> Point:
        return Point(
            (self.mouth_right.x + self.mouth_left.x) / 2,
            (self.mouth_right.y + self.mouth_left.y) / 2,
        )

    def to_dict(self) -> dict[str, list[float]]:
        return {
            "right_eye": self.right_eye.to_dict(),
            "left_eye": self.left_eye.to_dict(),
            "nose": self.nose.to_dict(),
            "mouth_right": self.mouth_right.to_dict(),
            "mouth_left": self.mouth_left.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class AgeEstimate:
    """Expected age in years and a range calibrated to hold the true age for most faces.

    ``reliable`` is false when the face is too poor (blurred, dark, tiny, turned away) for the
    number to be trusted; the range is then widened.
    """

    years: float
    low: float
    high: float
    reliable: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "years": round(self.years, 1),
            "low": round(self.low, 1),
            "high": round(self.high, 1),
            "reliable": self.reliable,
        }


@dataclass(frozen=True, slots=True)
class GenderEstimate:
    """The likelier label and its probability; tempered towards 0.5 when not ``reliable``."""

    label: Gender
    probability: float
    reliable: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label.value,
            "probability": round(self.probability, 4),
            "reliable": self.reliable,
        }


@dataclass(frozen=True, slots=True)
class FaceQuality:
    """How well the face can be read, from its upright 64 px chip and its landmarks.

    ``sharpness``: 0 (blurred) … 1 (sharp), from the variance of the chip's Laplacian;
    ``exposure``: 0 (black, or blown out) … 1 (well exposed), from the chip's luminance;
    ``size_px``: the face's side in source pixels (the aligner's square box);
    ``yaw_deg``: estimated left–right turn, from the nose's offset between the eyes;
    ``score``: 0 … 1, the weakest of the four read on a common scale.
    """

    score: float
    sharpness: float
    exposure: float
    size_px: float
    yaw_deg: float

    def to_dict(self) -> dict[str, float]:
        return {
            "score": round(self.score, 3),
            "sharpness": round(self.sharpness, 3),
            "exposure": round(self.exposure, 3),
            "size_px": round(self.size_px, 1),
            "yaw_deg": round(self.yaw_deg, 1),
        }


@dataclass(frozen=True, slots=True)
class Face:
    """One face. ``roll`` is the eye line's angle in degrees, clockwise on screen: 0 upright,
    ±90 lying on its side, 180 upside down. ``level_roll``, set for an ID photo only, is the eye
    line it is levelled by where dlib's eye corners put it apart from the landmarks' (see
    :mod:`faceflow.pipeline.idphoto.level`); ``None``: the landmarks' own."""

    box: Box
    score: float
    landmarks: Landmarks
    age: AgeEstimate | None = None
    gender: GenderEstimate | None = None
    roll: float = 0.0
    quality: FaceQuality | None = None
    level_roll: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "box": self.box.to_dict(),
            "score": round(self.score, 4),
            "landmarks": self.landmarks.to_dict(),
            "roll": round(self.roll, 1),
        }
        if self.quality is not None:
            out["quality"] = self.quality.to_dict()
        if self.age is not None:
            out["age"] = self.age.to_dict()
        if self.gender is not None:
            out["gender"] = self.gender.to_dict()
        return out


@dataclass(frozen=True, slots=True)
class FaceReport:
    """What detect and analyze return for one image.

    ``width_px`` and ``height_px``: the image's size in pixels as it is shown (after its EXIF
    orientation), the pixels every box and landmark is given in; ``faces``: every
    :class:`Face` found, each with its ``box``, ``score``, ``landmarks`` and ``roll``, and its
    ``age`` and ``gender`` when analyze asked for them (``None`` otherwise). ``to_dict()``: the
    API's JSON answer."""

    width_px: int
    height_px: int
    faces: tuple[Face, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "width": self.width_px,
            "height": self.height_px,
            "face_count": len(self.faces),
            "faces": [face.to_dict() for face in self.faces],
        }
