"""The queue Redis helpers of faceflow.jobs.redis_store, on a real queue Redis."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from redis import Redis
from redis.exceptions import ResponseError

from faceflow.jobs.redis_store import HeldConnection, connect, read_value, server_address
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


def test_a_held_connection_reads_every_reply_before_raising_the_first_error(
    queue_redis: RedisProcess,
) -> None:
    client = connect(queue_redis.url, 5.0, patient=True)
    client.set("text", "not a number")
    held = HeldConnection(client)
    [connection_id] = held.send([("CLIENT", "ID")])
    with pytest.raises(ResponseError, match="not an integer"):
        held.send([("SET", "a", "1"), ("INCR", "text"), ("GET", "a")])
    # The same connection (an error reply, as NOSCRIPT or OOM, costs no reconnection), in step:
    # the next send is answered its own replies, not the GET's left on the socket.
    assert held.send([("GET", "text"), ("INCR", "a"), ("CLIENT", "ID")]) == [
        b"not a number",
        2,
        connection_id,
    ]
    held.release()
    client.close()


def test_a_held_connection_sends_again_once_its_connection_is_dropped(
    queue_redis: RedisProcess,
) -> None:
    client = connect(queue_redis.url, 5.0, patient=True)
    held = HeldConnection(client)
    held.send([("CLIENT", "SETNAME", "held")])
    killed = Redis.from_url(queue_redis.url).client_kill_filter(_type="normal")
    assert killed >= 1
    assert held.send([("SET", "k", "v"), ("GET", "k")]) == [b"OK", b"v"]
    held.release()
    assert client.connection_pool._in_use_connections == set()  # given back
    client.close()


@pytest.mark.parametrize(
    ("one", "other", "meets"),
    [
        ("redis://localhost:6379/0", "redis://127.0.0.1:6379/2", True),
        ("redis://[::1]:6379", "redis://127.0.0.1", True),
        ("redis://", "redis://localhost:6379/3", True),
        ("redis://127.0.0.1:6380", "redis://127.0.0.1:6379", False),
        ("redis://10.0.0.5:6379", "redis://10.0.0.6:6379", False),
        ("redis://10.0.0.5:6379/1", "redis://10.0.0.5:6379/0", True),
        ("unix:///tmp/sockets/../redis.sock?db=1", "unix:///tmp/redis.sock", True),
        ("unix:///tmp/a.sock", "unix:///tmp/b.sock", False),
        ("unix:///tmp/redis.sock", "redis://localhost:6379", False),
    ],
)
def test_where_a_redis_url_leads_is_judged_by_address_not_spelling(
    one: str, other: str, meets: bool
) -> None:
    # The fallback where INFO (run_id) is denied: localhost and 127.0.0.1 were two servers.
    assert server_address(one).meets(server_address(other)) is meets
    assert server_address(other).meets(server_address(one)) is meets
