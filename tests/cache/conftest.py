"""Helpers shared by the cache tests: a recording observer and settings for a test Redis."""

from __future__ import annotations

import shutil
import ssl
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from faceflow.cache.observer import CacheLevel
from faceflow.config import CacheSettings
from tests.fixtures.redis_server import RedisProcess

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


@pytest.fixture
def tls_url(tls_redis_server: RedisProcess, tmp_path: Path) -> str:
    """The TLS server's URL, trusting a copy of its certificate made for this test: redis-py 8
    shares an SSL context between clients of the same settings and files, and a context built by
    an earlier test would leave this one nothing to build."""
    ca_certs = tmp_path / "ca.pem"
    shutil.copyfile(tls_redis_server.tls_cert, ca_certs)
    return tls_redis_server.tls_url(ca_certs)


@pytest.fixture
def ssl_builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The threads (idents) that built an SSL context or loaded CA certificates into one, the
    CPU-costly steps of a first TLS connection, recorded in the order they ran."""
    threads: list[int] = []

    def recorded(step: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            threads.append(threading.get_ident())
            return step(*args, **kwargs)

        return run

    monkeypatch.setattr(ssl, "create_default_context", recorded(ssl.create_default_context))
    monkeypatch.setattr(
        ssl.SSLContext, "load_verify_locations", recorded(ssl.SSLContext.load_verify_locations)
    )
    return threads
