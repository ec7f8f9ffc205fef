"""The queue Redis keys faceflow owns next to RQ's, and the client both sides use.

RQ stores its job hash with a JSON serializer and no arguments of ours; the work itself lives
under keys we control, in explicit versioned msgpack (see :mod:`faceflow.jobs.records`):

* ``ff:{queue}:jobdata:{job_id}``: the payload (operation, options, image bytes), written before
  the enqueue, read by the worker, deleted when the job finishes; its TTL is ``result_ttl_s`` so a
  failed job can still be requeued from the dead-letter registry for a day.
* ``ff:{queue}:jobresult:{job_id}``: the outcome (result entry, or an error no retry fixes),
  kept ``result_ttl_s``.
* ``ff:{queue}:handle:{handle}``: the handle record (job id, owner digest), kept as long as a
  result or a failure can be until its job ends, then (the worker's end sees to it) as long as
  the job's result; a handle of work already ended, as long as its outcome.
* ``ff:{queue}:handlekey``: the key handles are signed with (:mod:`faceflow.jobs.handles`),
  minted by the first API node to start and read by every other, so any node tells a forged
  handle without asking this Redis again.
* ``ff:{queue}:jobrefs:{job_id}``: the handles still interested in a queued job, so cancelling one
  of several identical submissions does not cancel the others'.
* ``ff:{queue}:pending:{owner}``: with ``jobs.max_queued_per_client``, the jobs an API key's
  submissions enqueued that may still be queued or running (pruned when it is full).
* ``ff:{queue}:unsized:{owner}``, ``ff:{queue}:results:{owner}`` and
  ``ff:{queue}:resultbytes:{owner}``: with ``jobs.max_result_bytes_per_client``, the jobs an
  API key's submissions enqueued (or answered from the cache) whose outcome is not measured
  yet, the measured ones by when their outcome expires, and their sizes with the key's total.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError, WatchError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from faceflow.cache.persistence import PARAMETERS, persistence

PREFIX = "ff"

JOB_FUNCTION = "faceflow.jobs.worker.run_job"
"""The RQ job function, by name: the API enqueues it without importing the worker module."""


@dataclass(frozen=True, slots=True)
class JobKeys:
    queue_name: str

    @property
    def _base(self) -> str:
        return f"{PREFIX}:{self.queue_name}"

    def data(self, job_id: str) -> str:
        return f"{self._base}:jobdata:{job_id}"

    def result(self, job_id: str) -> str:
        return f"{self._base}:jobresult:{job_id}"

    def taken_payload(self, worker_name: str) -> str:
        """Where a job's start leaves a copy of its payload for its worker to read (and delete)
        in the same round trip: read by the script itself, the payload went through Lua, which
        hashes every byte of a string it is handed (see FaceflowWorker._start_and_read)."""
        return f"{self._base}:takenpayload:{worker_name}"

    def handle(self, handle: str) -> str:
        return f"{self._base}:handle:{handle}"

    def refs(self, job_id: str) -> str:
        return f"{self._base}:jobrefs:{job_id}"

    @property
    def handle_key(self) -> str:
        """The key every API node signs this queue's handles with (minted once, no TTL)."""
        return f"{self._base}:handlekey"

    @property
    def last_pass(self) -> str:
        """When a maintenance pass last reached the queue Redis (its clock, whole seconds)."""
        return f"{self._base}:maintenance:last"

    @property
    def last_tick(self) -> str:
        """When a supervisor last fed the hang check (its clock, microseconds)."""
        return f"{self._base}:maintenance:tick"

    @property
    def lease_grace(self) -> str:
        """Present while leases are not judged after the queue Redis went unanswered."""
        return f"{self._base}:maintenance:grace"

    def pending(self, owner: str) -> str:
        """The jobs an owner's submissions enqueued that may still be queued or running (a
        sorted set by submission time; see ``jobs.max_queued_per_client``)."""
        return f"{self._base}:pending:{owner}"

    def unsized(self, owner: str) -> str:
        """An owner's jobs whose outcome is not measured yet (a sorted set by submission time;
        see ``jobs.max_result_bytes_per_client``)."""
        return f"{self._base}:unsized:{owner}"

    def results(self, owner: str) -> str:
        """An owner's measured outcomes (a sorted set of job ids by when each expires, ms)."""
        return f"{self._base}:results:{owner}"

    def result_bytes(self, owner: str) -> str:
        """The sizes of an owner's measured outcomes (a hash: job id → bytes; ``total``)."""
        return f"{self._base}:resultbytes:{owner}"

    def owned(self, job_id: str, owner: str | None) -> str:
        """One owner's handles of a job, oldest first (a list; see HANDLES_PER_OWNER)."""
        return f"{self._base}:jobowned:{job_id}:{owner or '-'}"


def connect(url: str, timeout_s: float | None, *, patient: bool = False) -> Redis:
    """A sync client (bytes replies, as RQ needs) with bounded socket waits.

    The API's client never retries: a request must fail fast with 503. A worker's client is
    ``patient``: it retries a lost connection for a few seconds with backoff, so a queue Redis
    restart (a few hundred ms from its AOF) does not fail the job that was running.
    """
    retry = Retry(ExponentialBackoff(cap=2.0, base=0.1), 6) if patient else Retry(NoBackoff(), 0)
    client: Redis = Redis.from_url(
        url,
        socket_connect_timeout=timeout_s,
        socket_timeout=timeout_s,
        retry=retry,
        retry_on_error=[RedisConnectionError, RedisTimeoutError] if patient else [],
        health_check_interval=0,
    )
    return client


class HeldConnection:
    """One of ``client``'s pooled connections, held by one thread for a round trip it makes
    often, each a few commands sent in one write (as a pipeline without a transaction sends them).

    A worker makes one such round trip a job (:class:`~faceflow.jobs.worker.FaceflowWorker`).
    Through redis-py's ``Pipeline`` it cost about twice the client CPU (about 100 µs against 55,
    measured in docs/performance.md, Jobs): the pipeline object and its command stack, the
    connection taken from the pool and given back (a read that must find nothing, two
    ``ioctl``s, the pool's counters) and its per-command bookkeeping, every job. What a
    pipeline guarantees is kept: every reply is read before the first error among them is
    raised (the connection stays in step), a connection error disconnects and sends again as
    the client's ``Retry`` allows, and anything else raised mid-read closes the connection.

    Not shared between threads; :meth:`release` gives the connection back to the pool."""

    def __init__(self, client: Redis) -> None:
        self._pool = client.connection_pool
        self._connection: Connection | None = None

    def send(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """The replies to ``commands``, sent in one write, as Redis sends them (redis-py's pipeline
        without its response callbacks, which the scripts' and reads' replies do not have)."""
        connection = self._connection
        if connection is None:
            connection = self._connection = self._pool.get_connection()
        replies: list[Any] = connection.retry.call_with_retry(
            lambda: _exchange(connection, commands),
            lambda _error: connection.disconnect(),  # type: ignore[no-untyped-call]
        )
        return replies

    def disconnect(self) -> None:
        """Close the held connection's socket (the next :meth:`send` opens it again)."""
        if self._connection is not None:
            self._connection.disconnect()  # type: ignore[no-untyped-call]

    def release(self) -> None:
        """Give the connection back to the pool."""
        connection, self._connection = self._connection, None
        if connection is not None:
            self._pool.release(connection)


def _exchange(connection: Connection, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
    packed = connection.pack_commands(commands)  # type: ignore[no-untyped-call]
    connection.send_packed_command(packed)  # type: ignore[no-untyped-call]
    replies: list[Any] = []
    try:
        for _ in commands:
            try:
                replies.append(connection.read_response())
            except ResponseError as error:  # the rest are read all the same
                replies.append(error)
    except BaseException:
        # Replies left on the socket would answer the next send.
        connection.disconnect()  # type: ignore[no-untyped-call]
        raise
    for reply in replies:
        if isinstance(reply, ResponseError):
            raise reply
    return replies


READ_CHUNK_BYTES = 512 * 1024
"""The most of one value :func:`read_value` asks the queue Redis for in one reply."""

_READ_ATTEMPTS = 3


def read_value(client: Redis, key: str, chunk_bytes: int = READ_CHUNK_BYTES) -> bytes | None:
    """The string under ``key`` (None if there is none), never more than ``chunk_bytes`` of it
    in one reply: ``GETRANGE`` by ``GETRANGE`` when it is longer, one round trip when not.

    Managed Redis services may set ``client-output-buffer-limit normal`` (e.g. ``1mb 1mb 0``):
    a reply over it makes Redis close the connection as it answers, and the client sees a
    Redis gone away. A result over it was then 503 ``unavailable`` at every fetch, each counted
    as an outage (three opened the breaker: every client's job calls 503 for 2 s).

    A long value is read again from its start under ``WATCH``, so one replaced or gone between
    two ranges is not read as a mix of two (read again, at most :data:`_READ_ATTEMPTS` times).
    """
    head = client.getrange(key, 0, chunk_bytes - 1)
    if not isinstance(head, bytes) or not head:
        return None  # GETRANGE answers b"" for a key there is not
    if len(head) < chunk_bytes:
        return head
    for _ in range(_READ_ATTEMPTS):
        with client.pipeline() as pipe:
            try:
                pipe.watch(key)  # type: ignore[no-untyped-call]
                parts: list[bytes] = []
                while not parts or len(parts[-1]) == chunk_bytes:
                    start = len(parts) * chunk_bytes
                    part = pipe.getrange(key, start, start + chunk_bytes - 1)
                    parts.append(part if isinstance(part, bytes) else b"")
                pipe.multi()
                pipe.exists(key)
                if not pipe.execute()[0]:
                    return None
            except WatchError:
                continue
        return b"".join(parts)
    return None


def bulk_limit(client: Redis) -> int | None:
    """The largest value the queue Redis takes in one command (``proto-max-bulk-len``), or
    None where it cannot be read (managed services often deny ``CONFIG``; then nothing is
    checked, as before).

    A value over it is not refused with an error: Redis closes the connection mid-command, and
    the client sees a broken pipe, as it would a Redis gone away. An upload over it answered 503
    ``unavailable`` and counted as an outage (three in a row refused every client's job calls
    for 2 s); a result over it made the worker's end fail, the job run again on every retry.
    """
    try:
        reply = client.config_get("proto-max-bulk-len")
    except RedisError:
        return None
    value = reply.get("proto-max-bulk-len") if isinstance(reply, dict) else None
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def eviction_warning(client: Redis) -> str | None:
    """What to tell the operator when the queue Redis may evict keys, else None.

    Any policy but ``noeviction`` deletes keys at ``maxmemory``: queued jobs, their images and
    their handles, so a job answered 202 later answers 404 (measured: 19 of 30 jobs gone under
    ``allkeys-lru`` at 6 MB). The volatile policies are no safer, since every image and handle
    has a TTL. Read from ``INFO``, which managed Redis services allow where ``CONFIG`` is not.
    """
    policy = client.info("memory").get("maxmemory_policy")
    if not isinstance(policy, str) or policy == "noeviction":
        return None
    return (
        f"the queue Redis has maxmemory-policy {policy}: at its maxmemory it deletes queued "
        "jobs and their results, and their handles then answer 404 (lost); set "
        "maxmemory-policy noeviction (it then refuses new jobs 503 queue_full instead)"
    )


def disk_warning(client: Redis) -> str | None:
    """What to tell the operator when the queue Redis writes what it holds to its disk, else
    None (also when it does not say: managed services often deny ``CONFIG``).

    It is told to (``appendonly yes``: jobs survive its restart), so every job's uploaded image
    and its result (ID photos, annotated images, ages and genders) reach its append-only file,
    on that Redis's machine, and stay in it after the job is deleted until Redis rewrites the
    file. The README promises images are never written to disk: that holds for faceflow's own
    processes, not for this Redis, and nothing said so. Not asked with
    ``jobs.payload_key_file`` set: what reaches the disk is then sealed.
    """
    try:
        config: dict[Any, object] = {}
        for name in PARAMETERS:
            config.update(client.config_get(name))
    except RedisError:
        return None
    how = persistence(config)
    if how is None:
        return None
    return (
        f"the queue Redis writes what it holds to its disk ({how}): every job's uploaded image "
        "and its result (ID photos, annotated images, ages and genders) are in its files on "
        "that machine, in clear, kept after the job ends until Redis rewrites them; set "
        "jobs.payload_key_file to store them encrypted (docs/scale-out.md, what reaches Redis)"
    )


def shared_with_cache_warning(
    cache_url: str | None, queue: Redis | None, queue_url: str, timeout_s: float
) -> str | None:
    """What to tell the operator when the cache and the queue are one Redis server (any
    database of it: they share its ``maxmemory`` and its policy), else None.

    Each needs what the other cannot have: the cache ``allkeys-lru`` (full, it evicts old
    results), the queue ``noeviction`` (an evicted entry is a lost job). Shared, either the
    cache's day of results fills the memory the queue needs, and every submission is then 503
    ``queue_full``, or queued jobs are evicted along with old results.

    Judged by the server's ``run_id`` through both URLs (``queue``: the queue's client, None
    when it did not answer), which names one server process however it is reached; where
    either denies ``INFO`` or does not answer, by where the URLs lead (:func:`server_address`).
    Compared as written, ``localhost`` and ``127.0.0.1`` were two servers and nothing was said.
    Blocking (a connection to the cache Redis): call it in a thread."""
    if cache_url is None:
        return None
    shared: bool | None = None
    if queue is not None:
        cache = connect(cache_url, timeout_s)
        try:
            shared = _same_run(cache, queue)
        finally:
            cache.close()
    if shared is None:
        shared = server_address(cache_url).meets(server_address(queue_url))
    if not shared:
        return None
    return (
        "the cache (cache.redis_url) and the queue (jobs.redis_url) are one Redis server: the "
        "cache's results fill the memory the queue needs (under noeviction every submission "
        "is then 503 queue_full), or its eviction deletes queued jobs; run them apart"
    )


def _same_run(one: Redis, other: Redis) -> bool | None:
    """Whether ``one`` and ``other`` reach one server process, by its ``run_id``; None when
    either does not say (``INFO`` denied, as managed services may, or no answer)."""
    try:
        ids = [client.info("server").get("run_id") for client in (one, other)]
    except RedisError:
        return None
    if not all(isinstance(run_id, str) and run_id for run_id in ids):
        return None
    return ids[0] == ids[1]


@dataclass(frozen=True)
class ServerAddress:
    """Where a Redis URL leads: a socket file, or the addresses a host name resolves to and a
    port (any loopback address as one, since a server on one is most often on all)."""

    socket: str | None
    hosts: frozenset[str]
    port: int

    def meets(self, other: ServerAddress) -> bool:
        """Whether the two may be one server: the same socket file, or a port and an address
        in common."""
        if self.socket is not None or other.socket is not None:
            return self.socket == other.socket
        return self.port == other.port and bool(self.hosts & other.hosts)


_LOOPBACK = "loopback"


def server_address(url: str) -> ServerAddress:
    """Where ``url`` leads, with its host name resolved (unresolvable: the name as written).
    Blocking (a name lookup): call it in a thread."""
    from redis.connection import parse_url

    parts = parse_url(url)  # type: ignore[no-untyped-call]
    if parts.get("path") is not None:
        return ServerAddress(os.path.realpath(parts["path"]), frozenset(), 0)
    host: str = parts.get("host", "localhost")
    port: int = parts.get("port", 6379)
    try:
        found = {
            str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        }
    except (OSError, UnicodeError):
        found = {host.lower()}
    return ServerAddress(None, frozenset(_loopback_as_one(a) for a in found), port)


def _loopback_as_one(address: str) -> str:
    try:
        is_loopback = ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return address
    return _LOOPBACK if is_loopback else address
