"""Job handles: the random, unguessable names clients get, and who may use them.

The internal job id is derived from the cache key, so anyone holding the same image could compute
it; a client therefore never sees it. It gets a handle (192 random bits) that maps to the job id
and to the API key digest that created it. With API keys on, a handle is visible only to that
key: to anyone else it does not exist (404, never 403, so handles cannot be probed).
"""

from __future__ import annotations

import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace

from faceflow.jobs.records import HandleRecord

_HANDLE = re.compile(r"[A-Za-z0-9_-]{32}")


def new_handle() -> str:
    """A fresh handle: 24 random bytes, URL-safe base64 (32 characters)."""
    return secrets.token_urlsafe(24)


def is_handle(text: str) -> bool:
    """Whether ``text`` has the shape of a handle (cheap check before any lookup)."""
    return _HANDLE.fullmatch(text) is not None


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
