"""Job statuses, the job record clients see, and the versioned wire forms of everything a job
stores: its payload (operation, options, image bytes), its outcome and the handle that names it.

Nothing here is pickled. Whoever can write to the queue Redis must not be able to run code in an
API or worker process, so every stored value is msgpack ``[SCHEMA_VERSION, ...]`` with explicit
fields, and a value of another shape or version decodes to ``None`` (treated as absent).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import msgpack

from faceflow.cache.entry import CacheEntry, failure_of, unpack_versioned
from faceflow.errors import Conflict, FaceflowError, JobFailed, JsonScalar, error_from_code

SCHEMA_VERSION = 1

_SCALARS = (str, int, float, bool, type(None))


class JobStatus(StrEnum):
    QUEUED = "queued"
    """Waiting for a worker (also while waiting out a retry's backoff)."""
    STARTED = "started"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def done(self) -> bool:
        return self in (JobStatus.FINISHED, JobStatus.FAILED, JobStatus.CANCELED)


@dataclass(frozen=True, slots=True)
class JobError:
    """Why a job failed: a stable error code (the same as the sync endpoint's), a message, and
    the error's details (``parameter``, ``min``, ``max``...), so a job's failure says what the
    sync endpoint's would."""

    code: str
    message: str
    status: int = 500
    """The HTTP status the same error has on the sync endpoint."""
    details: Mapping[str, JsonScalar] = field(default_factory=dict)

    @classmethod
    def of(cls, exc: FaceflowError) -> JobError:
        return cls(exc.code, exc.message, exc.status, dict(exc.details))

    def to_json(self) -> dict[str, JsonScalar]:
        """The error as the sync endpoint's body has it: code, message, then the details."""
        return {**self.details, "code": self.code, "message": self.message}


@dataclass(frozen=True, slots=True)
class JobRecord:
    """What ``GET /v1/jobs/{handle}`` reports. Timestamps are Unix seconds (UTC)."""

    handle: str
    operation: str
    status: JobStatus
    created_at: float
    enqueued_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    attempts: int = 0
    """Attempts started so far (a retry after a crash or timeout adds one)."""
    error: JobError | None = None
    media_type: str | None = None
    """The result's media type once finished."""
    from_cache: bool = False
    """Finished at submission: the result was already cached."""

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON-ready dict with ISO 8601 timestamps."""
        body: dict[str, Any] = {
            "handle": self.handle,
            "operation": self.operation,
            "status": self.status.value,
            "created_at": iso(self.created_at),
            "enqueued_at": iso(self.enqueued_at),
            "started_at": iso(self.started_at),
            "ended_at": iso(self.ended_at),
            "attempts": self.attempts,
            "from_cache": self.from_cache,
        }
        if self.media_type is not None:
            body["media_type"] = self.media_type
        if self.error is not None:
            body["error"] = self.error.to_json()
        return body


def result_of(view: JobRecord, outcome: JobOutcome | None) -> CacheEntry:
    """The result of the job ``view`` describes; raises its error if it failed, else Conflict.

    A job that failed for good answers a final error, never a retryable one: a failure on its
    input (4xx: ``no_face``, ``undecodable``, ``expired``...) is that error as the sync endpoint
    answers it; any other failure (``worker_crashed``, ``deadline_exceeded``, ``internal``) is
    409 ``job_failed`` with the failure's code in ``failure``. Neither carries ``Retry-After``:
    polling again cannot change a failed job's answer.
    """
    if view.status is JobStatus.FINISHED and outcome is not None and outcome.entry is not None:
        return outcome.entry
    if view.status is JobStatus.FAILED and view.error is not None:
        error = view.error
        if 400 <= error.status < 500:
            rebuilt = error_from_code(error.code, error.message, error.details)
            if 400 <= rebuilt.status < 500:
                raise rebuilt
        raise JobFailed(f"the job failed: {error.message}", {"failure": error.code})
    if view.status is JobStatus.CANCELED:
        raise Conflict("the job was canceled; it has no result")
    raise Conflict(f"the job is {view.status.value}; poll its status until it is finished")


def iso(timestamp: float | None) -> str | None:
    """``timestamp`` (Unix seconds) as ISO 8601 UTC with milliseconds, or None."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True, slots=True)
class JobPayload:
    """The work itself: what to do (operation + canonical options) to which image bytes."""

    operation: str
    params: Mapping[str, JsonScalar]
    data: bytes = field(repr=False)


def encode_payload(payload: JobPayload) -> bytes:
    packed: bytes = msgpack.packb(
        [SCHEMA_VERSION, payload.operation, dict(payload.params), payload.data], use_bin_type=True
    )
    return packed


def decode_payload(raw: bytes) -> JobPayload | None:
    value = unpack_versioned(raw, SCHEMA_VERSION, 4)
    if value is None:
        return None
    _, operation, params, data = value
    if not (isinstance(operation, str) and isinstance(params, dict) and isinstance(data, bytes)):
        return None
    if not _scalar_map(params):
        return None
    return JobPayload(operation, params, data)


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """How one job ended: a result entry, or an error that retrying cannot fix."""

    entry: CacheEntry | None = None
    error: JobError | None = None

    def __post_init__(self) -> None:
        if (self.entry is None) == (self.error is None):
            raise ValueError("a JobOutcome holds exactly one of entry and error")


def cached_outcome(entry: CacheEntry) -> JobOutcome:
    """The outcome of a job whose work the result cache answers: ``entry`` as its result, or
    the deterministic failure it holds (no face…) as its error, as computing it would end."""
    failure = failure_of(entry)
    return JobOutcome(entry=entry) if failure is None else JobOutcome(error=JobError.of(failure))


def encode_outcome(outcome: JobOutcome) -> bytes:
    if outcome.entry is not None:
        e = outcome.entry
        value: list[Any] = [SCHEMA_VERSION, "ok", e.media_type, e.body, dict(e.meta)]
    else:
        assert outcome.error is not None
        err = outcome.error
        value = [SCHEMA_VERSION, "error", err.code, err.message, err.status, dict(err.details)]
    packed: bytes = msgpack.packb(value, use_bin_type=True)
    return packed


def decode_outcome(raw: bytes) -> JobOutcome | None:
    # Errors stored before they kept their details have five items, not six.
    value = unpack_versioned(raw, SCHEMA_VERSION, 5, 6)
    if value is None:
        return None
    _, kind, a, b, c, *rest = value
    try:
        if kind == "ok" and not rest and isinstance(a, str) and isinstance(b, bytes):
            return JobOutcome(entry=CacheEntry(a, b, c)) if isinstance(c, dict) else None
        if kind == "error" and isinstance(a, str) and isinstance(b, str) and type(c) is int:
            details = rest[0] if rest else {}
            if not (isinstance(details, dict) and _scalar_map(details)):
                return None
            return JobOutcome(error=JobError(a, b, c, details))
    except TypeError:
        return None
    return None


OUTCOME_HEAD_BYTES = 1024
"""The first bytes of a stored outcome that say what it is (:func:`outcome_head`)."""


def outcome_head(head: bytes) -> JobOutcome | None:
    """What a stored outcome is, from its first :data:`OUTCOME_HEAD_BYTES` (all of it when it is
    shorter), for a job's status, which sends no result: the outcome itself when ``head`` is
    all of it, a successful one's media type (its body left empty) when it is longer; None when
    these bytes do not say (a longer error, or not an outcome: read it whole). Every status poll
    of a job with a 3.8 MB result read and decoded all of it."""
    if len(head) < OUTCOME_HEAD_BYTES:
        return decode_outcome(head)
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(head)
    try:
        if unpacker.read_array_header() != 5:
            return None
        version, kind, media_type = unpacker.unpack(), unpacker.unpack(), unpacker.unpack()
    except Exception:  # msgpack raises several unrelated types for corrupt input
        return None
    if type(version) is not int or version != SCHEMA_VERSION or kind != "ok":
        return None
    return (
        JobOutcome(entry=CacheEntry(media_type, b"", {})) if isinstance(media_type, str) else None
    )


@dataclass(frozen=True, slots=True)
class HandleRecord:
    """What a client's handle points at: the internal job id, and who may see it."""

    job_id: str
    operation: str
    owner: str | None
    """The API key digest that created it; None when auth is off."""
    created_at: float
    canceled_at: float | None = None
    from_cache: bool = False


def encode_handle(record: HandleRecord) -> bytes:
    packed: bytes = msgpack.packb(
        [
            SCHEMA_VERSION,
            record.job_id,
            record.operation,
            record.owner,
            record.created_at,
            record.canceled_at,
            record.from_cache,
        ],
        use_bin_type=True,
    )
    return packed


def decode_handle(raw: bytes) -> HandleRecord | None:
    value = unpack_versioned(raw, SCHEMA_VERSION, 7)
    if value is None:
        return None
    _, job_id, operation, owner, created_at, canceled_at, from_cache = value
    if not (
        isinstance(job_id, str)
        and isinstance(operation, str)
        and isinstance(owner, str | None)
        and isinstance(created_at, float | int)
        and isinstance(canceled_at, float | int | None)
        and isinstance(from_cache, bool)
    ):
        return None
    return HandleRecord(
        job_id,
        operation,
        owner,
        float(created_at),
        None if canceled_at is None else float(canceled_at),
        from_cache,
    )


def _scalar_map(value: dict[Any, Any]) -> bool:
    return all(isinstance(k, str) and isinstance(v, _SCALARS) for k, v in value.items())
