"""When and after how long a failed job attempt is tried again: one rule for both runners.

Another attempt is made only for a failure another attempt may not meet: a crashed worker, a
deadline, transient unavailability (every :class:`~faceflow.errors.RetryableError`, the errors
the service answers with ``Retry-After``). Everything else fails the job at once: an input error
(undecodable image, no face) fails the same way on every attempt, and so does an internal or
model error of the same code on the same models. ``jobs.max_retries`` bounds the retries and
``jobs.retry_backoff_s`` spaces them.

A job that failed for good for want of capacity (its retries spent on a full queue, busy
processes, a worker of another version) failed on what befell its attempts, not on its work: the
same work submitted again runs again rather than being answered with that failure
(:func:`failed_for_now`). A crash or a deadline on every attempt may be the work's own doing
(an image that kills or hangs its worker), so that failure stays shared.
"""

from __future__ import annotations

from faceflow.errors import FaceflowError, RetryableError
from faceflow.jobs.records import JobError

CAPACITY_CODES = frozenset({"unavailable", "overloaded", "queue_full", "not_ready"})
"""The retryable failures that say nothing about the work (see :func:`failed_for_now`)."""


def is_retryable(error: FaceflowError) -> bool:
    """Whether a job attempt that failed with ``error`` is tried again (retries left)."""
    return isinstance(error, RetryableError)


def failed_for_now(error: JobError) -> bool:
    """Whether a job that ended failed with ``error`` failed for want of capacity (no room in
    the queue, no process, a worker that could not take it: :data:`CAPACITY_CODES`), so that a
    new submission of its work runs it again instead of sharing its failure for
    ``failure_ttl_s`` (7 days). Not a crash or a deadline on every attempt
    (``worker_crashed``, ``deadline_exceeded``): those may be the image's own doing, and run
    again for whoever submits it, one image would cost ``1 + max_retries`` crashed workers or
    job timeouts per submission."""
    return error.code in CAPACITY_CODES


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
