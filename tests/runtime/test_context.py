"""An inference process's context loads the models its operations need, and no others."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from faceflow.config import ModelSettings, RuntimeSettings, Settings
from faceflow.domain import Operation
from faceflow.errors import NotFound
from faceflow.pipeline.detect_options import DetectOptions
from faceflow.runtime.context import WorkerContext, load_context, warm_up
from faceflow.runtime.idphoto_tasks import MatteRequest, matte_task
from faceflow.runtime.tasks import FaceRequest, run_face_request


def context_for(models: ModelSettings, operations: list[str]) -> WorkerContext:
    """The context of a process whose settings name ``operations`` as a user writes them."""
    runtime = RuntimeSettings.model_validate({"operations": operations})
    settings = Settings(models=models, runtime=runtime)
    return load_context(settings.model_dump_json())


@pytest.fixture(scope="module")
def detect_only(pulled_model_settings: ModelSettings) -> WorkerContext:
    return context_for(pulled_model_settings, ["detect"])


@pytest.fixture(scope="module")
def photo(testdata: Path) -> bytes:
    return (testdata / "obama.jpg").read_bytes()


@pytest.mark.parametrize(
    ("operations", "aligner", "attributes", "segmenter"),
    [
        (["detect"], False, False, False),
        (["detect", "analyze"], True, True, False),
        (["annotate"], True, True, False),
        # The aligner finds the eye corners an ID photo is levelled by.
        (["id-photo"], True, False, True),
        (["detect", "analyze", "annotate", "id-photo"], True, True, True),
    ],
)
def test_only_the_models_of_the_enabled_operations_are_loaded(
    pulled_model_settings: ModelSettings,
    operations: list[str],
    aligner: bool,
    attributes: bool,
    segmenter: bool,
) -> None:
    models = context_for(pulled_model_settings, operations).models

    assert models.detector is not None
    assert (models.face_aligner is not None) is aligner
    assert (models.attribute_set is not None) is attributes
    assert (models.portrait_segmenter is not None) is segmenter


def test_detection_works_and_warm_up_skips_what_is_not_loaded(
    detect_only: WorkerContext, photo: bytes
) -> None:
    warm_up(detect_only)  # raises if it touched a model that is not there
    output = run_face_request(detect_only, FaceRequest(photo, Operation.DETECT, DetectOptions()))

    assert len(json.loads(output.body)["faces"]) == 1


@pytest.mark.parametrize("operation", [Operation.ANALYZE, Operation.ANNOTATE])
def test_attributes_without_their_models_are_not_found(
    detect_only: WorkerContext, photo: bytes, operation: Operation
) -> None:
    with pytest.raises(NotFound, match="age and gender"):
        run_face_request(detect_only, FaceRequest(photo, operation, DetectOptions()))


def test_annotate_without_attributes_needs_only_the_detector(
    detect_only: WorkerContext, photo: bytes
) -> None:
    request = FaceRequest(photo, Operation.ANNOTATE, DetectOptions(), attributes=())

    assert run_face_request(detect_only, request).body


def test_an_id_photo_without_the_segmenter_is_not_found(
    detect_only: WorkerContext, photo: bytes
) -> None:
    with pytest.raises(NotFound, match="ID photos"):
        matte_task(detect_only, MatteRequest(photo))


def test_operations_must_name_known_ones() -> None:
    with pytest.raises(ValueError, match="operations"):
        RuntimeSettings.model_validate({"operations": ["detect", "id_photo"]})


_LOADED_PROBE = """
import json, sys
from faceflow.runtime.context import load_context, warm_up
warm_up(load_context(sys.argv[1]))
print(json.dumps(sorted(m for m in json.loads(sys.argv[2]) if m in sys.modules)))
"""


@pytest.mark.parametrize(
    ("operations", "not_imported"),
    [
        (["detect", "analyze", "annotate", "id-photo"], ["onnx"]),
        (["detect", "id-photo"], ["onnx"]),
        (["detect"], ["dlib", "onnx"]),
    ],
)
def test_an_inference_process_imports_only_what_its_models_use(
    pulled_model_settings: ModelSettings,
    operations: list[str],
    not_imported: list[str],
) -> None:
    settings = Settings(
        models=pulled_model_settings,
        runtime=RuntimeSettings.model_validate({"operations": operations}),
    )
    probe = [sys.executable, "-c", _LOADED_PROBE, settings.model_dump_json()]
    done = subprocess.run(
        [*probe, json.dumps(not_imported)], capture_output=True, text=True, timeout=120, check=False
    )

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
