"""A small circuit breaker, so a dead or hung Redis costs nothing after a few failures."""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Closed → open after ``failure_threshold`` consecutive failures → half-open after ``reset_s``.

    Callers ask :meth:`allow` before each call and report the outcome with :meth:`record_success`
    or :meth:`record_failure`. While open, :meth:`allow` is ``False``. Once ``reset_s`` has passed
    it lets exactly one trial call through (half-open): success closes the breaker, failure opens
    it for another ``reset_s``. A trial whose outcome is never reported (its caller was cancelled)
    stops blocking after ``reset_s``, when another trial is allowed.

    ``on_change(is_open)`` is called when the breaker opens (``True``) or closes (``False``); a
    half-open breaker still counts as open. Not thread-safe: use it from one event loop.
    """

    def __init__(
        self,
        failure_threshold: int,
        reset_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        if failure_threshold < 1 or reset_s <= 0:
            raise ValueError("failure_threshold must be >= 1 and reset_s > 0")
        self._threshold = failure_threshold
        self._reset_s = reset_s
        self._clock = clock
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_started_at: float | None = None

    @property
    def state(self) -> BreakerState:
        """The current state; an open breaker whose ``reset_s`` has passed reports half-open."""
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self._reset_s:
            return BreakerState.HALF_OPEN
        return self._state

    @property
    def is_open(self) -> bool:
        """Whether calls are being refused or only trialled (open or half-open)."""
        return self._state is not BreakerState.CLOSED

    def allow(self) -> bool:
        """Whether the caller may make a call now; in half-open, ``True`` for one trial only."""
        if self._state is BreakerState.CLOSED:
            return True
        now = self._clock()
        if self._state is BreakerState.OPEN:
            if now - self._opened_at < self._reset_s:
                return False
            self._state = BreakerState.HALF_OPEN
            self._trial_started_at = now
            return True
        if self._trial_started_at is None or now - self._trial_started_at >= self._reset_s:
            self._trial_started_at = now
            return True
        return False

    def record_success(self) -> None:
        """A call succeeded: reset the failure count; a half-open breaker closes.

        A success reported while fully open (a call that started before the breaker opened) is
        ignored: one lucky call must not undo the evidence of the failures.
        """
        if self._state is BreakerState.OPEN:
            return
        self._failures = 0
        if self._state is BreakerState.HALF_OPEN:
            self._state = BreakerState.CLOSED
            self._trial_started_at = None
            self._notify(False)

    def record_failure(self) -> None:
        """A call failed: count it; the threshold (or any failed trial) opens the breaker."""
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN or (
            self._state is BreakerState.CLOSED and self._failures >= self._threshold
        ):
            was_closed = self._state is BreakerState.CLOSED
            self._state = BreakerState.OPEN
            self._opened_at = self._clock()
            self._trial_started_at = None
            if was_closed:
                self._notify(True)

    def _notify(self, is_open: bool) -> None:
        if self._on_change is not None:
            self._on_change(is_open)
