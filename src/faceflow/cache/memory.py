"""The in-process cache: an LRU bounded in bytes, with a TTL per entry."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from faceflow.cache.entry import CacheEntry


@dataclass(frozen=True, slots=True)
class MemoryStats:
    items: int
    bytes: int
    max_bytes: int
    evictions: int
    expirations: int


@dataclass(slots=True)
class _Slot:
    entry: CacheEntry
    size: int
    expires_at: float


def entry_size(key: str, entry: CacheEntry) -> int:
    """Bytes an entry counts against the budget: its key (UTF-8) plus :attr:`CacheEntry.nbytes`.

    Python's per-object overhead (a few hundred bytes) is not counted; results are kilobytes.
    """
    return len(key.encode()) + entry.nbytes


class MemoryLRU:
    """Least-recently-used cache of :class:`CacheEntry` bounded to ``max_bytes``.

    Every operation is O(1) and holds one lock, so it is safe from any thread. An entry larger than
    the whole budget is not stored (it would evict everything for one item). Expired entries count
    against the budget until they are read or pushed out as the least recently used.
    ``max_bytes == 0`` disables the cache. ``clock`` is a monotonic clock in seconds.
    """

    def __init__(self, max_bytes: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        self._max_bytes = max_bytes
        self._clock = clock
        self._slots: OrderedDict[str, _Slot] = OrderedDict()
        self._bytes = 0
        self._evictions = 0
        self._expirations = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> CacheEntry | None:
        """The live entry for ``key`` (now the most recently used), or ``None``."""
        with self._lock:
            slot = self._slots.get(key)
            if slot is None:
                return None
            if slot.expires_at <= self._clock():
                self._remove(key, slot)
                self._expirations += 1
                return None
            self._slots.move_to_end(key)
            return slot.entry

    def put(self, key: str, entry: CacheEntry, ttl_s: float) -> bool:
        """Store ``entry`` for ``ttl_s`` seconds, evicting LRU entries as needed.

        Returns whether it was stored: ``False`` if it alone exceeds the budget or ``ttl_s <= 0``
        (then any older value under ``key`` is dropped too, so a reader never sees a stale one).
        """
        size = entry_size(key, entry)
        with self._lock:
            old = self._slots.get(key)
            if old is not None:
                self._remove(key, old)
            if size > self._max_bytes or ttl_s <= 0:
                return False
            while self._bytes + size > self._max_bytes:
                lru_key, lru_slot = next(iter(self._slots.items()))
                self._remove(lru_key, lru_slot)
                self._evictions += 1
            self._slots[key] = _Slot(entry, size, self._clock() + ttl_s)
            self._bytes += size
            return True

    def delete(self, key: str) -> bool:
        """Drop ``key``; whether it was present."""
        with self._lock:
            slot = self._slots.get(key)
            if slot is None:
                return False
            self._remove(key, slot)
            return True

    def clear(self) -> None:
        with self._lock:
            self._slots.clear()
            self._bytes = 0

    def stats(self) -> MemoryStats:
        with self._lock:
            return MemoryStats(
                items=len(self._slots),
                bytes=self._bytes,
                max_bytes=self._max_bytes,
                evictions=self._evictions,
                expirations=self._expirations,
            )

    def __len__(self) -> int:
        with self._lock:
            return len(self._slots)

    def _remove(self, key: str, slot: _Slot) -> None:
        del self._slots[key]
        self._bytes -= slot.size
