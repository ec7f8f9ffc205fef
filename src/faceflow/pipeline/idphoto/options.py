"""What an ID photo is asked to be: size, background, format, file-size cap, nudges.

Validated on construction, without pixels (:mod:`.render` makes the photo): the API process
builds these from a request's options and keys the cache by them, and does not import numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

from faceflow.errors import InvalidParameter
from faceflow.imaging.formats import OutputFormat
from faceflow.pipeline.idphoto.nudge import NO_NUDGE, Nudge
from faceflow.pipeline.idphoto.palette import WHITE, Background
from faceflow.pipeline.idphoto.specs import IdPhotoSpec

DEFAULT_JPEG_QUALITY = 95


@dataclass(frozen=True, slots=True)
class IdPhotoOptions:
    """What to make. ``max_kb`` (JPEG only) caps the file size by lowering the JPEG quality;
    ``transparent`` (PNG only) leaves the background out and keeps the alpha channel; ``nudge``
    is the person's correction of the framing, inside the spec's ranges."""

    spec: IdPhotoSpec
    background: Background = WHITE
    output_format: OutputFormat = OutputFormat.JPEG
    max_kb: int | None = None
    transparent: bool = False
    quality: int = DEFAULT_JPEG_QUALITY
    nudge: Nudge = NO_NUDGE

    def __post_init__(self) -> None:
        self.nudge.check(self.spec)
        if self.transparent and self.output_format is not OutputFormat.PNG:
            raise InvalidParameter(
                "a transparent background needs PNG output", {"parameter": "transparent"}
            )
        if self.max_kb is not None:
            if self.output_format is not OutputFormat.JPEG:
                raise InvalidParameter(
                    "max_kb applies to JPEG output only", {"parameter": "max_kb"}
                )
            if self.max_kb < 1:
                raise InvalidParameter("max_kb must be at least 1", {"parameter": "max_kb"})
        if not 1 <= self.quality <= 100:
            raise InvalidParameter("quality must be from 1 to 100", {"parameter": "quality"})
