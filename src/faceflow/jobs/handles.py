"""Job handles: the random, unguessable names clients get, and who may use them.

The internal job id is derived from the cache key, so anyone holding the same image could compute
it; a client therefore never sees it. It gets a handle (192 random bits; 128 when the minting
process's origin takes 64 of them, :class:`HandleSigner`) that maps to the job id
and to the API key digest that created it. With API keys on, a handle is visible only to that
key: to anyone else it does not exist (404, never 403, so handles cannot be probed).

A handle carries its own proof: its random part and an HMAC-SHA256 tag of it (96 bits) under a
key the API nodes share (:class:`HandleSigner`). A forged or mistyped handle is answered 404 from
that alone, before any lookup: every unknown handle polled on the RQ runner cost the API 1 ms of
CPU and a round trip to the queue Redis, whose threads a flood of them held first come, first
served, and another client's job took 114 ms instead of 7 (docs/performance.md, round eleven).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace

from faceflow.errors import NotFound
from faceflow.jobs.records import HandleRecord

RANDOM_BYTES = 24
TAG_BYTES = 12
KEY_BYTES = 32
ORIGIN_BYTES = 8
_HANDLE = re.compile(r"[A-Za-z0-9_-]{48}")  # (24 + 12) bytes of URL-safe base64, no padding
_DOMAIN = b"faceflow job handle v1:"
"""Prefixed to what is signed, so the key signs nothing else by accident."""


def new_key() -> bytes:
    """A fresh key to sign handles with."""
    return secrets.token_bytes(KEY_BYTES)


def unknown_handle(*, in_memory: bool = False) -> NotFound:
    """The one answer for a handle that is forged, unknown, expired or another key's: told
    apart, handles could be probed. ``in_memory``: the embedded runner's, whose jobs go with
    its process. A server started again signs with a new key, so the handles of the jobs it
    lost read as never minted: the answer says that this is one reason (a client polling one
    got the same words as for a mistyped handle, and no word of the restart)."""
    if in_memory:
        return NotFound(
            "no such job (unknown, expired or not yours; this server keeps its jobs in memory, "
            "so a job submitted before it last stopped is gone): submit it again"
        )
    return NotFound("no such job (unknown, expired or not yours)")


def is_handle(text: str) -> bool:
    """Whether ``text`` has the shape of a handle (cheap check before any lookup)."""
    return _HANDLE.fullmatch(text) is not None


class HandleSigner:
    """Mints handles under ``key`` and tells them from any other string, in constant time. Every
    API node that may be asked for a handle must hold the same key.

    ``origin`` (at most :data:`ORIGIN_BYTES`) names the process that mints: it replaces the first
    bytes of the random part, under the tag, so :meth:`origin` tells which process holds a
    handle's job and no client can make a handle name another one (the HTTP workers of one
    embedded server: :mod:`faceflow.jobs.peers`). The random bits left (128) stay unguessable.
    """

    def __init__(self, key: bytes, origin: bytes = b"") -> None:
        if len(key) < 16:
            raise ValueError("a handle key has at least 16 bytes")
        if len(origin) > ORIGIN_BYTES:
            raise ValueError(f"a handle's origin has at most {ORIGIN_BYTES} bytes")
        self.key = key
        self._origin = origin

    def new(self) -> str:
        """A fresh handle: the origin and random bytes (24 in all) and their tag, URL-safe base64
        (48 characters)."""
        nonce = self._origin + secrets.token_bytes(RANDOM_BYTES - len(self._origin))
        return base64.urlsafe_b64encode(nonce + self._tag(nonce)).decode()

    def genuine(self, handle: str) -> bool:
        """Whether ``handle`` is one this key minted (a forgery passes with odds of 2**-96)."""
        return self.origin(handle) is not None

    def origin(self, handle: str) -> bytes | None:
        """The first :data:`ORIGIN_BYTES` of a genuine handle (its minter's origin, when it had
        one), or None for any other string."""
        if not is_handle(handle):
            return None
        raw = base64.urlsafe_b64decode(handle)
        if not hmac.compare_digest(raw[RANDOM_BYTES:], self._tag(raw[:RANDOM_BYTES])):
            return None
        return raw[:ORIGIN_BYTES]

    def _tag(self, nonce: bytes) -> bytes:
        return hmac.digest(self.key, _DOMAIN + nonce, hashlib.sha256)[:TAG_BYTES]


def visible_to(record: HandleRecord, owner: str | None) -> bool:
    """Whether the caller with API key digest ``owner`` (None: auth off) may see ``record``."""
    return secrets.compare_digest(record.owner or "", owner or "")


HANDLES_PER_OWNER = 16
"""Handles one owner (API key, or everyone with keys off) gets for one job; a submission beyond
is answered with the newest of them not canceled. A handle is kept as long as its job: minting
one for every resubmission of a cached image (a hit, thousands a second) grew the embedded
server by ~470 bytes a request, and a queue Redis as much, for the result TTL (a day)."""


class MemoryHandles:
    """Handles of the embedded runner: in memory, each with an expiry time."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._items: OrderedDict[str, tuple[HandleRecord, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, handle: str, record: HandleRecord, ttl_s: float) -> None:
        self._items[handle] = (record, self._clock() + ttl_s)

    def get(self, handle: str) -> HandleRecord | None:
        item = self._items.get(handle)
        if item is None:
            return None
        record, expires_at = item
        if expires_at <= self._clock():
            del self._items[handle]
            return None
        return record

    def forget(self, handle: str) -> None:
        self._items.pop(handle, None)

    def mark_canceled(self, handle: str, at: float) -> HandleRecord | None:
        item = self._items.get(handle)
        if item is None:
            return None
        record = replace(item[0], canceled_at=at)
        self._items[handle] = (record, item[1])
        return record

    def purge(self, keep: Callable[[HandleRecord], bool] = lambda _: True) -> int:
        """Drop expired handles and those ``keep`` rejects; how many were dropped."""
        now = self._clock()
        dead = [h for h, (rec, exp) in self._items.items() if exp <= now or not keep(rec)]
        for handle in dead:
            del self._items[handle]
        return len(dead)
