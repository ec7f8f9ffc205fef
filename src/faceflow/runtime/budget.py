"""A byte budget: how much of something (upload bytes, answer bytes) one process may hold at once.

The API process holds request bodies while they are read and answered, and the embedded job
runner holds queued jobs' images; both take from one :class:`ByteBudget` so that, whatever the
traffic, the uploads held stay under ``limits.upload_budget_bytes``. Taking is all or nothing and
never waits: a caller that cannot take answers 503 at once. The answers being sent take from
another (``limits.answer_budget_bytes``) while it is not reached
(:meth:`ByteBudget.try_take_under`), shared between clients by :class:`ClientBudget`. Used from
one event loop only.
"""

from __future__ import annotations

import collections

from faceflow.runtime.pool import OwnersAbout

__all__ = ["ByteBudget", "ClientBudget"]


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


class ClientBudget(ByteBudget):
    """A :class:`ByteBudget` taken while under its limit (:meth:`try_take_under`) that, with
    ``keep_for_others``, knows which client (a :data:`~faceflow.runtime.pool.PLACE_OWNER`) holds
    what it took through :meth:`try_take_for`: while another client is about (asked for some of
    it within :data:`~faceflow.runtime.pool.OTHERS_ABOUT_S`, a refusal included), a client that
    holds some already takes more only if it then holds no more than half the limit, so that one
    client's many takes cannot leave every other client refused. A client holding none takes
    while the limit is not reached, as always (one take larger than half still goes); a client
    alone takes as much as the limit lets it; nobody's takes (owner None) are neither counted
    nor refused for an owner."""

    def __init__(self, limit_bytes: int, *, keep_for_others: bool = False) -> None:
        super().__init__(limit_bytes)
        self.keep_for_others = keep_for_others
        self._held: collections.Counter[str] = collections.Counter()
        """Per client: the bytes it holds, for clients holding some."""
        self._about = OwnersAbout()

    @property
    def share_bytes(self) -> int:
        """What one client may hold while another is about (half the limit)."""
        return self.limit_bytes // 2

    def held_by(self, owner: str) -> int:
        """The bytes ``owner`` holds now."""
        return self._held.get(owner, 0)

    def _kept_from(self, owner: str | None, n: int) -> bool:
        """Whether ``n`` more bytes for ``owner`` would pass its share while another client is
        about (noting that ``owner`` asks now)."""
        if owner is None or not self.keep_for_others:
            return False
        others_about = self._about.others_about(owner)  # seen before any refusal
        held = self.held_by(owner)
        return others_about and held > 0 and held + n > self.share_bytes

    def try_take_for(self, owner: str | None, n: int) -> bool:
        """:meth:`try_take_under` for ``owner``, which gives them back with :meth:`give_for`;
        also refused (False, counted in :attr:`refused`) when they would take a client past its
        share while another is about (class doc)."""
        if self._kept_from(owner, n):
            self._refused += 1
            return False
        if not self.try_take_under(n):
            return False
        if owner is not None and self.keep_for_others:
            self._held[owner] += n
        return True

    def room_for(self, owner: str | None) -> bool:
        """Whether a take of more than nothing could be let through for ``owner`` now (noting
        that it asks): the limit is not reached, and ``owner`` is not at its share while another
        client is about."""
        return not self._kept_from(owner, 1) and not self.reached

    def give_for(self, owner: str | None, n: int) -> None:
        """Return ``n`` bytes :meth:`try_take_for` took for ``owner``."""
        self.give(n)
        if owner is not None and owner in self._held:
            left = self._held[owner] - n
            if left > 0:
                self._held[owner] = left
            else:
                del self._held[owner]  # the counter holds only clients holding some
