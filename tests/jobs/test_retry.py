"""The one retry rule both runners follow, and the waits between retries."""

from __future__ import annotations

import pytest
from rq.timeouts import JobTimeoutException

from faceflow.errors import (
    DeadlineExceeded,
    FaceflowError,
    InvalidParameter,
    ModelMissing,
    NoFace,
    NotReady,
    Overloaded,
    QueueFull,
    Unavailable,
    UnsupportedFormat,
    WorkerCrashed,
)
from faceflow.jobs.retry import is_retryable, retry_intervals, retry_wait_s
from faceflow.jobs.worker import attempt_error


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (WorkerCrashed("died"), True),
        (DeadlineExceeded("too slow"), True),
        (Unavailable("a blip"), True),
        (Overloaded("busy"), True),
        (NotReady("starting"), True),
        (QueueFull("full"), True),
        (NoFace("no face"), False),
        (UnsupportedFormat("not an image"), False),
        (InvalidParameter("bad option"), False),
        (FaceflowError("a bug"), False),
        (ModelMissing("no model"), False),
    ],
    ids=lambda value: value.code if isinstance(value, FaceflowError) else str(value),
)
def test_input_and_internal_errors_are_final_the_rest_retried(
    error: FaceflowError, retryable: bool
) -> None:
    assert is_retryable(error) is retryable


@pytest.mark.parametrize(
    ("raised", "code", "retryable"),
    [
        (JobTimeoutException("RQ's time limit"), "deadline_exceeded", True),
        (RuntimeError("a bug"), "internal", False),
        (WorkerCrashed("died"), "worker_crashed", True),
        (NoFace("no face"), "no_face", False),
    ],
)
def test_a_worker_judges_what_an_attempt_raised_by_the_same_rule(
    raised: Exception, code: str, retryable: bool
) -> None:
    error = attempt_error(raised, "job-1")
    assert (error.code, is_retryable(error)) == (code, retryable)


@pytest.mark.parametrize(
    ("backoff", "waits"),
    [([0, 5, 15], [0, 5, 15, 15]), ([0, 5], [0, 5, 5, 5]), ([7], [7, 7, 7, 7]), ([], [0, 0, 0, 0])],
)
def test_the_last_wait_repeats(backoff: list[int], waits: list[int]) -> None:
    assert [retry_wait_s(backoff, retry) for retry in (1, 2, 3, 4)] == waits


@pytest.mark.parametrize(
    ("max_retries", "backoff", "expected"),
    [
        (3, [0, 5, 15], [0, 5, 15]),
        (5, [0, 5], [0, 5, 5, 5, 5]),
        (2, [0, 5, 15], [0, 5]),
        (1, [], [0]),
    ],
)
def test_rq_intervals_give_retry_k_the_kth_wait(
    max_retries: int, backoff: list[int], expected: list[int]
) -> None:
    intervals = retry_intervals(max_retries, backoff)
    assert intervals == expected
    # RQ's own reading of the list gives retry k the k-th wait.
    for k in range(1, max_retries + 1):
        retries_left = max_retries - k + 1
        index = max(len(intervals) - retries_left, 0)
        assert intervals[index] == retry_wait_s(backoff, k)
