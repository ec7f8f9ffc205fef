"""The channel between the HTTP workers of one embedded server, so any of them answers for a job
another one holds.

With ``server.http_workers`` > 1 and no ``jobs.redis_url``, each uvicorn worker process has its own
embedded runner, its jobs in its own memory. A client's next connection may reach another worker:
it polled a job it had just submitted and got 404 on about half its polls. So ``faceflow serve``
mints one key for the server's workers (:class:`PeerGroup`, in their environment as
:data:`PEERS_ENV`); each worker signs its handles with it, its own random origin inside the signed
part (:class:`~faceflow.jobs.handles.HandleSigner`), and listens on a Unix socket named by the
group and that origin (:class:`PeerServer`). A worker asked about a handle of another origin asks
that worker (:class:`PeerClient`) and answers what it answered: the same record, the same result
bytes, the same error.

Nobody else may ask. On Linux the socket is in the abstract namespace (no file to leave behind),
which has no permissions: both ends check that the other is the same user (``SO_PEERCRED``), and
every call carries an HMAC-SHA256 of itself under the group's key, so another process of the same
user cannot ask either without the key. Elsewhere the sockets are files in a private (0700)
directory that ``faceflow serve`` makes.

Every call is bounded: :data:`PEER_TIMEOUT_S` in all, :data:`FORWARDED_AT_ONCE` forwarded and
:data:`SERVED_AT_ONCE` served at once by each worker, :data:`CALL_MAX_BYTES` a call and the
answer budget (``limits.answer_budget_bytes``) an answer. An answer's bytes are held in the
asking worker's answer budget while they are read (:data:`HoldAnswer`), taken once its length is
known and before its body is read: read unaccounted, 16 polls of a large result on the asking
worker held 16 copies of it beyond that budget. A worker that is gone (stopped, or
restarted by uvicorn: its jobs were in its memory) answers 404 "lost with its HTTP worker"; one
that does not answer in time, 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import os
import secrets
import socket
import struct
import sys
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import msgpack

from faceflow.cache.entry import CacheEntry, bin_header, unpack_versioned
from faceflow.errors import (
    FaceflowError,
    JsonScalar,
    NotFound,
    RetryableError,
    Unavailable,
    error_from_code,
)
from faceflow.jobs.handles import ORIGIN_BYTES
from faceflow.jobs.records import JobError, JobRecord, JobStatus

log = logging.getLogger(__name__)

PEERS_ENV = "FACEFLOW_JOB_PEERS"
"""Where ``faceflow serve`` hands the group to its HTTP workers: the key (URL-safe base64), then
``@`` and the sockets' directory where there is no abstract namespace. Not a setting: a fresh key
each start, never written anywhere."""

PEER_TIMEOUT_S = 5.0
"""For one forwarded call in all: a slot, the connection, the call and the whole answer."""
FORWARDED_AT_ONCE = 16
"""Calls one worker forwards at once; more wait for a slot (within :data:`PEER_TIMEOUT_S`)."""
SERVED_AT_ONCE = 32
"""Calls one worker answers for the others at once; beyond, a call is closed unanswered once
read. As many connections may wait for their call; beyond, the one waiting longest is closed."""
CALL_MAX_BYTES = 4096
"""A call is an operation, a handle, an API key digest and a MAC: well under this."""
ANSWER_SLACK_BYTES = 64 * 1024
"""An answer's bytes beyond its result's body (the record, the framing)."""

SCHEMA_VERSION = 1
_DOMAIN = b"faceflow job peer v1:"
"""Prefixed to what the key authenticates, so it authenticates nothing else by accident (the
handle signer uses the same key under its own prefix)."""
_MAC_BYTES = 32
_LENGTH = struct.Struct(">I")
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


class PeerOperation(StrEnum):
    STATUS = "status"
    RESULT = "result"
    CANCEL = "cancel"


@dataclass(frozen=True, slots=True)
class PeerGroup:
    """The HTTP workers of one server: the key they share, and where their sockets are."""

    key: bytes
    directory: str | None = None
    """None: the abstract namespace (Linux)."""

    def to_env(self) -> str:
        key = base64.urlsafe_b64encode(self.key).decode()
        return key if self.directory is None else f"{key}@{self.directory}"

    @classmethod
    def from_env(cls, value: str | None) -> PeerGroup | None:
        """The group :meth:`to_env` wrote, or None (no value: a single worker)."""
        if not value:
            return None
        key, _, directory = value.partition("@")
        return cls(base64.urlsafe_b64decode(key), directory or None)

    def address(self, origin: bytes) -> str:
        """The socket of the worker whose handles carry ``origin``."""
        if self.directory is not None:
            return str(Path(self.directory) / f"{origin.hex()}.sock")
        # Names in the abstract namespace are public (/proc/net/unix): a digest of the key, not
        # the key, tells this server's apart from another's.
        group = hashlib.sha256(_DOMAIN + self.key).hexdigest()[:16]
        return f"\0faceflow-jobs-{group}-{origin.hex()}"


def abstract_namespace() -> bool:
    """Whether Unix sockets may be named outside the file system (Linux)."""
    return sys.platform.startswith("linux")


def new_origin() -> bytes:
    """A fresh origin for one worker: random, so a worker uvicorn restarts (perhaps with the pid
    of one gone) never answers for the jobs of the one it replaces."""
    return secrets.token_bytes(ORIGIN_BYTES)


def lost_with_worker() -> NotFound:
    return NotFound(
        "the job was lost with the HTTP worker that held it (the worker stopped or was "
        "restarted; the embedded runner keeps jobs in memory); submit it again"
    )


@dataclass(frozen=True, slots=True)
class PeerCall:
    operation: PeerOperation
    handle: str
    owner: str | None


PeerAnswer = tuple[JobRecord, CacheEntry | None]
"""The owning worker's record, and for a result call the result."""


def encode_call(call: PeerCall, key: bytes) -> bytes:
    body: bytes = msgpack.packb(
        [SCHEMA_VERSION, call.operation.value, call.handle, call.owner], use_bin_type=True
    )
    return body + _mac(key, body)


def decode_call(raw: bytes, key: bytes) -> PeerCall | None:
    """The call ``raw`` holds if its MAC is the key's, else None."""
    body, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
    if len(raw) <= _MAC_BYTES or not hmac.compare_digest(mac, _mac(key, body)):
        return None
    value = unpack_versioned(body, SCHEMA_VERSION, 4)
    if value is None:
        return None
    _, operation, handle, owner = value
    if operation not in PeerOperation.__members__.values() or not isinstance(handle, str):
        return None
    if not isinstance(owner, str | None):
        return None
    return PeerCall(PeerOperation(operation), handle, owner)


def encode_answer(answer: PeerAnswer | FaceflowError) -> bytes:
    """The answer as :func:`decode_answer` reads it: :func:`answer_pieces` joined."""
    return b"".join(answer_pieces(answer))


def answer_pieces(answer: PeerAnswer | FaceflowError) -> list[bytes]:
    """The msgpack form of ``answer`` (``[version, "ok", record, [media type, body, meta]]`` or
    ``[version, "error", code, message, details, retry]``) in pieces that are written one after
    the other, a result's body among them as it is: ``msgpack.packb`` copied it into a buffer
    it grew as it went, on the event loop and holding the GIL (a thread would not have let the
    loop run): 23-49 ms for a 27 MB annotated image, on a 2-core VM."""
    if isinstance(answer, FaceflowError):
        retry = answer.retry_after_s if isinstance(answer, RetryableError) else None
        value = [SCHEMA_VERSION, "error", answer.code, answer.message, answer.details, retry]
        return [msgpack.packb(value, use_bin_type=True)]
    record, entry = answer
    head = (
        _PACKER.pack_array_header(4)
        + msgpack.packb([SCHEMA_VERSION, "ok", _record_parts(record)], use_bin_type=True)[1:]
    )  # the three items without their array's own header (one byte: a fixarray)
    if entry is None:
        return [head + msgpack.packb(None)]
    parts = _PACKER.pack_array_header(3) + msgpack.packb(entry.media_type, use_bin_type=True)
    body = entry.body
    tail: bytes = msgpack.packb(dict(entry.meta), use_bin_type=True)
    return [head + parts + bin_header(len(body)), body, tail]


_PACKER = msgpack.Packer(use_bin_type=True)


def decode_answer(raw: bytes) -> PeerAnswer:
    """The answer ``raw`` holds; raises the error it holds, the same the owning worker raised
    (its code, message, details and Retry-After), or Unavailable if it is not an answer."""
    value = unpack_versioned(raw, SCHEMA_VERSION, 4, 6)
    try:
        if value is not None and value[1] == "ok" and len(value) == 4:
            parts = value[3]
            entry = None if parts is None else CacheEntry(parts[0], parts[1], parts[2])
            return _record(value[2]), entry
        if value is not None and value[1] == "error" and len(value) == 6:
            _, _, code, message, details, retry = value
            error = error_from_code(code, message, details)
            if isinstance(error, RetryableError) and isinstance(retry, int):
                error.retry_after_s = retry
        else:
            error = None
    except (TypeError, ValueError, IndexError, AttributeError):
        error = None
    if error is None:
        raise Unavailable("another HTTP worker's answer was not understood", retry_after_s=1)
    raise error


def _record_parts(record: JobRecord) -> list[Any]:
    error = record.error
    return [
        record.handle,
        record.operation,
        record.status.value,
        record.created_at,
        record.enqueued_at,
        record.started_at,
        record.ended_at,
        record.attempts,
        None if error is None else [error.code, error.message, error.status, dict(error.details)],
        record.media_type,
        record.from_cache,
    ]


def _record(parts: list[Any]) -> JobRecord:
    """The record :func:`_record_parts` wrote (raises TypeError/ValueError on another shape)."""
    handle, operation, status, created, enqueued, started, ended, attempts, error, media, cached = (
        parts
    )
    details: dict[str, JsonScalar] = {} if error is None else error[3]
    return JobRecord(
        handle=handle,
        operation=operation,
        status=JobStatus(status),
        created_at=created,
        enqueued_at=enqueued,
        started_at=started,
        ended_at=ended,
        attempts=attempts,
        error=None if error is None else JobError(error[0], error[1], error[2], details),
        media_type=media,
        from_cache=cached,
    )


def _mac(key: bytes, body: bytes) -> bytes:
    return hmac.digest(key, _DOMAIN + body, hashlib.sha256)


class _TooLarge(Exception):
    pass


async def _read_length(reader: asyncio.StreamReader, limit: int) -> int:
    """A frame's length prefix, refused (_TooLarge) over ``limit`` before its body is read."""
    (size,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    if size > limit:
        raise _TooLarge(size)
    return int(size)


async def _read_frame(reader: asyncio.StreamReader, limit: int) -> bytes:
    return await reader.readexactly(await _read_length(reader, limit))


def _write_frame(writer: asyncio.StreamWriter, body: bytes | list[bytes]) -> None:
    # Written as they are, not concatenated: an answer may be megabytes.
    pieces = [body] if isinstance(body, bytes) else body
    writer.writelines([_LENGTH.pack(sum(len(piece) for piece in pieces)), *pieces])


def same_user(writer: asyncio.StreamWriter) -> bool:
    """Whether the process at the other end runs as this one's user (True where the system
    cannot tell: there the sockets are in a private directory)."""
    option = getattr(socket, "SO_PEERCRED", None)
    sock = writer.get_extra_info("socket")
    if option is None or sock is None:
        return True
    _, uid, _ = _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, option, _PEERCRED.size))
    return bool(uid == os.getuid())


HoldAnswer = Callable[[int], AbstractContextManager[object]]
"""Room for an answer of so many bytes in the asking worker's answer budget, held while the
answer is read and decoded (the answer sent to the client then takes its own, as every answer
does); raises (``503 overloaded``) when there is none, as a local answer is refused."""

Answerer = Callable[[PeerCall], Awaitable[PeerAnswer]]
"""What a worker answers for its own jobs (its embedded runner's status, result or cancel)."""


class PeerServer:
    """One worker's socket, answering the other workers' calls about its jobs with ``answer``."""

    def __init__(self, group: PeerGroup, origin: bytes, answer: Answerer) -> None:
        self._group = group
        self._address = group.address(origin)
        self._answer = answer
        self._serving = 0
        self._waiting: dict[asyncio.StreamWriter, None] = {}
        """The connections whose call is not read yet, the longest waiting first."""
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        # A socket of our own: uvloop's loop takes a path as a C string, which ends at the
        # abstract name's first byte (NUL).
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(self._address)
            sock.listen(SERVED_AT_ONCE)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._server = await asyncio.start_unix_server(self._serve, sock=sock)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if self._group.directory is not None:
            await asyncio.to_thread(Path(self._address).unlink, missing_ok=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not same_user(writer):
            writer.close()
            return
        try:
            async with asyncio.timeout(PEER_TIMEOUT_S):
                call = await self._call_of(reader, writer)
                if call is None:
                    log.warning("jobs: refused a call on the HTTP workers' socket without the key")
                    return
                if self._serving >= SERVED_AT_ONCE:
                    return  # closed unanswered: the caller answers 503
                self._serving += 1
                try:
                    _write_frame(writer, await self._answered(call))
                    await writer.drain()
                finally:
                    self._serving -= 1
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, _TooLarge):
            pass  # the caller gave up, or was no worker of this server: nothing to answer
        finally:
            writer.close()

    async def _call_of(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> PeerCall | None:
        """The call the connection sends, or None without the key. Until it is read, the
        connection counts among those waiting, and the one waiting longest is closed to make
        room: counted among the calls being answered, 32 connections any process of the user
        opened and kept idle (or stalled after a length prefix) had every real call closed at
        once for the 5 s they were held, again and again; a worker's call comes at once."""
        if len(self._waiting) >= SERVED_AT_ONCE:
            oldest = next(iter(self._waiting))
            del self._waiting[oldest]
            oldest.close()  # its read ends (IncompleteReadError)
        self._waiting[writer] = None
        try:
            raw = await _read_frame(reader, CALL_MAX_BYTES)
        finally:
            self._waiting.pop(writer, None)
        return decode_call(raw, self._group.key)

    async def _answered(self, call: PeerCall) -> list[bytes]:
        try:
            return answer_pieces(await self._answer(call))
        except FaceflowError as exc:
            return answer_pieces(exc)
        except Exception:
            log.exception("jobs: answering another HTTP worker's %s call failed", call.operation)
            return answer_pieces(FaceflowError("internal error"))


class PeerClient:
    """Asks the worker of a handle's origin, within the bounds above."""

    def __init__(
        self, group: PeerGroup, max_answer_bytes: int, hold: HoldAnswer | None = None
    ) -> None:
        self._group = group
        self._max_answer_bytes = max_answer_bytes
        self._hold: HoldAnswer = hold or (lambda _: nullcontext())
        self._slots = asyncio.Semaphore(FORWARDED_AT_ONCE)

    async def call(self, origin: bytes, call: PeerCall) -> PeerAnswer:
        """The owning worker's answer; raises its error as it raised it, NotFound if the worker
        is gone (its jobs with it), Unavailable if it does not answer in time."""
        try:
            async with asyncio.timeout(PEER_TIMEOUT_S):
                async with self._slots:
                    return await self._exchange(origin, call)
        except TimeoutError:
            raise Unavailable(
                f"the HTTP worker that holds this job did not answer within {PEER_TIMEOUT_S:g} s",
                retry_after_s=1,
            ) from None

    async def _exchange(self, origin: bytes, call: PeerCall) -> PeerAnswer:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:  # connected here, not by uvloop, for the same reason as the server's socket
            await asyncio.get_running_loop().sock_connect(sock, self._group.address(origin))
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            raise lost_with_worker() from None
        except BaseException:
            sock.close()
            raise
        reader, writer = await asyncio.open_unix_connection(sock=sock)
        try:
            if not same_user(writer):
                # Another user took the name of a worker that is gone.
                log.warning("jobs: the socket of a gone HTTP worker is held by another user")
                raise lost_with_worker()
            _write_frame(writer, encode_call(call, self._group.key))
            await writer.drain()
            size = await _read_length(reader, self._max_answer_bytes)
            with self._hold(size):  # before the body is read; until its copy is decoded
                return decode_answer(await reader.readexactly(size))
        except (asyncio.IncompleteReadError, ConnectionError):
            raise Unavailable(
                "the HTTP worker that holds this job closed the call", retry_after_s=1
            ) from None
        except _TooLarge:
            raise Unavailable(
                "the job's result is larger than one HTTP worker may pass to another "
                "(limits.answer_budget_bytes)",
                retry_after_s=1,
            ) from None
        finally:
            writer.close()
