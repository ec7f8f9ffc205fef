"""Work the inference processes do: decode, run the pipeline, encode — all off the event loop.

Each task is a module-level function ``fn(context, request) -> result`` so the pool can send it
by reference. Results for the service are finished HTTP bodies (:class:`TaskOutput`), so a cache
hit or a job result is served without any further CPU work in the API process.

The API process imports this module to name the tasks and build their requests, and sends a task
by reference; only an inference process calls one. So numpy, OpenCV, Pillow and the pipeline are
imported inside the task functions, where they run (about 1 µs a statement once imported, against
tens of ms a task), and the API process never loads them: importing the app costs 44 MB less
peak RSS and 0.1–0.2 s less CPU without them (docs/performance.md, Memory).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from faceflow.domain import Attribute, FaceReport, Operation
from faceflow.errors import JsonScalar
from faceflow.imaging.formats import OutputFormat
from faceflow.pipeline.detect_options import DetectOptions
from faceflow.runtime.child import checkpoint
from faceflow.runtime.context import WorkerContext

if TYPE_CHECKING:
    from faceflow.imaging.ingest import DecodedImage

JSON_MEDIA_TYPE = "application/json"

# Decoding only as many pixels as a stage can use keeps large JPEGs cheap (Pillow's draft mode
# decodes at 1/2, 1/4 or 1/8 scale, never below the size asked for). Detection runs at 640 px;
# age/gender chips are cut from faces shrunk to ~80 px, so 1280 px leaves room for small faces in
# group photos; annotated images are returned at this long side or the original's, if smaller
# (for any format: a PNG, WebP or GIF is decoded in full, then drawn on at the size a JPEG's draft
# gives; drawn and encoded in full, a 45 KB WebP of 5000 × 5000 px cost 3 s of PNG encoding for a
# 5 MB answer, a 4 MB one of noise 8 s for 74 MB, where the same JPEG costs a quarter).
DETECT_DECODE_PX = 640
ANALYZE_DECODE_PX = 1280
ANNOTATE_DECODE_PX = 1600


@dataclass(frozen=True, slots=True)
class FaceRequest:
    """One image and what to do with it."""

    data: bytes
    operation: Operation
    options: DetectOptions
    attributes: tuple[Attribute, ...] = (Attribute.AGE, Attribute.GENDER)
    image_format: OutputFormat = OutputFormat.JPEG


@dataclass(frozen=True, slots=True)
class TaskOutput:
    """A finished response body, its media type, and facts about it (face count, timings)."""

    media_type: str
    body: bytes
    meta: dict[str, JsonScalar] = field(default_factory=dict)


class StageTimer:
    """Collects wall-clock milliseconds per pipeline stage."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time one stage; first stop here if the task's caller has given up (between stages is
        where a task can be stopped cleanly, see :func:`~faceflow.runtime.child.checkpoint`)."""
        checkpoint()
        start = time.perf_counter()
        try:
            yield
        finally:
            self.ms[name] = round((time.perf_counter() - start) * 1000, 2)

    def as_meta(self) -> dict[str, JsonScalar]:
        return {f"ms_{name}": value for name, value in self.ms.items()}


def decode_for(
    context: WorkerContext, data: bytes, long_side_px: int, timer: StageTimer
) -> DecodedImage:
    """Decode untrusted bytes under the process's limits, at least ``long_side_px`` on the long
    side where the format can decode smaller (JPEG), timed as the ``decode`` stage."""
    from faceflow.imaging.ingest import decode_image

    with timer.stage("decode"):
        return decode_image(data, context.settings.limits, max_long_side_px=long_side_px)


def face_report(
    context: WorkerContext, request: FaceRequest, timer: StageTimer
) -> tuple[DecodedImage, FaceReport]:
    """Decode the image and find (and, unless detecting only, enrich) its faces.

    OperationDisabled, before any decoding, when attributes are asked of a process without
    their models.
    """
    from faceflow.pipeline.analyze import enrich_faces
    from faceflow.pipeline.detect import detect_faces

    enrich = request.operation is not Operation.DETECT and bool(request.attributes)
    attribute_models = context.attribute_models if enrich else None
    long_side = {
        Operation.DETECT: DETECT_DECODE_PX,
        Operation.ANALYZE: ANALYZE_DECODE_PX,
        Operation.ANNOTATE: ANNOTATE_DECODE_PX,
    }[request.operation]
    image = decode_for(context, request.data, long_side, timer)
    with timer.stage("detect"):
        faces = detect_faces(
            image.rgb, context.models.detector, request.options, source_scale=image.scale
        )
    if attribute_models is not None:
        with timer.stage("attributes"):
            faces = enrich_faces(
                image.rgb,
                faces,
                attribute_models,
                request.attributes,
                source_scale=image.scale,
            )
    return image, FaceReport(image.source_width_px, image.source_height_px, faces)


def annotated_image(image: DecodedImage, report: FaceReport, image_format: OutputFormat) -> bytes:
    """``image`` with ``report``'s faces drawn on it, encoded: at most as large as a JPEG of it
    decoded for annotation (:data:`ANNOTATE_DECODE_PX`, :func:`as_drafted`)."""
    from faceflow.imaging.encode import encode_image
    from faceflow.imaging.ingest import as_drafted
    from faceflow.pipeline.annotate import annotate

    shown = as_drafted(image, ANNOTATE_DECODE_PX)
    drawn = annotate(shown.rgb, report.faces, source_scale=shown.scale)
    return encode_image(drawn, image_format)


def run_face_request(context: WorkerContext, request: FaceRequest) -> TaskOutput:
    """detect / analyze → JSON body; annotate → image body. Runs in an inference process."""
    timer = StageTimer()
    image, report = face_report(context, request, timer)
    meta: dict[str, JsonScalar] = {"face_count": len(report.faces)}
    if request.operation is Operation.ANNOTATE:
        with timer.stage("encode"):
            body = annotated_image(image, report, request.image_format)
        meta.update(timer.as_meta())
        return TaskOutput(request.image_format.mime_type, body, meta)
    with timer.stage("encode"):
        body = json.dumps(report.to_dict(), separators=(",", ":")).encode()
    meta.update(timer.as_meta())
    return TaskOutput(JSON_MEDIA_TYPE, body, meta)


@dataclass(frozen=True, slots=True)
class FileAnalysis:
    """What the CLI gets back for one file: the report, and the annotated image if asked for."""

    report: FaceReport
    annotated: bytes | None
    timings_ms: dict[str, float]


def analyze_file(context: WorkerContext, request: FaceRequest) -> FileAnalysis:
    """The CLI's task: structured results instead of a finished HTTP body."""
    timer = StageTimer()
    image, report = face_report(context, request, timer)
    annotated = None
    if request.operation is Operation.ANNOTATE:
        with timer.stage("encode"):
            annotated = annotated_image(image, report, request.image_format)
    return FileAnalysis(report, annotated, dict(timer.ms))


@dataclass(frozen=True, slots=True)
class ThumbnailRequest:
    """A trusted image file (an example photo) and the long side of its thumbnail."""

    data: bytes
    long_side_px: int


def thumbnail_task(context: WorkerContext, request: ThumbnailRequest) -> TaskOutput:
    """The image as a small JPEG (the web page's example thumbnails)."""
    from faceflow.imaging.encode import jpeg_thumbnail

    body = jpeg_thumbnail(request.data, request.long_side_px)
    return TaskOutput("image/jpeg", body)
