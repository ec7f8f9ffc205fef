"""How the cache reports what it does, without depending on any metrics library.

The service passes an object with these methods (e.g. one that bumps Prometheus counters) to
:meth:`faceflow.cache.tiered.ResultCache.from_settings`. Methods are called on the event loop, must
be cheap and must not raise.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol


class CacheLevel(StrEnum):
    """Where a lookup found its value."""

    MEMORY = "memory"
    REDIS = "redis"
    MISS = "miss"


class CacheObserver(Protocol):
    """Receives one event per cache outcome, Redis error and breaker change."""

    def hit(self, level: CacheLevel, /) -> None:
        """A lookup found its value in ``level`` (memory or redis)."""

    def miss(self) -> None:
        """A lookup found nothing; for ``get_or_compute``, the value was computed here."""

    def joined(self) -> None:
        """``get_or_compute`` got a value computed by another caller or another node."""

    def breaker_changed(self, is_open: bool, /) -> None:
        """The Redis circuit breaker opened (``True``) or closed again (``False``)."""

    def redis_error(self, op: str, /) -> None:
        """A Redis call (``op``: get, set, lock, unlock, ping) failed or timed out."""


class NullObserver:
    """The default observer: ignores every event."""

    def hit(self, level: CacheLevel, /) -> None:
        pass

    def miss(self) -> None:
        pass

    def joined(self) -> None:
        pass

    def breaker_changed(self, is_open: bool, /) -> None:
        pass

    def redis_error(self, op: str, /) -> None:
        pass
