"""Helpers shared by the cache tests: a recording observer and settings for a test Redis."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from faceflow.cache.observer import CacheLevel
from faceflow.config import CacheSettings

# Fault tests (Redis killed or paused) use the production default timeout. Tests of the cache's
# logic use a generous one: on a loaded 2-core machine a burst of new connections can take longer
# than 50 ms, which would open the breaker and test the fail-open path instead.
FAULT_TIMEOUT_MS = 50
LOGIC_TIMEOUT_MS = 2000
RESET_S = 0.3


class RecordingObserver:
    """Counts every event the cache reports."""

    def __init__(self) -> None:
        self.events: Counter[str] = Counter()
        self.breaker: list[bool] = []
        self.errors: list[str] = []

    def hit(self, level: CacheLevel, /) -> None:
        self.events[f"hit_{level}"] += 1

    def miss(self) -> None:
        self.events["miss"] += 1

    def joined(self) -> None:
        self.events["joined"] += 1

    def breaker_changed(self, is_open: bool, /) -> None:
        self.breaker.append(is_open)

    def redis_error(self, op: str, /) -> None:
        self.errors.append(op)


def cache_settings(redis_url: str | None, **overrides: object) -> CacheSettings:
    values: dict[str, object] = {
        "redis_url": redis_url,
        "redis_timeout_ms": LOGIC_TIMEOUT_MS,
        "breaker_failures": 3,
        "breaker_reset_s": RESET_S,
        "memory_bytes": 1 << 20,
        "ttl_s": 600,
        "ttl_jitter": 0.1,
        "lock_ttl_ms": 5000,
    }
    values.update(overrides)
    return CacheSettings.model_validate(values)


@pytest.fixture
def observer() -> RecordingObserver:
    return RecordingObserver()


@pytest.fixture
async def raw_redis(redis_url: str) -> AsyncIterator[Redis]:
    """A plain client with generous timeouts, for inspecting and tampering with the server."""
    client = Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        yield client
    finally:
        await client.aclose()
