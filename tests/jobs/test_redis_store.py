"""The queue Redis helpers of faceflow.jobs.redis_store, on a real queue Redis."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from redis import Redis

from faceflow.jobs.redis_store import read_value
from tests.fixtures.redis_server import RedisProcess

pytestmark = pytest.mark.redis


@pytest.fixture
def client(queue_redis: RedisProcess) -> Redis:
    return Redis.from_url(queue_redis.url)


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 8, 11])
def test_read_value_answers_the_whole_value_whatever_its_length(client: Redis, size: int) -> None:
    value = bytes(range(65, 65 + size))
    if size:
        client.set("k", value)
    assert read_value(client, "k", chunk_bytes=4) == (value or None)
    assert read_value(client, "absent", chunk_bytes=4) is None


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(lambda client: client.set("k", b"xxxxyyyyzz"), b"xxxxyyyyzz", id="replaced"),
        pytest.param(lambda client: client.delete("k"), None, id="deleted"),
    ],
)
def test_a_value_changed_between_two_ranges_is_read_again_not_mixed(
    client: Redis,
    monkeypatch: pytest.MonkeyPatch,
    change: Callable[[Redis], object],
    expected: bytes | None,
) -> None:
    # A job's outcome written again (run again after it expired) or deleted as its ranges were
    # read would otherwise be answered as the first part of one and the rest of the other.
    client.set("k", b"aaaabbbbcc")
    getrange = Redis.getrange
    ranges_read = 0

    def changed_after_the_second(self: Redis, *args: Any) -> Any:
        nonlocal ranges_read
        ranges_read += 1
        if ranges_read == 3:
            change(client)
        return getrange(self, *args)

    monkeypatch.setattr(Redis, "getrange", changed_after_the_second)
    assert read_value(client, "k", chunk_bytes=4) == expected
