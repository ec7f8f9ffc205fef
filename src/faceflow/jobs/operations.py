"""What a job can do: one table from operation to its task and its request builders.

Each operation is an :class:`OperationSpec`: the inference task (the same function the sync
endpoint runs), a builder that validates a client's options into a request (in the API), the
request's canonical parameters (the cache key's and the stored payload's), and a builder that
turns those parameters back into the request (in a worker). Because a job's key is built exactly
like the sync endpoint's, a job's result is a cache hit for the sync endpoint and vice versa.

Plugging in an operation is one entry in the table below; an operation :class:`JobOperation`
lists but the table lacks answers 400 ``invalid_parameter`` ("not available on this server").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from faceflow.cache.keys import cache_key
from faceflow.config import Settings
from faceflow.domain import parse_attributes
from faceflow.errors import InvalidParameter, JsonScalar
from faceflow.imaging.encode import OutputFormat
from faceflow.jobs import idphoto
from faceflow.pipeline.detect import DetectOptions
from faceflow.runtime.context import WorkerContext
from faceflow.runtime.tasks import FaceRequest, Operation, TaskOutput, run_face_request

R = TypeVar("R")


class JobOperation(StrEnum):
    DETECT = "detect"
    ANALYZE = "analyze"
    ANNOTATE = "annotate"
    ID_PHOTO = "id-photo"
    ID_PHOTO_SHEET = "id-photo-sheet"


@dataclass(frozen=True, slots=True)
class OperationSpec(Generic[R]):
    """How to run one operation as a job."""

    task: Callable[[WorkerContext, R], TaskOutput]
    """Runs in an inference or worker process: the request → a finished body."""
    from_options: Callable[[bytes, Mapping[str, str], Settings], R]
    """API side: the image and the client's options (query string) → a validated request.
    Raises :class:`InvalidParameter` for an unknown or invalid option."""
    params: Callable[[R], dict[str, JsonScalar]]
    """Every parameter that changes the answer, canonically: the cache key's (and the sync
    endpoint's) parameters."""
    from_params: Callable[[bytes, Mapping[str, JsonScalar]], R]
    """Worker side: the image and the stored :attr:`payload` → the same request again."""
    payload: Callable[[R], dict[str, JsonScalar]] | None = None
    """What a job stores to rebuild the request, when :attr:`params` cannot be turned back into
    it; default: :attr:`params`. Either way nothing may be left to a worker's own defaults."""

    def payload_of(self, request: R) -> dict[str, JsonScalar]:
        return (self.payload or self.params)(request)


@dataclass(frozen=True, slots=True)
class Submission:
    """A validated job: its operation, request, canonical parameters and cache key."""

    operation: JobOperation
    data: bytes = field(repr=False)
    request: Any = field(repr=False)
    params: dict[str, JsonScalar]
    key: str
    spec: OperationSpec[Any] = field(repr=False)

    @property
    def payload(self) -> dict[str, JsonScalar]:
        """The parameters a job stores for its worker (see :attr:`OperationSpec.payload`)."""
        return self.spec.payload_of(self.request)

    @property
    def job_id(self) -> str:
        """The internal job id: the cache key in RQ's id alphabet, so identical work shares it."""
        return job_id_for(self.key)


def job_id_for(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", key)


def scoped_job_id(submission: Submission, owner: str | None, scope: str) -> str:
    """The job id identical work shares: the content key's (``scope`` "global"), or that plus
    the submitting API key's digest ("api_key"), so no key's job reveals another key's work."""
    if scope == "api_key" and owner is not None:
        return f"{submission.job_id}-k{owner[:32]}"
    return submission.job_id


class FaceOptions(BaseModel):
    """The query options of /v1/detect, /v1/analyze and /v1/annotate, for a job."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold: float | None = Field(None, ge=0.0, le=1.0)
    max_faces: int | None = Field(None, ge=1, le=1000)
    min_face_px: int | None = Field(None, ge=0, le=10_000)
    attributes: str = "age,gender"
    format: OutputFormat = OutputFormat.JPEG


def _face_from_options(
    operation: Operation, data: bytes, options: Mapping[str, str], settings: Settings
) -> FaceRequest:
    try:
        parsed = FaceOptions.model_validate(dict(options))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidParameter(f"invalid {operation.value} options: {problems}") from None
    base = DetectOptions.from_settings(settings.detection)
    detect = DetectOptions(
        score_threshold=base.score_threshold if parsed.threshold is None else parsed.threshold,
        nms_threshold=base.nms_threshold,
        min_face_px=base.min_face_px if parsed.min_face_px is None else parsed.min_face_px,
        max_faces=base.max_faces if parsed.max_faces is None else parsed.max_faces,
    )
    attributes = () if operation is Operation.DETECT else parse_attributes(parsed.attributes)
    return FaceRequest(data, operation, detect, attributes, parsed.format)


def _face_params(request: FaceRequest) -> dict[str, JsonScalar]:
    return request.cache_params()


def _face_from_params(
    operation: Operation, data: bytes, params: Mapping[str, JsonScalar]
) -> FaceRequest:
    def number(name: str) -> float:
        value = params.get(name)
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise InvalidParameter(f"job parameter {name!r} is missing or not a number")
        return float(value)

    detect = DetectOptions(
        score_threshold=number("score_threshold"),
        nms_threshold=number("nms_threshold"),
        min_face_px=int(number("min_face_px")),
        max_faces=int(number("max_faces")),
    )
    attributes_text = params.get("attributes", "")
    attributes = parse_attributes(attributes_text if isinstance(attributes_text, str) else "")
    fmt = params.get("format", OutputFormat.JPEG.value)
    try:
        image_format = OutputFormat(str(fmt))
    except ValueError:
        raise InvalidParameter(f"job parameter format {fmt!r} is unknown") from None
    return FaceRequest(data, operation, detect, attributes, image_format)


def _face_spec(operation: Operation) -> OperationSpec[FaceRequest]:
    return OperationSpec(
        task=run_face_request,
        from_options=partial(_face_from_options, operation),
        params=_face_params,
        from_params=partial(_face_from_params, operation),
    )


_SPECS: Mapping[JobOperation, OperationSpec[Any]] = MappingProxyType(
    {
        JobOperation.DETECT: _face_spec(Operation.DETECT),
        JobOperation.ANALYZE: _face_spec(Operation.ANALYZE),
        JobOperation.ANNOTATE: _face_spec(Operation.ANNOTATE),
        JobOperation.ID_PHOTO: OperationSpec(
            task=idphoto.id_photo_task,
            from_options=idphoto.from_options,
            params=idphoto.params,
            from_params=idphoto.from_params,
            payload=idphoto.payload,
        ),
        JobOperation.ID_PHOTO_SHEET: OperationSpec(
            task=idphoto.sheet_job_task,
            from_options=idphoto.sheet_from_options,
            params=idphoto.sheet_params,
            from_params=idphoto.sheet_from_params,
            payload=idphoto.sheet_payload,
        ),
    }
)


def operation_specs() -> Mapping[JobOperation, OperationSpec[Any]]:
    """Every operation this build can run as a job."""
    return _SPECS


def spec_for(operation: str) -> tuple[JobOperation, OperationSpec[Any]]:
    """The operation named ``operation`` and its spec; 400 if unknown or not available."""
    try:
        op = JobOperation(operation)
    except ValueError:
        allowed = ", ".join(o.value for o in JobOperation)
        raise InvalidParameter(f"unknown operation {operation!r}; allowed: {allowed}") from None
    spec = _SPECS.get(op)
    if spec is None:
        raise InvalidParameter(f"operation {op.value!r} is not available on this server")
    return op, spec


def prepare(
    operation: str, data: bytes, options: Mapping[str, str], settings: Settings
) -> Submission:
    """Validate a job submission and compute its key (the same key the sync endpoint uses)."""
    op, spec = spec_for(operation)
    request = spec.from_options(data, options, settings)
    params = spec.params(request)
    return Submission(op, data, request, params, cache_key(data, op.value, params), spec)
