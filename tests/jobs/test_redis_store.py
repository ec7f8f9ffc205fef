"""The queue Redis helpers of faceflow.jobs.redis_store, on a real queue Redis."""

from __future__ import annotations

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


def test_a_value_replaced_between_two_ranges_is_read_again_not_mixed(
    client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A job's outcome written again (run again after it expired) as its ranges were read would
    # otherwise be answered as the first part of one and the rest of the other.
    client.set("k", b"aaaabbbbcc")
    getrange = Redis.getrange
    ranges_read = 0

    def replaced_after_the_second(self: Redis, *args: Any) -> Any:
        nonlocal ranges_read
        ranges_read += 1
        if ranges_read == 3:
            client.set("k", b"xxxxyyyyzz")
        return getrange(self, *args)

    monkeypatch.setattr(Redis, "getrange", replaced_after_the_second)
    assert read_value(client, "k", chunk_bytes=4) == b"xxxxyyyyzz"


def test_a_value_deleted_between_two_ranges_is_none(
    client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    client.set("k", b"aaaabbbbcc")
    getrange = Redis.getrange
    ranges_read = 0

    def deleted_after_the_second(self: Redis, *args: Any) -> Any:
        nonlocal ranges_read
        ranges_read += 1
        if ranges_read == 3:
            client.delete("k")
        return getrange(self, *args)

    monkeypatch.setattr(Redis, "getrange", deleted_after_the_second)
    assert read_value(client, "k", chunk_bytes=4) is None
