"""Versioned wire forms of job payloads, outcomes and handles; the record clients see."""

from __future__ import annotations

import msgpack
import pytest

from faceflow.cache.entry import CacheEntry
from faceflow.errors import (
    Conflict,
    FaceflowError,
    JsonScalar,
    NoFace,
    OutOfRange,
    RetryableError,
)
from faceflow.jobs.records import (
    OUTCOME_HEAD_BYTES,
    SCHEMA_VERSION,
    HandleRecord,
    JobError,
    JobOutcome,
    JobPayload,
    JobRecord,
    JobStatus,
    decode_handle,
    decode_outcome,
    decode_payload,
    encode_handle,
    encode_outcome,
    encode_payload,
    outcome_head,
    result_of,
)


def test_payload_round_trip() -> None:
    payload = JobPayload("analyze", {"score_threshold": 0.5, "attributes": "age"}, b"\xff\xd8abc")
    assert decode_payload(encode_payload(payload)) == payload


@pytest.mark.parametrize(
    "outcome",
    [
        JobOutcome(entry=CacheEntry("application/json", b"{}", {"face_count": 0})),
        JobOutcome(error=JobError("no_face", "no face found", 422)),
        JobOutcome(
            error=JobError("out_of_range", "face must be from 1 to 2", 400, {"min": 1, "max": 2})
        ),
    ],
)
def test_outcome_round_trip(outcome: JobOutcome) -> None:
    assert decode_outcome(encode_outcome(outcome)) == outcome


def test_an_error_outcome_stored_before_details_decodes_without_them() -> None:
    raw = msgpack.packb([SCHEMA_VERSION, "error", "no_face", "no face found", 422])
    assert decode_outcome(raw) == JobOutcome(error=JobError("no_face", "no face found", 422))


@pytest.mark.parametrize("canceled_at", [None, 12.5])
def test_handle_round_trip(canceled_at: float | None) -> None:
    record = HandleRecord("ff1-detect-ab", "detect", "d" * 64, 10.0, canceled_at, True)
    assert decode_handle(encode_handle(record)) == record


@pytest.mark.parametrize(
    ("raw", "decoder"),
    [
        (b"\x00garbage", decode_payload),
        (msgpack.packb([SCHEMA_VERSION + 1, "detect", {}, b"x"]), decode_payload),
        (msgpack.packb([True, "detect", {}, b"x"]), decode_payload),
        (msgpack.packb([SCHEMA_VERSION, "detect", {"a": [1]}, b"x"]), decode_payload),
        (msgpack.packb([SCHEMA_VERSION, "maybe", "a", b"b", {}]), decode_outcome),
        (msgpack.packb([SCHEMA_VERSION, "error", "x", "y", "500"]), decode_outcome),
        (msgpack.packb([SCHEMA_VERSION, "error", "x", "y", 400, {"a": [1]}]), decode_outcome),
        (msgpack.packb([SCHEMA_VERSION, "ok", "a", b"b", {}, {}]), decode_outcome),
        (msgpack.packb([SCHEMA_VERSION, 1, "detect", None, 1.0, None, False]), decode_handle),
        (msgpack.packb({"job_id": "x"}), decode_handle),
    ],
)
def test_foreign_or_corrupt_values_decode_to_none(raw: bytes, decoder: object) -> None:
    assert callable(decoder)
    assert decoder(raw) is None


def test_outcome_holds_exactly_one_of_entry_and_error() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        JobOutcome()


def test_record_json_has_iso_timestamps_and_error() -> None:
    record = JobRecord(
        "h" * 32,
        "analyze",
        JobStatus.FAILED,
        created_at=0.0,
        ended_at=1.5,
        attempts=1,
        error=JobError("no_face", "no face", 422),
    )
    body = record.to_json()
    assert body["created_at"] == "1970-01-01T00:00:00.000+00:00"
    assert body["ended_at"] == "1970-01-01T00:00:01.500+00:00"
    assert body["started_at"] is None
    assert body["error"] == {"code": "no_face", "message": "no face"}


def test_record_json_error_carries_the_errors_details_like_the_sync_body() -> None:
    details: dict[str, JsonScalar] = {"parameter": "head_mm", "min": 25.0, "max": 35.0}
    error = JobError("out_of_range", "head_mm must be from 25 to 35", 400, details)
    record = JobRecord("h", "id-photo", JobStatus.FAILED, 0.0, error=error)

    assert record.to_json()["error"] == {
        "code": "out_of_range",
        "message": "head_mm must be from 25 to 35",
        **details,
    }
    with pytest.raises(OutOfRange) as raised:
        result_of(record, None)
    assert raised.value.details == details


def test_result_of_raises_the_jobs_own_error_or_conflict() -> None:
    failed = JobRecord("h", "analyze", JobStatus.FAILED, 0.0, error=JobError("no_face", "x", 422))
    with pytest.raises(NoFace):
        result_of(failed, None)
    with pytest.raises(Conflict):
        result_of(JobRecord("h", "analyze", JobStatus.STARTED, 0.0), None)


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (JobError("no_face", "no face", 422), 422, "no_face"),
        (JobError("expired", "job data expired", 410), 410, "expired"),
        (JobError("worker_crashed", "died on every attempt", 503), 409, "job_failed"),
        (JobError("deadline_exceeded", "ran past its time limit", 503), 409, "job_failed"),
        (JobError("internal", "see the worker log", 500), 409, "job_failed"),
    ],
)
def test_a_failed_jobs_result_is_a_final_error_never_a_retryable_one(
    error: JobError, status: int, code: str
) -> None:
    failed = JobRecord("h", "analyze", JobStatus.FAILED, 0.0, ended_at=1.0, error=error)

    with pytest.raises(FaceflowError) as raised:
        result_of(failed, None)

    assert (raised.value.status, raised.value.code) == (status, code)
    assert not isinstance(raised.value, RetryableError)
    if code == "job_failed":
        assert raised.value.details == {"failure": error.code}


def test_an_outcomes_head_says_a_results_media_type_without_its_body() -> None:
    body = b"\x89PNG" + bytes(OUTCOME_HEAD_BYTES * 4)
    stored = encode_outcome(JobOutcome(entry=CacheEntry("image/png", body, {"face_count": 1})))

    head = outcome_head(stored[:OUTCOME_HEAD_BYTES])

    assert head is not None
    assert head.entry is not None
    assert (head.entry.media_type, head.entry.body) == ("image/png", b"")


def test_an_outcome_shorter_than_its_head_is_read_whole() -> None:
    small = JobOutcome(entry=CacheEntry("application/json", b'{"faces":[]}', {"face_count": 0}))
    failed = JobOutcome(error=JobError("no_face", "no face found", 422, {"faces": 0}))
    for outcome in (small, failed):
        assert outcome_head(encode_outcome(outcome)) == outcome


def test_a_long_error_or_a_corrupt_value_is_not_said_by_its_head() -> None:
    long_error = JobOutcome(error=JobError("bad_request", "x" * 2 * OUTCOME_HEAD_BYTES, 400))
    assert outcome_head(encode_outcome(long_error)[:OUTCOME_HEAD_BYTES]) is None
    assert outcome_head(b"\xff" * OUTCOME_HEAD_BYTES) is None
