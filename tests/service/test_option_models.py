"""Every entry parses an operation's options alike: a sync route (FastAPI's query parsing of the
options model) and a job submission (the same model, from the query's mapping) accept the same
generated query strings into the same cache parameters, and refuse the same ones."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_dependant, request_params_to_args
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.datastructures import QueryParams

from faceflow.config import Settings
from faceflow.domain import Operation
from faceflow.errors import InvalidParameter, JsonScalar
from faceflow.operations.faces import BatchOptions
from faceflow.operations.idphoto import PhotoOptions, SheetOptions
from faceflow.operations.registry import prepare
from faceflow.service.routes import faces, idphoto
from tests.service.option_queries import (
    DETECT_OPTIONS,
    FACE_VALUES,
    PHOTO_VALUES,
    SHEET_VALUES,
    face_values,
    queries,
)

SETTINGS = Settings()
DATA = b"\xff\xd8 not really a jpeg"


def _route_params(
    endpoint: Callable[..., Any], query: str, resolve: Callable[[Any], dict[str, JsonScalar]]
) -> dict[str, JsonScalar] | None:
    """The cache parameters the route ``endpoint`` works with for ``query``; None if refused."""
    values, errors = request_params_to_args(_dependant(endpoint).query_params, QueryParams(query))
    if errors:
        return None
    with contextlib.suppress(InvalidParameter):
        return resolve(values["options"])
    return None


@functools.cache
def _dependant(endpoint: Callable[..., Any]) -> Dependant:
    return get_dependant(path="/", call=endpoint)


def _job_params(operation: Operation, query: str) -> dict[str, JsonScalar] | None:
    options = dict(parse_qsl(query, keep_blank_values=True))
    with contextlib.suppress(InvalidParameter):
        return prepare(operation.value, DATA, options, SETTINGS).params
    return None


CASES: list[
    tuple[Operation, Callable[..., Any], dict[str, st.SearchStrategy[str]], Callable[[Any], Any]]
] = [
    (
        Operation.DETECT,
        faces.detect,
        face_values(*DETECT_OPTIONS),
        lambda o: o.work(Operation.DETECT, SETTINGS.detection).cache_params(),
    ),
    (
        Operation.ANALYZE,
        faces.analyze,
        face_values(*DETECT_OPTIONS, "attributes"),
        lambda o: o.work(Operation.ANALYZE, SETTINGS.detection).cache_params(),
    ),
    (
        Operation.ANNOTATE,
        faces.annotate,
        face_values(*DETECT_OPTIONS, "attributes", "format"),
        lambda o: o.work(Operation.ANNOTATE, SETTINGS.detection).cache_params(),
    ),
    # /v1/id-photo also takes sheet and source, which a job does not: left out here.
    (Operation.ID_PHOTO, idphoto.id_photo, PHOTO_VALUES, lambda o: o.work().cache_params()),
    (
        Operation.ID_PHOTO_SHEET,
        idphoto.id_photo_sheet,
        SHEET_VALUES,
        lambda o: o.work().cache_params(),
    ),
]


@pytest.mark.parametrize(
    ("operation", "endpoint", "values", "resolve"), CASES, ids=[c[0].value for c in CASES]
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_route_and_job_parse_the_same_options(
    operation: Operation,
    endpoint: Callable[..., Any],
    values: dict[str, st.SearchStrategy[str]],
    resolve: Callable[[Any], dict[str, JsonScalar]],
    data: st.DataObject,
) -> None:
    query = data.draw(queries(values))
    assert _route_params(endpoint, query, resolve) == _job_params(operation, query)


@pytest.mark.parametrize(
    ("model", "values"),
    [
        # A batch's model holds every face option (and its own ``operation``).
        (BatchOptions, {**FACE_VALUES, "operation": st.just("detect")}),
        (PhotoOptions, PHOTO_VALUES),
        (SheetOptions, SHEET_VALUES),
    ],
)
def test_queries_are_generated_for_every_option(
    model: type[Any], values: dict[str, st.SearchStrategy[str]]
) -> None:
    # An option added to a model without values here would escape the tests above.
    assert set(model.model_fields) == set(values)
