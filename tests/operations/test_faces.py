"""Face options: one model per operation, settings fill what is unset, and the cache parameters
change with every option that changes the answer and with nothing else."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl

import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from faceflow.config import DetectionSettings
from faceflow.domain import Attribute, Operation
from faceflow.errors import InvalidParameter
from faceflow.imaging.formats import OutputFormat
from faceflow.operations.faces import (
    FACE_OPTIONS,
    AnalyzeOptions,
    AnnotateOptions,
    BatchOptions,
    FaceOptions,
    FaceWork,
)
from faceflow.operations.parse import parse_options
from faceflow.pipeline.detect_options import DetectOptions
from tests.service.option_queries import DETECT_OPTIONS, FACE_VALUES, face_values, queries

BASE = FaceWork(Operation.ANNOTATE, DetectOptions(), (Attribute.AGE, Attribute.GENDER))


@pytest.mark.parametrize(
    "changed",
    [
        replace(BASE, options=replace(BASE.options, score_threshold=0.5)),
        replace(BASE, options=replace(BASE.options, nms_threshold=0.5)),
        replace(BASE, options=replace(BASE.options, min_face_px=40)),
        replace(BASE, options=replace(BASE.options, max_faces=3)),
        replace(BASE, attributes=(Attribute.AGE,)),
        replace(BASE, attributes=()),
        replace(BASE, image_format=OutputFormat.PNG),
    ],
    ids=[
        "score_threshold",
        "nms_threshold",
        "min_face_px",
        "max_faces",
        "attributes",
        "no_attributes",
        "format",
    ],
)
def test_cache_params_change_with_every_option(changed: FaceWork) -> None:
    assert changed.cache_params() != BASE.cache_params()


def test_cache_params_ignore_the_order_of_attributes() -> None:
    one = replace(BASE, attributes=(Attribute.AGE, Attribute.GENDER))
    other = replace(BASE, attributes=(Attribute.GENDER, Attribute.AGE))

    assert one.cache_params() == other.cache_params()


@pytest.mark.parametrize(
    ("operation", "ignored"),
    [
        (Operation.DETECT, {"attributes": ()}),
        (Operation.DETECT, {"image_format": OutputFormat.PNG}),
        (Operation.ANALYZE, {"image_format": OutputFormat.PNG}),
    ],
)
def test_cache_params_ignore_what_an_operation_does_not_use(
    operation: Operation, ignored: dict[str, Any]
) -> None:
    plain = replace(BASE, operation=operation)

    assert replace(plain, **ignored).cache_params() == plain.cache_params()


def test_cache_params_turn_back_into_the_same_work() -> None:
    assert FaceWork.from_params(BASE.operation, BASE.cache_params()) == BASE
    changed = replace(
        BASE,
        options=DetectOptions(score_threshold=0.25, nms_threshold=0.5, min_face_px=7, max_faces=3),
        attributes=(Attribute.GENDER,),
        image_format=OutputFormat.PNG,
    )
    # As a job payload stores them: JSON, where a whole float and an int are one number.
    stored = {k: float(v) if isinstance(v, int) else v for k, v in changed.cache_params().items()}
    assert FaceWork.from_params(changed.operation, stored) == changed


FACE_QUERIES = {
    Operation.DETECT: queries(face_values(*DETECT_OPTIONS)),
    Operation.ANALYZE: queries(face_values(*DETECT_OPTIONS, "attributes")),
    Operation.ANNOTATE: queries(face_values(*DETECT_OPTIONS, "attributes", "format")),
}


@pytest.mark.parametrize("operation", list(FACE_QUERIES), ids=[op.value for op in FACE_QUERIES])
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_every_option_a_query_sets_comes_back_from_the_cache_params(
    operation: Operation, data: st.DataObject
) -> None:
    # The cache parameters are the key's and what an RQ job stores for its worker, which rebuilds
    # the work from them: an option they leave out (one not named in _DETECT_PARAMS) would share
    # another value's cached answer and be dropped by the RQ worker while the embedded runner
    # honours it. The queries cover every option of the models (option_queries.py), so a new one
    # is checked here with nothing more.
    query = data.draw(FACE_QUERIES[operation])
    try:
        options = FACE_OPTIONS[operation].model_validate(dict(parse_qsl(query)))
        work = options.work(operation, DetectionSettings())
    except (ValidationError, InvalidParameter):
        return  # refused: no work, no key

    rebuilt = FaceWork.from_params(operation, work.cache_params())

    # Attributes are keyed in one order (the answer does not depend on it).
    assert set(rebuilt.attributes) == set(work.attributes)
    assert replace(rebuilt, attributes=work.attributes) == work


def test_unset_options_take_the_settings_defaults() -> None:
    defaults = DetectionSettings(score_threshold=0.4, min_face_px=7, max_faces=9)

    work = AnalyzeOptions(max_faces=2).work(Operation.ANALYZE, defaults)

    assert work.options == DetectOptions(0.4, defaults.nms_threshold, 7, 2)
    assert work.attributes == (Attribute.AGE, Attribute.GENDER)


@pytest.mark.parametrize(
    ("model", "options"),
    [
        (FaceOptions, {"threshold": "1.01"}),
        (FaceOptions, {"max_faces": "0"}),
        (FaceOptions, {"min_face_px": "10001"}),
        (FaceOptions, {"attributes": "age"}),  # not an option of detect
        (AnnotateOptions, {"format": "gif"}),
        (BatchOptions, {"operation": "id-photo"}),
    ],
)
def test_out_of_range_or_unknown_options_are_refused(
    model: type[FaceOptions], options: dict[str, str]
) -> None:
    with pytest.raises(ValidationError):
        model.model_validate(options)


def test_an_unknown_attribute_is_an_invalid_parameter_naming_the_likely_one() -> None:
    with pytest.raises(InvalidParameter) as raised:
        AnalyzeOptions(attributes="age,gendr").work(Operation.ANALYZE, DetectionSettings())

    assert raised.value.message == (
        "unknown attribute 'gendr' (did you mean 'gender'?); allowed: age, gender (or none)"
    )
    assert raised.value.details == {"parameter": "attributes"}


def test_a_batch_of_an_operation_it_does_not_take_names_the_ones_it_does() -> None:
    with pytest.raises(InvalidParameter) as raised:
        parse_options(BatchOptions, {"operation": "id-photo"}, "batch")

    assert raised.value.message == (
        "invalid batch options: operation: Input should be 'detect', 'analyze' or 'annotate'"
    )


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_threshold_that_is_not_a_finite_number_is_called_so(value: str) -> None:
    with pytest.raises(InvalidParameter, match="finite number"):
        parse_options(FaceOptions, {"threshold": value}, "detect")


def test_a_batch_detect_neither_needs_nor_checks_attributes() -> None:
    options = BatchOptions.model_validate({"operation": "detect", "attributes": "mood"})

    assert options.batch_work(DetectionSettings()).attributes == ()


@pytest.mark.parametrize(
    ("operation", "name"),
    [(op, name) for op, model in FACE_OPTIONS.items() for name in model.model_fields],
    ids=lambda v: v.value if isinstance(v, Operation) else v,
)
def test_every_option_reaches_the_work(operation: Operation, name: str) -> None:
    # An option the model takes but work() does not hand on would be documented, validated and
    # keyed by nothing: accepted and ignored. Some value the clients send must change the work.
    defaults = DetectionSettings()
    model = FACE_OPTIONS[operation]
    unset = model().work(operation, defaults)

    def changes_the_work(value: str) -> bool:
        try:
            return model.model_validate({name: value}).work(operation, defaults) != unset
        except (ValidationError, InvalidParameter):
            return False

    find(FACE_VALUES[name], changes_the_work, settings=settings(max_examples=500, database=None))
