"""CPU per get (a hit) and per put of the in-process result cache, in µs, in this process.

    .venv/bin/python bench/cache_cpu.py

For an A/B against an older checkout, run the same file with that checkout's interpreter (the
class was ``MemoryLRU`` before the ring buffer, 2026-12-05). Process CPU time, not wall-clock,
so other work on the machine moves the figures little; alternate the two a few times anyway.
"""

from __future__ import annotations

import time
from typing import Any

import faceflow.cache.memory as memory
from faceflow.cache.entry import CacheEntry

BUDGET = 16 * 1024 * 1024
ENTRIES = 64
GETS = 20_000
PUTS = 4_000
BODIES = ((98_000, "a 98 KB image"), (1_200, "a 1.2 KB JSON answer"))


def main() -> None:
    cache_class: Any = vars(memory).get("MemoryRing") or vars(memory)["MemoryLRU"]
    for size, what in BODIES:
        cache = cache_class(BUDGET)
        keys = [f"v1:analyze:{i:064x}" for i in range(ENTRIES)]
        for i, key in enumerate(keys):
            cache.put(key, CacheEntry("image/jpeg", bytes([i]) * size, {"face_count": 1}), 3600)
        start = time.process_time()
        for i in range(GETS):
            cache.get(keys[i % ENTRIES])
        get_us = (time.process_time() - start) / GETS * 1e6
        fresh = [CacheEntry("image/jpeg", bytes([i]) * size, {"face_count": 1}) for i in range(8)]
        start = time.process_time()
        for i in range(PUTS):  # new keys: once the budget is full, every put evicts
            cache.put(f"v1:detect:{i:064x}", fresh[i % len(fresh)], 3600)
        put_us = (time.process_time() - start) / PUTS * 1e6
        print(f"{cache_class.__name__}, {what}: get {get_us:.2f} µs, put {put_us:.2f} µs")


if __name__ == "__main__":
    main()
