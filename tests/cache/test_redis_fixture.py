"""The real-Redis fixture other test packages rely on: kill, pause, restart, AOF."""

from __future__ import annotations

import pytest

from tests.fixtures.redis_server import RedisProcess, RedisServerFactory, pid_alive, send_command

pytestmark = pytest.mark.redis


def _set(server: RedisProcess, key: str, value: str) -> None:
    assert send_command(server.port, 2.0, f"SET {key} {value}".encode()) == b"+OK"


def _get(server: RedisProcess, key: str) -> bytes | None:
    return send_command(server.port, 2.0, f"GET {key}".encode())


def test_redis_url_points_at_a_flushed_server(redis_process: RedisProcess, redis_url: str) -> None:
    assert redis_url == f"redis://127.0.0.1:{redis_process.port}/0"
    assert redis_process.ping()
    assert send_command(redis_process.port, 2.0, b"DBSIZE") == b":0"
    _set(redis_process, "left", "behind")  # the next test must not see it


def test_each_test_starts_flushed(redis_process: RedisProcess) -> None:
    assert send_command(redis_process.port, 2.0, b"DBSIZE") == b":0"


def test_pause_and_resume(redis_process: RedisProcess) -> None:
    redis_process.pause()
    assert redis_process.paused
    assert not redis_process.ping(timeout_s=0.2)
    redis_process.resume()
    assert redis_process.ping()


def test_kill_then_restart_on_the_same_port(redis_process: RedisProcess) -> None:
    port, pid = redis_process.port, redis_process.pid
    assert pid is not None
    redis_process.kill()
    assert not redis_process.running
    assert not pid_alive(pid)
    assert not redis_process.ping(timeout_s=0.2)
    redis_process.restart()
    assert redis_process.port == port
    assert redis_process.ping()


def test_a_paused_server_is_healed_for_the_next_test_part1(redis_process: RedisProcess) -> None:
    redis_process.pause()


def test_a_paused_server_is_healed_for_the_next_test_part2(redis_process: RedisProcess) -> None:
    assert redis_process.ping()


def test_without_aof_a_restart_loses_data(redis_server_factory: RedisServerFactory) -> None:
    server = redis_server_factory()
    _set(server, "k", "v")
    server.restart()
    assert _get(server, "k") == b"$-1"
    server.stop()
    assert not server.running


def test_with_aof_data_survives_kill_and_restart(redis_server_factory: RedisServerFactory) -> None:
    server = redis_server_factory(appendonly=True)
    _set(server, "k", "v")
    server.kill()  # SIGKILL: only the fsynced AOF can bring "k" back
    server.restart()
    assert _get(server, "k") == b"$1\r\nv"
    assert send_command(server.port, 2.0, b"EXISTS k") == b":1"
    server.stop()
