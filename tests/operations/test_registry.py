"""The operation table: options → request → canonical params → the same request; a job's key is
the sync endpoint's."""

from __future__ import annotations

import re
from typing import get_args

import pytest
from pydantic.fields import FieldInfo

from faceflow.cache.keys import cache_key
from faceflow.config import Settings
from faceflow.domain import Attribute, Operation
from faceflow.errors import InvalidParameter
from faceflow.imaging.formats import OutputFormat
from faceflow.operations.faces import FaceWork
from faceflow.operations.idphoto import PhotoOptions, SheetOptions
from faceflow.operations.registry import job_id_for, operation_specs, prepare, spec_for
from faceflow.pipeline.detect_options import DetectOptions

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
    sync_work = FaceWork(
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
    assert submission.key == cache_key(DATA, operation, sync_work.cache_params())
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


def test_every_listed_operation_is_runnable() -> None:
    assert set(operation_specs()) == set(Operation)
    for op in Operation:
        assert spec_for(op.value)[0] is op


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"spec": "us-passport", "background": "blue", "format": "png"},
        {"width": "35", "height": "45", "dpi": "600", "gradient": "radial", "max_kb": "80"},
        {"response": "json", "quality": "80"},
        {"face": "2", "head_mm": "22", "eye_line_mm": "20.5", "shift_mm": "-1", "roll_deg": "2"},
    ],
)
def test_id_photo_job_key_is_the_sync_endpoints_key(options: dict[str, str]) -> None:
    submission = prepare("id-photo", DATA, options, Settings())
    # What the sync route builds from the same query parameters.
    sync_params = PhotoOptions.model_validate(options).work().cache_params()
    assert submission.key == cache_key(DATA, "id-photo", sync_params)
    # the worker rebuilds the same photo options from what the job stores
    _, spec = spec_for("id-photo")
    rebuilt = spec.from_params(DATA, submission.payload)
    assert rebuilt.work == submission.request.work
    assert spec.params(rebuilt) == submission.params


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"spec": "nope"}, "nope"),
        ({"width": "35"}, "both width and height"),
        ({"sheet": "a4"}, "sheet"),
        ({"transparent": "true"}, "PNG"),
        ({"face": "0"}, "face"),
        ({"spec": "icao", "head_mm": "37"}, "head_mm must be from 32.4 to 35.6 for icao"),
    ],
)
def test_bad_id_photo_options(options: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        prepare("id-photo", DATA, options, Settings())


def test_job_ids_are_valid_rq_ids_derived_from_the_key() -> None:
    submission = prepare("detect", DATA, {}, Settings())
    assert re.fullmatch(r"[A-Za-z0-9_-]+", submission.job_id)
    assert submission.job_id == job_id_for(submission.key)
    assert submission.job_id == submission.key.replace(":", "-")


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"spec": "us-passport", "sheet": "5in", "background": "blue"},
        {"layout": "cn-1inch:4,cn-2inch:2", "sheet": "a4", "gradient": "vertical"},
    ],
)
def test_sheet_job_key_is_the_sync_endpoints_key(options: dict[str, str]) -> None:
    submission = prepare("id-photo-sheet", DATA, options, Settings())
    # What POST /v1/id-photo/sheet builds from the same query parameters.
    sync = SheetOptions.model_validate(options).work()
    assert submission.key == cache_key(DATA, "id-photo-sheet", sync.cache_params())
    _, spec = spec_for("id-photo-sheet")
    rebuilt = spec.from_params(DATA, submission.payload)
    assert rebuilt.work == submission.request.work
    assert spec.params(rebuilt) == submission.params


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"sheet": "a3"}, "unknown sheet"),
        ({"layout": "cn-1inch"}, "preset:count"),
        ({"layout": "cn-1inch:+1_0"}, "preset:count"),  # int() reads it as 10
        ({"layout": "cn-1inch:\uff14"}, "preset:count"),  # a full-width 4
        ({"spec": "nope"}, "nope"),
        ({"format": "png"}, "format"),
    ],
)
def test_bad_sheet_options(options: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        prepare("id-photo-sheet", DATA, options, Settings())


def test_a_custom_size_job_is_rebuilt_by_its_worker_as_submitted() -> None:
    # A job stores what the client gave, not every default: stored with the default preset
    # beside the custom size, its worker would refuse the two together.
    options = {"width": "300", "height": "400", "unit": "px", "background": "blue"}
    submission = prepare("id-photo", DATA, options, Settings())
    _, spec = spec_for("id-photo")

    stored = submission.payload
    rebuilt = spec.from_params(DATA, stored)

    assert "spec" not in stored
    assert rebuilt.work == submission.request.work


def _bounded(field: FieldInfo) -> bool:
    return any(hasattr(rule, "le") or hasattr(rule, "lt") for rule in field.metadata)


def test_every_whole_number_option_has_an_upper_bound() -> None:
    # face=18446744073709551616 on an RQ job was a 500 (msgpack cannot pack it): a number a
    # job stores must be one every runner can carry.
    unbounded = [
        f"{operation.value}.{name}"
        for operation, spec in operation_specs().items()
        for name, field in spec.options.model_fields.items()
        if int in (*get_args(field.annotation), field.annotation) and not _bounded(field)
    ]
    assert unbounded == []


@pytest.mark.parametrize("operation", ["id-photo", "id-photo-sheet"])
def test_a_face_index_past_any_detection_is_refused_before_it_is_stored(operation: str) -> None:
    query = (
        {"face": str(2**64)}
        if operation == "id-photo"
        else {"face": str(2**64), "layout": "cn-1inch"}
    )
    with pytest.raises(InvalidParameter, match="face"):
        prepare(operation, DATA, query, Settings())
