"""The compute ceiling runs the inference processes' own task in-process."""

from __future__ import annotations

from pathlib import Path

from faceflow.config import ModelSettings, load_settings
from faceflow.domain import Attribute, Operation
from faceflow.loadgen.ceiling import single_thread_rate
from faceflow.pipeline.detect_options import DetectOptions
from faceflow.runtime.context import WorkerContext
from faceflow.runtime.tasks import FaceRequest, run_face_request


def test_the_rate_is_of_the_task_on_every_request(
    testdata: Path, pulled_model_settings: ModelSettings
) -> None:
    settings = load_settings(models=pulled_model_settings.model_dump())
    photo = (testdata / "obama_small.jpg").read_bytes()
    seen: list[int] = []

    def task(context: WorkerContext, request: FaceRequest) -> object:
        return run_face_request(context, request)

    def request(index: int) -> FaceRequest:
        seen.append(index)
        options = DetectOptions.from_settings(settings.detection)
        return FaceRequest(photo, Operation.ANALYZE, options, (Attribute.AGE,))

    rate = single_thread_rate(settings, task, request, repeats=3)

    assert seen == [-1, 0, 1, 2]  # one untimed warm-up, then the timed runs
    assert rate > 0
