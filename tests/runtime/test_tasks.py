"""Inference-process tasks on a real context: finished bodies, typed errors."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from PIL import Image

from faceflow.domain import Operation
from faceflow.errors import DeadlineExceeded, FaceflowError
from faceflow.imaging.formats import OutputFormat
from faceflow.pipeline.detect_options import DetectOptions
from faceflow.runtime import child
from faceflow.runtime.context import WorkerContext, warm_up
from faceflow.runtime.tasks import (
    JSON_MEDIA_TYPE,
    FaceRequest,
    StageTimer,
    TaskOutput,
    analyze_file,
    run_face_request,
)
from tests.fixtures.images import HostileInput, exif_rotated_jpeg, hostile_inputs
from tests.fixtures.models import PhotoFacts

LANDMARK_NAMES = {"right_eye", "left_eye", "nose", "mouth_right", "mouth_left"}


def request(data: bytes, operation: Operation, **changes: Any) -> FaceRequest:
    return replace(FaceRequest(data, operation, DetectOptions()), **changes)


def assert_face_schema(face: dict[str, Any], *, with_attributes: bool) -> None:
    x1, y1, x2, y2 = face["box"]
    assert x1 < x2
    assert y1 < y2
    assert 0 < face["score"] <= 1
    assert set(face["landmarks"]) == LANDMARK_NAMES
    assert all(len(point) == 2 for point in face["landmarks"].values())
    if with_attributes:
        assert set(face["age"]) == {"years", "low", "high", "reliable"}
        assert face["gender"]["label"] in {"female", "male"}
        assert 0.5 <= face["gender"]["probability"] <= 1
    else:
        assert "age" not in face
        assert "gender" not in face


@pytest.mark.parametrize(
    ("operation", "with_attributes"), [(Operation.DETECT, False), (Operation.ANALYZE, True)]
)
def test_detect_and_analyze_return_a_json_report(
    worker_context: WorkerContext,
    testdata: Path,
    photo_facts: dict[str, PhotoFacts],
    operation: Operation,
    with_attributes: bool,
) -> None:
    output = run_face_request(
        worker_context, request((testdata / "two_people.jpg").read_bytes(), operation)
    )

    assert output.media_type == JSON_MEDIA_TYPE
    report = json.loads(output.body)
    assert (report["width"], report["height"]) == (1126, 661)
    assert report["face_count"] == len(report["faces"]) == photo_facts["two_people.jpg"].faces_max
    for face in report["faces"]:
        assert_face_schema(face, with_attributes=with_attributes)
    assert output.meta["face_count"] == report["face_count"]
    assert {"ms_decode", "ms_detect", "ms_encode"} <= set(output.meta)


def test_analyze_without_attributes_is_detection(
    worker_context: WorkerContext, testdata: Path
) -> None:
    data = (testdata / "obama_small.jpg").read_bytes()

    output = run_face_request(worker_context, request(data, Operation.ANALYZE, attributes=()))

    [face] = json.loads(output.body)["faces"]
    assert_face_schema(face, with_attributes=False)
    assert "ms_attributes" not in output.meta


@pytest.mark.parametrize(("image_format", "pillow_format"), [("jpeg", "JPEG"), ("png", "PNG")])
def test_annotate_returns_a_decodable_image_of_the_input_size(
    worker_context: WorkerContext, testdata: Path, image_format: str, pillow_format: str
) -> None:
    fmt = OutputFormat(image_format)
    data = (testdata / "two_people.jpg").read_bytes()

    output = run_face_request(worker_context, request(data, Operation.ANNOTATE, image_format=fmt))

    assert output.media_type == f"image/{image_format}"
    with Image.open(io.BytesIO(output.body)) as drawn:
        assert drawn.format == pillow_format
        assert drawn.size == (1126, 661)
    assert output.meta["face_count"] == 2


def encoded(image: Image.Image, pillow_format: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, pillow_format, quality=90)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def large_two_people(testdata: Path) -> Image.Image:
    """two_people.jpg enlarged to 3378 × 1983."""
    with Image.open(testdata / "two_people.jpg") as photo:
        return photo.convert("RGB").resize((3378, 1983))


@pytest.fixture(scope="module")
def large_jpeg_annotated(
    worker_context: WorkerContext, large_two_people: Image.Image
) -> TaskOutput:
    """The annotation of the large photo as a JPEG: the size each lossless upload's must have,
    made once for both (the same upload and the same task in each)."""
    data = encoded(large_two_people, "JPEG")
    return run_face_request(
        worker_context, request(data, Operation.ANNOTATE, image_format=OutputFormat.PNG)
    )


@pytest.mark.parametrize("pillow_format", ["PNG", "WEBP"])
def test_a_large_lossless_upload_is_annotated_at_the_size_of_the_same_jpeg(
    worker_context: WorkerContext,
    large_two_people: Image.Image,
    large_jpeg_annotated: TaskOutput,
    pillow_format: str,
) -> None:
    # 3378 × 1983: a JPEG of it is decoded for annotation at half size, 1689 × 992. Drawn at its
    # full size, a PNG or WebP cost four times the encoding and the answer's bytes (a 45 KB WebP
    # of 5000 × 5000 px: a 5 MB PNG, 3 s of encoding).
    upload = encoded(large_two_people, pillow_format)
    outputs = {
        "JPEG": large_jpeg_annotated,
        pillow_format: run_face_request(
            worker_context, request(upload, Operation.ANNOTATE, image_format=OutputFormat.PNG)
        ),
    }

    sizes = {}
    for name, output in outputs.items():
        assert output.meta["face_count"] == 2
        with Image.open(io.BytesIO(output.body)) as drawn:
            sizes[name] = drawn.size

    assert sizes == {"JPEG": (1689, 992), pillow_format: (1689, 992)}


def test_exif_rotated_upload_reports_the_displayed_size(
    worker_context: WorkerContext, testdata: Path
) -> None:
    data = exif_rotated_jpeg(testdata / "obama_small.jpg", 6)

    report = json.loads(run_face_request(worker_context, request(data, Operation.DETECT)).body)

    assert (report["width"], report["height"]) == (320, 240)
    assert report["face_count"] == 1


def test_cli_task_returns_the_report_and_the_annotated_image(
    worker_context: WorkerContext, testdata: Path
) -> None:
    data = (testdata / "two_people.jpg").read_bytes()

    analysed = analyze_file(worker_context, request(data, Operation.ANALYZE))
    annotated = analyze_file(worker_context, request(data, Operation.ANNOTATE))

    assert len(analysed.report.faces) == 2
    assert analysed.annotated is None
    assert annotated.annotated is not None
    assert Image.open(io.BytesIO(annotated.annotated)).size == (1126, 661)
    assert [f.box for f in annotated.report.faces] == [f.box for f in analysed.report.faces]


@pytest.mark.parametrize("case", hostile_inputs(), ids=lambda case: case.name)
def test_hostile_input_raises_its_typed_error(
    worker_context: WorkerContext, testdata: Path, case: HostileInput
) -> None:
    data = case.make(testdata, worker_context.settings.limits)

    with pytest.raises(FaceflowError) as raised:
        run_face_request(worker_context, request(data, Operation.ANALYZE))

    assert (raised.value.code, raised.value.status) == (case.code, case.status)


def test_warm_up_runs_on_the_loaded_models(worker_context: WorkerContext) -> None:
    warm_up(worker_context)  # raises if any model cannot run


def test_a_stage_does_not_start_once_the_tasks_caller_gave_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every task's stages are its checkpoints: what a pool worker does once told to stop."""
    cell = SimpleNamespace(value=0)
    monkeypatch.setattr(child._running, "cancel", cell)
    monkeypatch.setattr(child._running, "seq", 7)
    timer = StageTimer()
    with timer.stage("decode"):
        pass
    cell.value = 7  # the parent wrote this task's seq: its caller gave up
    with pytest.raises(DeadlineExceeded), timer.stage("detect"):
        pytest.fail("the stage ran")
    assert list(timer.ms) == ["decode"]
