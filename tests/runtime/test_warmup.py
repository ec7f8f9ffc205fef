"""The warm-up runs every operation the process serves, with faces where they need them."""

from __future__ import annotations

import numpy as np
import pytest

from faceflow.config import LimitSettings, ModelSettings, RuntimeSettings, Settings
from faceflow.domain import Operation
from faceflow.runtime.context import WorkerContext, load_context
from faceflow.runtime.warmup import (
    HeadAndShoulders,
    grid_faces,
    portrait_face,
    warm_up_operations,
)


def context_for(models: ModelSettings, operations: list[str]) -> WorkerContext:
    runtime = RuntimeSettings.model_validate({"operations": operations})
    return load_context(Settings(models=models, runtime=runtime).model_dump_json())


@pytest.mark.parametrize(
    ("operations", "warmed"),
    [
        (["detect"], (Operation.DETECT,)),
        (["analyze"], (Operation.DETECT, Operation.ANALYZE)),
        (["detect", "annotate"], (Operation.DETECT, Operation.ANNOTATE)),
        (["id-photo"], (Operation.DETECT, Operation.ID_PHOTO)),
        (
            ["detect", "analyze", "annotate", "id-photo"],
            (Operation.DETECT, Operation.ANALYZE, Operation.ANNOTATE, Operation.ID_PHOTO),
        ),
    ],
)
def test_every_enabled_operation_is_warmed_up(
    pulled_model_settings: ModelSettings,
    operations: list[str],
    warmed: tuple[Operation, ...],
) -> None:
    context = context_for(pulled_model_settings, operations)

    assert warm_up_operations(context) == warmed


def test_a_server_with_limits_below_the_warm_up_photo_still_warms_up(
    pulled_model_settings: ModelSettings,
) -> None:
    """The photo is the process's own: an operator's small upload cap or pixel limit (the
    suite's constrained server has a 200 kB cap) must not keep the process from ever being
    ready."""
    settings = Settings(
        models=pulled_model_settings,
        runtime=RuntimeSettings.model_validate({"operations": ["detect", "analyze"]}),
        limits=LimitSettings(max_upload_bytes=200_000, max_pixels=100_000),
    )
    context = load_context(settings.model_dump_json())

    assert warm_up_operations(context) == (Operation.DETECT, Operation.ANALYZE)
    assert context.settings.limits.max_upload_bytes == 200_000  # the process keeps its limits


def test_the_group_faces_lie_inside_the_photo_apart() -> None:
    faces = grid_faces(1600, 1200, 8)

    assert len(faces) == 8
    for face in faces:
        assert 0 <= face.box.x1 < face.box.x2 <= 1600
        assert 0 <= face.box.y1 < face.box.y2 <= 1200
    boxes = sorted((face.box.x1, face.box.y1) for face in faces)
    assert len(set(boxes)) == 8


def test_the_portrait_face_sits_in_the_upper_middle() -> None:
    face = portrait_face(1600, 1200)

    assert face.box.x1 < 800 < face.box.x2
    assert face.box.y1 < 1200 / 2


def test_the_stand_in_segmenter_answers_like_u2netp() -> None:
    alpha = HeadAndShoulders().predict(np.zeros((300, 200, 3), np.uint8))

    assert alpha.shape == (300, 200)
    assert alpha.dtype == np.float32
    assert 0.0 <= alpha.min() < alpha.max() <= 1.0
    assert alpha[120, 100] == 1.0  # the head's centre
    assert alpha[5, 5] == 0.0  # a corner: background
