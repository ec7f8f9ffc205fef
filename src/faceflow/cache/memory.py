"""The in-process cache: a ring buffer of ``max_bytes`` reserved up front, with a TTL per entry."""

from __future__ import annotations

import mmap
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import msgpack

from faceflow.cache.entry import CacheEntry

_PAGE_BYTES = mmap.PAGESIZE


@dataclass(frozen=True, slots=True)
class MemoryStats:
    items: int
    bytes: int
    """Buffer bytes the live entries occupy (at most ``max_bytes``)."""
    max_bytes: int
    evictions: int
    expirations: int
    reinsertions: int
    """Entries read since they were written that reached the eviction end and were kept."""


class _Record:
    """Where one entry sits in the ring (``live`` until it is replaced, deleted or dropped)."""

    __slots__ = ("expires_at", "header_bytes", "key", "live", "offset", "referenced", "size")

    def __init__(
        self, key: str, offset: int, size: int, header_bytes: int, expires_at: float
    ) -> None:
        self.key = key
        self.offset = offset
        self.size = size
        self.header_bytes = header_bytes
        self.expires_at = expires_at
        self.referenced = False
        self.live = True


def _header(entry: CacheEntry) -> bytes:
    header: bytes = msgpack.packb([entry.media_type, dict(entry.meta)], use_bin_type=True)
    return header


def record_size(entry: CacheEntry) -> int:
    """Bytes ``entry`` takes in the buffer: its body plus its media type and meta (msgpack).

    The key is not in the buffer: it lives in the index, ≈ 340 bytes of Python objects per entry
    with the key's string, outside the budget (a few % of an annotated image's, a third of a
    1 KB JSON answer's).
    """
    return len(_header(entry)) + len(entry.body)


class MemoryRing:
    """A cache of :class:`CacheEntry` in one buffer of ``max_bytes``, reserved at construction.

    **Why a ring, not an LRU of Python objects.** The budget is taken from the system once: the
    buffer is an anonymous mapping whose every page is written here, so the process's RSS when it
    reports ready already includes the whole cache, and filling it moves nothing (memcached's
    ``-L`` does the same). An LRU of ``bytes`` objects grew the process by ≈ 1.1-1.4× its budget
    as it filled (per-object overhead, and the gaps evicted bodies left in malloc's heap,
    bench/rss.py in docs/performance.md). Bodies are copied in on :meth:`put` and out on :meth:`get`
    (answers are KB; a copy is cheaper than the request around it).

    **Policy: FIFO with reinsertion (second chance, the policy CLOCK implements).** Entries are
    appended at the head in write order; space is made by dropping the record at the tail, the
    oldest. A record read since it was written (or last reinserted) is not dropped when it
    reaches the tail: it is moved to the head, its mark cleared, so an answer being asked for
    again stays while one-off answers leave in order. Its hit rate is close to LRU's on cache
    traces (Yang et al., "FIFO queues are all you need for cache eviction", SOSP 2023), and a hit
    only sets a flag: no list is reordered on the hot path. Each entry is one contiguous record;
    one that does not fit before the buffer's end goes to its start, and the end stays unused
    until the tail passes it.

    Every operation holds one lock, so it is safe from any thread; each is O(1) amortised (a
    :meth:`put` drops or reinserts records at the tail until its record fits; a reinsertion
    uses up one read's mark). An entry larger than ``max_entry_bytes`` (default: the buffer) is
    not stored. Expired, replaced
    and deleted entries keep their space until the tail reaches them (an expired one is then
    counted as an expiration, not an eviction); a read of an expired entry drops it at once.
    ``max_bytes == 0`` disables the cache (no buffer). ``clock`` is a monotonic clock in seconds.
    """

    def __init__(
        self,
        max_bytes: int,
        *,
        max_entry_bytes: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        self._capacity = max_bytes
        self._max_entry = max_bytes if max_entry_bytes is None else min(max_bytes, max_entry_bytes)
        self._clock = clock
        self._buffer = _resident_buffer(max_bytes) if max_bytes else None
        self._view = memoryview(self._buffer) if self._buffer is not None else memoryview(b"")
        self._index: dict[str, _Record] = {}
        self._ring: deque[_Record] = deque()  # write order: [0] is the tail, the next to drop
        self._head = 0  # where the next record goes; always < capacity
        self._live_bytes = 0
        self._evictions = 0
        self._expirations = 0
        self._reinsertions = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> CacheEntry | None:
        """A copy of the live entry for ``key`` (now marked as read), or ``None``."""
        with self._lock:
            record = self._index.get(key)
            if record is None:
                return None
            if record.expires_at <= self._clock():
                self._forget(record)
                self._expirations += 1
                return None
            record.referenced = True
            start = record.offset
            split = start + record.header_bytes
            media_type, meta = msgpack.unpackb(self._view[start:split], raw=False)
            body = self._view[split : start + record.size].tobytes()
        return CacheEntry.from_checked(media_type, body, meta)

    def put(self, key: str, entry: CacheEntry, ttl_s: float) -> bool:
        """Store ``entry`` for ``ttl_s`` seconds, dropping the oldest records as needed.

        Returns whether it was stored: ``False`` if it alone exceeds ``max_entry_bytes`` (or the
        buffer) or ``ttl_s <= 0`` (then any older value under ``key`` is dropped too, so a reader
        never sees a stale one): one large answer would evict everyone else's, read or not.
        """
        header = _header(entry)
        size = len(header) + len(entry.body)
        with self._lock:
            old = self._index.get(key)
            if old is not None:
                self._forget(old)
            if size > self._max_entry or ttl_s <= 0:
                return False
            offset = self._place(size)
            while offset is None:
                self._drop_tail()
                offset = self._place(size)
            split = offset + len(header)
            self._view[offset:split] = header
            self._view[split : offset + size] = entry.body
            record = _Record(key, offset, size, len(header), self._clock() + ttl_s)
            self._append(record)
            self._index[key] = record
            self._live_bytes += size
            return True

    def delete(self, key: str) -> bool:
        """Drop ``key``; whether it was present."""
        with self._lock:
            record = self._index.get(key)
            if record is None:
                return False
            self._forget(record)
            return True

    def clear(self) -> None:
        with self._lock:
            self._index.clear()
            self._ring.clear()
            self._head = self._live_bytes = 0

    def stats(self) -> MemoryStats:
        with self._lock:
            return MemoryStats(
                items=len(self._index),
                bytes=self._live_bytes,
                max_bytes=self._capacity,
                evictions=self._evictions,
                expirations=self._expirations,
                reinsertions=self._reinsertions,
            )

    def __len__(self) -> int:
        with self._lock:
            return len(self._index)

    def _forget(self, record: _Record) -> None:
        """Take a live record out of the index; its bytes stay in the ring until the tail."""
        del self._index[record.key]
        record.live = False
        self._live_bytes -= record.size

    def _place(self, size: int) -> int | None:
        """The offset of ``size`` free contiguous bytes at the head, or None while there are none.

        The ring holds [tail, head) when ``head > tail``, else [tail, capacity) + [0, head)
        (full when they meet; what lies past the last record before the end is unused).
        """
        if not self._ring:
            self._head = 0
            return 0
        tail, head = self._ring[0].offset, self._head
        if head > tail:
            if self._capacity - head >= size:
                return head
            return 0 if tail >= size else None
        return head if tail - head >= size else None

    def _append(self, record: _Record) -> None:
        self._ring.append(record)
        self._head = (record.offset + record.size) % self._capacity

    def _drop_tail(self) -> None:
        record = self._ring.popleft()
        if not record.live:
            return  # replaced, deleted, or read after it expired
        if record.expires_at <= self._clock():
            self._forget(record)
            self._expirations += 1
        elif record.referenced:
            self._reinsert(record)
        else:
            self._forget(record)
            self._evictions += 1

    def _reinsert(self, record: _Record) -> None:
        # The record's own bytes were just freed at the tail, and they border the free space
        # at the head (or the buffer's start), so it always fits without dropping another.
        data = self._view[record.offset : record.offset + record.size].tobytes()
        offset = self._place(record.size)
        if offset is None:  # not reachable (see above); drop rather than loop
            self._forget(record)
            self._evictions += 1
            return
        self._view[offset : offset + record.size] = data
        record.offset = offset
        record.referenced = False
        self._append(record)
        self._reinsertions += 1


def _resident_buffer(size: int) -> mmap.mmap:
    """A private anonymous mapping of ``size`` bytes with every page written once, so it is
    resident (and in the process's RSS) from now on, not as the cache fills."""
    buffer = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    for offset in range(0, size, _PAGE_BYTES):
        buffer[offset] = 0
    return buffer
