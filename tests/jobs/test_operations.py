"""The operation table: options → request → canonical params → the same request; same keys."""

from __future__ import annotations

import re

import pytest

from faceflow.cache.keys import cache_key
from faceflow.config import Settings
from faceflow.domain import Attribute
from faceflow.errors import InvalidParameter
from faceflow.imaging.encode import OutputFormat
from faceflow.jobs.operations import JobOperation, job_id_for, operation_specs, prepare, spec_for
from faceflow.pipeline.detect import DetectOptions
from faceflow.runtime.tasks import FaceRequest, Operation

DATA = b"\xff\xd8 not really a jpeg"


@pytest.mark.parametrize(
    ("operation", "options"),
    [
        ("detect", {}),
        ("detect", {"threshold": "0.5", "max_faces": "3"}),
        ("analyze", {"attributes": "gender,age", "min_face_px": "40"}),
        ("annotate", {"format": "png", "attributes": "none"}),
    ],
)
def test_job_key_is_the_sync_endpoints_key(operation: str, options: dict[str, str]) -> None:
    settings = Settings()
    submission = prepare(operation, DATA, options, settings)
    base = DetectOptions.from_settings(settings.detection)
    threshold = float(options.get("threshold", base.score_threshold))
    sync_request = FaceRequest(
        DATA,
        Operation(operation),
        DetectOptions(
            threshold,
            base.nms_threshold,
            int(options.get("min_face_px", base.min_face_px)),
            int(options.get("max_faces", base.max_faces)),
        ),
        submission.request.attributes,
        OutputFormat(options.get("format", "jpeg")),
    )
    assert submission.key == cache_key(DATA, operation, sync_request.cache_params())
    # and the worker rebuilds the same work from the stored parameters
    _, spec = spec_for(operation)
    rebuilt = spec.from_params(DATA, submission.params)
    assert spec.params(rebuilt) == submission.params
    assert rebuilt.options == submission.request.options
    assert set(rebuilt.attributes) == set(submission.request.attributes)


def test_attribute_order_does_not_change_the_key() -> None:
    a = prepare("analyze", DATA, {"attributes": "age,gender"}, Settings())
    b = prepare("analyze", DATA, {"attributes": "gender,age"}, Settings())
    assert a.key == b.key
    assert set(a.request.attributes) == {Attribute.AGE, Attribute.GENDER}


@pytest.mark.parametrize(
    ("operation", "options", "message"),
    [
        ("resize", {}, "unknown operation"),
        ("detect", {"colour": "red"}, "colour"),
        ("detect", {"threshold": "2"}, "threshold"),
        ("analyze", {"attributes": "mood"}, "unknown attribute"),
        ("annotate", {"format": "gif"}, "format"),
    ],
)
def test_bad_submissions_are_invalid_parameters(
    operation: str, options: dict[str, str], message: str
) -> None:
    with pytest.raises(InvalidParameter, match=message):
        prepare(operation, DATA, options, Settings())


def test_every_listed_operation_is_runnable_or_refused_cleanly() -> None:
    for op in JobOperation:
        if op in operation_specs():
            assert spec_for(op.value)[0] is op
        else:
            with pytest.raises(InvalidParameter, match="not available"):
                spec_for(op.value)


def test_job_ids_are_valid_rq_ids_derived_from_the_key() -> None:
    submission = prepare("detect", DATA, {}, Settings())
    assert re.fullmatch(r"[A-Za-z0-9_-]+", submission.job_id)
    assert submission.job_id == job_id_for(submission.key)
    assert submission.job_id == submission.key.replace(":", "-")
