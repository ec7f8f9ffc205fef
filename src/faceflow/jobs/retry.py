"""When and after how long a failed job attempt is tried again: one rule for both runners.

Another attempt is made only for a failure another attempt may not meet: a crashed worker, a
deadline, transient unavailability (every :class:`~faceflow.errors.RetryableError`, the errors
the service answers with ``Retry-After``). Everything else fails the job at once: an input error
(undecodable image, no face) fails the same way on every attempt, and so does an internal or
model error of the same code on the same models. ``jobs.max_retries`` bounds the retries and
``jobs.retry_backoff_s`` spaces them.

A job that failed for good on a retryable error (its retries spent) failed on what befell its
attempts, not on its work: the same work submitted again runs again rather than being answered
with that failure (:func:`failed_for_now`).
"""

from __future__ import annotations

from faceflow.errors import FaceflowError, RetryableError
from faceflow.jobs.records import JobError


def is_retryable(error: FaceflowError) -> bool:
    """Whether a job attempt that failed with ``error`` is tried again (retries left)."""
    return isinstance(error, RetryableError)


def failed_for_now(error: JobError) -> bool:
    """Whether a job that ended failed with ``error`` failed on its attempts' circumstances (a
    crashed worker, a deadline, no room or no process for it: the 503s the retries are for),
    so that a new submission of its work runs it again instead of sharing its failure. Kept
    shared, one worker killed under a job (a deploy, the OOM killer) answered every client
    submitting the same image with ``worker_crashed`` for ``failure_ttl_s`` (7 days)."""
    return error.status == 503


def retry_wait_s(backoff_s: list[int], retry: int) -> int:
    """The wait before retry ``retry`` (1, 2, …): its entry of ``backoff_s``, the last one
    repeating, 0 for an empty list."""
    waits = backoff_s or [0]
    return waits[min(retry, len(waits)) - 1]


def retry_intervals(max_retries: int, backoff_s: list[int]) -> list[int]:
    """RQ's interval list for ``backoff_s`` (wait before retry 1, 2, …; the last value repeats).

    RQ reads the list from its end (retry k of n waits ``intervals[len - (n - k + 1)]``, and the
    first value when the list is shorter than n), so it is padded to ``max_retries`` entries.
    """
    return [retry_wait_s(backoff_s, k) for k in range(1, max(max_retries, 1) + 1)]
