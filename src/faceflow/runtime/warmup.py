"""An inference process's warm-up: every enabled operation once, at the sizes real requests have.

A warm-up on blank inputs left each process 40–60 % smaller than it was after its first few
hundred real requests (docs/performance.md, Memory): a blank photo has no face, so the aligner,
a full batch of the age and gender models, annotation with labels, the cut-out's refinement and
the ID photo's rendering had never run, and what a first run keeps (onnxruntime's arena at its
peak, OpenCV's and the codecs' code and buffers) came with the first real requests instead.

Here the same tasks the service runs are run on a synthetic photo of a common size, through the
same functions, and the paths that need faces are given faces at plausible places. Only u2netp
itself is not run: it keeps nothing between runs (no arena, see
:func:`~faceflow.models.session.create_session`), and its ≈ 0.5 s of CPU per process would hold
readiness back for nothing; a stand-in returns a head-and-shoulders alpha of the size it would,
and the refinement after it runs on that.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from numpy.typing import NDArray

from faceflow.config import LimitSettings
from faceflow.domain import Attribute, Box, Face, Landmarks, Operation, Point
from faceflow.imaging.encode import encode_image
from faceflow.imaging.formats import OutputFormat
from faceflow.models.age_gender import BATCH_FACES
from faceflow.pipeline.analyze import enrich_faces
from faceflow.pipeline.annotate import annotate
from faceflow.pipeline.detect import detect_faces
from faceflow.pipeline.idphoto.matte import compute_matte, matte_from_bytes, matte_to_bytes
from faceflow.pipeline.idphoto.options import IdPhotoOptions
from faceflow.pipeline.idphoto.render import render_id_photo
from faceflow.pipeline.idphoto.specs import get_spec
from faceflow.runtime.context import WorkerContext
from faceflow.runtime.tasks import FaceRequest, run_face_request

PHOTO_SIZE_PX = (1600, 1200)
"""Width × height of the warm-up photo: a phone photo's shape at the decode sizes the tasks use
(it is decoded at 640, 1280 and 1600 px on the long side, as uploads are)."""
DETECTOR_SHAPES_PX = ((640, 640), (640, 360), (360, 640))
"""The detector's largest input and the two aspect ratios either side of it: its arena reaches
the peak any photo needs."""
ID_PHOTO_SPEC = "cn-1inch"
"""The route's default size."""


def warm_up_operations(context: WorkerContext) -> tuple[Operation, ...]:
    """Run every operation this process serves once; returns the operations run, in order.

    The warm-up photo is this process's own, so it is decoded under the default limits, not the
    operator's: a server with a smaller upload cap or pixel limit than the photo must still warm
    up (it would never become ready otherwise)."""
    context = dataclasses.replace(
        context, settings=context.settings.model_copy(update={"limits": LimitSettings()})
    )
    rng = np.random.default_rng(0)
    width, height = PHOTO_SIZE_PX
    # Noise over a grey gradient: JPEG code and buffers at a real photo's size and entropy.
    ramp = np.linspace(60, 190, width).astype(np.uint8)[None, :, None]
    rgb = rng.integers(0, 40, (height, width, 3), dtype=np.uint8) + ramp
    photo = encode_image(rgb, OutputFormat.JPEG)
    for shape in DETECTOR_SHAPES_PX:
        detect_faces(rgb[: shape[1], : shape[0]], context.models.detector, context.detect_defaults)
    # Every operation detects; the faces the blank photo lacks are given to the paths after it.
    ran = [Operation.DETECT]
    run_face_request(context, FaceRequest(photo, Operation.DETECT, context.detect_defaults))
    enabled = set(context.settings.runtime.operations)
    if context.models.attribute_set is not None:
        faces = grid_faces(width, height, BATCH_FACES)
        enriched = enrich_faces(
            rgb, faces, context.attribute_models, (Attribute.AGE, Attribute.GENDER)
        )
        encode_image(annotate(rgb, enriched), OutputFormat.JPEG)
        for operation in (Operation.ANALYZE, Operation.ANNOTATE):
            if operation in enabled:
                run_face_request(context, FaceRequest(photo, operation, context.detect_defaults))
                ran.append(operation)
    if context.models.portrait_segmenter is not None:
        face = portrait_face(width, height)
        matte = compute_matte(rgb, face, HeadAndShoulders())
        options = IdPhotoOptions(get_spec(ID_PHOTO_SPEC))
        restored = matte_from_bytes(matte_to_bytes(matte))
        render_id_photo(restored, restored.face, options)
        ran.append(Operation.ID_PHOTO)
    return tuple(ran)


def face_at(cx: float, cy: float, width_px: float) -> Face:
    """An upright frontal face centred at (cx, cy), ``width_px`` wide, with YuNet's landmarks
    where they fall on an average face."""
    w = width_px
    landmarks = Landmarks(
        right_eye=Point(cx - 0.2 * w, cy - 0.12 * w),
        left_eye=Point(cx + 0.2 * w, cy - 0.12 * w),
        nose=Point(cx, cy + 0.06 * w),
        mouth_right=Point(cx - 0.16 * w, cy + 0.26 * w),
        mouth_left=Point(cx + 0.16 * w, cy + 0.26 * w),
    )
    box = Box(cx - w / 2, cy - 0.62 * w, cx + w / 2, cy + 0.62 * w)
    return Face(box=box, score=0.9, landmarks=landmarks)


def grid_faces(width_px: int, height_px: int, count: int) -> tuple[Face, ...]:
    """``count`` faces in rows of four across the photo, as in a group photo."""
    columns = 4
    rows = -(-count // columns)
    size = min(width_px / columns, height_px / rows) * 0.5
    return tuple(
        face_at(
            (i % columns + 0.5) * width_px / columns,
            (i // columns + 0.5) * height_px / rows,
            size,
        )
        for i in range(count)
    )


def portrait_face(width_px: int, height_px: int) -> Face:
    """One face as an ID-photo upload has it: centred, upper third, a quarter of the width."""
    return face_at(width_px / 2, height_px * 0.38, width_px * 0.22)


@dataclasses.dataclass(frozen=True, slots=True)
class HeadAndShoulders:
    """Stands in for u2netp in the warm-up (see the module doc): an alpha of the crop's size, a
    head ellipse over a shoulders block, soft at the edges as the network's upscaled answer is."""

    def predict(self, rgb_crop: NDArray[np.uint8]) -> NDArray[np.float32]:
        height, width = rgb_crop.shape[:2]
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        across = (xs - width / 2) / (0.25 * width)
        down = (ys - 0.4 * height) / (0.3 * height)
        head = across**2 + down**2
        alpha = np.clip(1.5 - head, 0.0, 1.0)
        alpha[int(0.7 * height) :, int(0.15 * width) : int(0.85 * width)] = 1.0
        out: NDArray[np.float32] = alpha.astype(np.float32)
        return out
