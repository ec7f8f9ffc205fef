"""The operation table: for each operation its options model, its request, its cache parameters
and its task; and a job submission validated through it.

Each operation is an :class:`OperationSpec`. Because a job's key is built exactly like the sync
endpoint's (the same model, the same parameters), a job's result is a cache hit for the sync
endpoint and vice versa. Plugging in an operation is one entry in the table below; an operation
:class:`Operation` lists but the table lacks answers 400 ``invalid_parameter``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from faceflow.cache.compute import CachedCompute
from faceflow.cache.keys import cache_key_from_hash, content_hash
from faceflow.config import RuntimeOperation, RuntimeSettings, Settings
from faceflow.domain import Operation
from faceflow.errors import InvalidParameter, JsonScalar, OperationDisabled, did_you_mean, quoted
from faceflow.operations.faces import FACE_OPTIONS, FaceOptions, FaceWork
from faceflow.operations.idphoto import (
    PhotoOptions,
    SheetOptions,
    id_photo_task,
    photo_job,
    sheet_job,
    sheet_job_task,
    staged_id_photo,
    staged_sheet,
)
from faceflow.operations.parse import parse_options, stored_options
from faceflow.runtime.context import WorkerContext
from faceflow.runtime.tasks import FaceRequest, TaskOutput, run_face_request

Options = TypeVar("Options", bound=BaseModel)
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class OperationSpec(Generic[Options, R]):
    """One operation: how it is asked for, keyed and run."""

    options: type[Options]
    """The one model of the operation's options: the sync route's query, a job's options."""
    request: Callable[[Options, bytes, Settings], R]
    """The parsed options and the image → the task's request (settings fill the defaults);
    InvalidParameter for a value the model cannot check alone."""
    task: Callable[[WorkerContext, R], TaskOutput]
    """Runs in an inference or worker process: the request → a finished body."""
    params: Callable[[R], dict[str, JsonScalar]]
    """Every parameter that changes the answer, canonically: the cache key's (and the sync
    endpoint's) parameters."""
    from_params: Callable[[bytes, Mapping[str, JsonScalar]], R]
    """Worker side: the image and the stored :attr:`payload` → the same request again."""
    payload: Callable[[R], dict[str, JsonScalar]] | None = None
    """What a job stores to rebuild the request, when :attr:`params` cannot be turned back into
    it; default: :attr:`params`. Either way nothing may be left to a worker's own defaults."""
    staged: Callable[[CachedCompute, R, str], Awaitable[TaskOutput]] | None = None
    """For a runner in the API process: the result made in stages through the cache, as the
    sync route makes it (an ID photo's cut-out cached apart, then its render), given the
    request and its upload's content hash (taken once, for the key); None: :attr:`task` in one
    trip."""

    def payload_of(self, request: R) -> dict[str, JsonScalar]:
        return (self.payload or self.params)(request)


def _face_spec(operation: Operation) -> OperationSpec[FaceOptions, FaceRequest]:
    def request(options: FaceOptions, data: bytes, settings: Settings) -> FaceRequest:
        return options.work(operation, settings.detection).request(data)

    def from_params(data: bytes, params: Mapping[str, JsonScalar]) -> FaceRequest:
        return FaceWork.from_params(operation, params).request(data)

    return OperationSpec(
        options=FACE_OPTIONS[operation],
        request=request,
        task=run_face_request,
        params=lambda r: FaceWork.of(r).cache_params(),
        from_params=from_params,
    )


def _stored(raw: BaseModel) -> dict[str, JsonScalar]:
    # Only what the client gave: the worker's model then tells a chosen preset from the default
    # one, as the route's did (PhotoOptions refuses a preset beside a custom size).
    return dict(raw.model_dump(mode="json", exclude_unset=True))


_SPECS: Mapping[Operation, OperationSpec[Any, Any]] = MappingProxyType(
    {
        Operation.DETECT: _face_spec(Operation.DETECT),
        Operation.ANALYZE: _face_spec(Operation.ANALYZE),
        Operation.ANNOTATE: _face_spec(Operation.ANNOTATE),
        Operation.ID_PHOTO: OperationSpec(
            options=PhotoOptions,
            request=lambda options, data, _: photo_job(options, data),
            task=id_photo_task,
            params=lambda r: r.work.cache_params(),
            from_params=lambda data, stored: photo_job(
                stored_options(PhotoOptions, stored, "id-photo"), data
            ),
            payload=lambda r: _stored(r.raw),
            staged=staged_id_photo,
        ),
        Operation.ID_PHOTO_SHEET: OperationSpec(
            options=SheetOptions,
            request=lambda options, data, _: sheet_job(options, data),
            task=sheet_job_task,
            params=lambda r: r.work.cache_params(),
            from_params=lambda data, stored: sheet_job(
                stored_options(SheetOptions, stored, "print-sheet"), data
            ),
            payload=lambda r: _stored(r.raw),
            staged=staged_sheet,
        ),
    }
)


def operation_specs() -> Mapping[Operation, OperationSpec[Any, Any]]:
    """Every operation this build can run."""
    return _SPECS


def spec_for(operation: str) -> tuple[Operation, OperationSpec[Any, Any]]:
    """The operation named ``operation`` and its spec; 400 if unknown or not available."""
    try:
        op = Operation(operation)
    except ValueError:
        names = [o.value for o in Operation]
        raise InvalidParameter(
            f"unknown operation {quoted(operation)}{did_you_mean(operation, names)}; "
            f"allowed: {', '.join(names)}",
            {"parameter": "operation"},
        ) from None
    spec = _SPECS.get(op)
    if spec is None:
        raise InvalidParameter(f"operation {op.value!r} is not available on this server")
    return op, spec


@dataclass(frozen=True, slots=True)
class Submission:
    """A validated job: its operation, request, canonical parameters and cache key."""

    operation: Operation
    data: bytes = field(repr=False)
    request: Any = field(repr=False)
    params: dict[str, JsonScalar]
    key: str
    spec: OperationSpec[Any, Any] = field(repr=False)
    digest: str = field(repr=False)
    """The upload's content hash, which :attr:`key` is made of: a stage keyed apart (an ID
    photo's cut-out) takes it from here rather than hashing the upload again."""

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


_MODELS_OF: Mapping[Operation, RuntimeOperation] = MappingProxyType(
    {
        Operation.DETECT: Operation.DETECT,
        Operation.ANALYZE: Operation.ANALYZE,
        Operation.ANNOTATE: Operation.ANNOTATE,
        Operation.ID_PHOTO: Operation.ID_PHOTO,
        Operation.ID_PHOTO_SHEET: Operation.ID_PHOTO,
    }
)


def offers(operation: Operation, runtime: RuntimeSettings) -> bool:
    """Whether this server's inference processes load the models ``operation`` needs."""
    return _MODELS_OF[operation] in runtime.operations


def check_enabled(operation: Operation, runtime: RuntimeSettings) -> None:
    """:class:`OperationDisabled` (404 ``operation_disabled``) when this server's inference
    processes do not load the models ``operation`` needs (``runtime.operations``): refused where
    the request arrives, not after it was queued or sent to a process."""
    if not offers(operation, runtime):
        raise OperationDisabled(
            f"this server does not offer {operation.value} (runtime.operations: "
            f"{', '.join(runtime.operations)})"
        )


@dataclass(frozen=True, slots=True)
class JobOptions:
    """A job's operation and its options, validated before its upload is read."""

    operation: Operation
    spec: OperationSpec[Any, Any] = field(repr=False)
    options: BaseModel


def job_options(operation: str, options: Mapping[str, str], settings: Settings) -> JobOptions:
    """Check a job's operation (offered here) and its options against the operation's model."""
    op, spec = spec_for(operation)
    check_enabled(op, settings.runtime)
    return JobOptions(op, spec, parse_options(spec.options, options, op.value))


def submission(chosen: JobOptions, data: bytes, digest: str, settings: Settings) -> Submission:
    """The job of ``chosen`` on the upload ``data`` (its :func:`content_hash` ``digest``, taken
    by the caller: beside the event loop for a large upload), with its key (the sync
    endpoint's)."""
    op, spec = chosen.operation, chosen.spec
    request = spec.request(chosen.options, data, settings)
    params = spec.params(request)
    key = cache_key_from_hash(digest, op.value, params)
    return Submission(op, data, request, params, key, spec, digest)


def prepare(
    operation: str, data: bytes, options: Mapping[str, str], settings: Settings
) -> Submission:
    """Validate a job submission and compute its key (the same key the sync endpoint uses)."""
    return submission(job_options(operation, options, settings), data, content_hash(data), settings)
