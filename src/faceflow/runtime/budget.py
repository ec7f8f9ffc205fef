"""A byte budget: how much of something (upload bytes, answer bytes) one process may hold at once.

The API process holds request bodies while they are read and answered, and the embedded job
runner holds queued jobs' images; both take from one :class:`ByteBudget` so that, whatever the
traffic, the uploads held stay under ``limits.upload_budget_bytes``. Taking is all or nothing and
never waits: a caller that cannot take answers 503 at once. The answers being sent take from
another (``limits.answer_budget_bytes``) while it is not reached
(:meth:`ByteBudget.try_take_under`). Used from one event loop only.
"""

from __future__ import annotations

__all__ = ["ByteBudget"]


class ByteBudget:
    """``limit_bytes`` to share; :meth:`try_take` before holding bytes, :meth:`give` after."""

    def __init__(self, limit_bytes: int) -> None:
        if limit_bytes < 1:
            raise ValueError("limit_bytes must be positive")
        self.limit_bytes = limit_bytes
        self._used = 0
        self._refused = 0

    @property
    def used_bytes(self) -> int:
        return self._used

    @property
    def refused(self) -> int:
        """Takes refused since start."""
        return self._refused

    def try_take(self, n: int) -> bool:
        """Take ``n`` bytes if they fit; False (and nothing taken) if they do not."""
        if n < 0:
            raise ValueError("n must not be negative")
        if self._used + n > self.limit_bytes:
            self._refused += 1
            return False
        self._used += n
        return True

    def try_take_under(self, n: int) -> bool:
        """Take ``n`` bytes if fewer than the limit are taken now, even if they pass it; False
        (and nothing taken) once the limit is reached. What is taken passes the limit by at most
        one take, and no take is refused for good for being larger than the limit itself."""
        if n < 0:
            raise ValueError("n must not be negative")
        if self._used >= self.limit_bytes:
            self._refused += 1
            return False
        self._used += n
        return True

    @property
    def reached(self) -> bool:
        """Whether the bytes taken are at the limit or past it."""
        return self._used >= self.limit_bytes

    def give(self, n: int) -> None:
        """Return ``n`` bytes taken before."""
        if n < 0 or n > self._used:
            raise ValueError(f"giving back {n} bytes, {self._used} taken")
        self._used -= n
