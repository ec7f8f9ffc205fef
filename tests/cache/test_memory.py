from __future__ import annotations

import threading

import pytest

from faceflow.cache.entry import CacheEntry
from faceflow.cache.memory import MemoryLRU, entry_size


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def entry(size: int, media_type: str = "x/y") -> CacheEntry:
    """An entry whose nbytes is exactly ``size`` (body + 3-byte media type)."""
    return CacheEntry(media_type, b"b" * (size - len(media_type)))


def test_entry_size_is_key_plus_payload() -> None:
    assert entry_size("k1", entry(10)) == 12
    assert entry_size("é", entry(10)) == 12  # the key counts in UTF-8 bytes


def test_get_returns_what_was_put() -> None:
    cache = MemoryLRU(1000)
    value = entry(50)
    assert cache.put("k", value, ttl_s=60)
    assert cache.get("k") is value
    assert cache.get("other") is None


@pytest.mark.parametrize(
    ("budget", "puts", "touch", "expect_present", "expect_evictions"),
    [
        # budget, sizes of "k0".."kn" (each size includes the 2-byte key), key read before last put
        pytest.param(100, [50, 50], None, ["k0", "k1"], 0, id="exactly-full"),
        pytest.param(100, [50, 50, 50], None, ["k1", "k2"], 1, id="evicts-oldest"),
        pytest.param(100, [50, 50, 50], "k0", ["k0", "k2"], 1, id="read-refreshes"),
        pytest.param(100, [30, 30, 30, 90], None, ["k3"], 3, id="evicts-several"),
        pytest.param(100, [40, 101], None, ["k0"], 0, id="too-big-not-stored"),
        pytest.param(0, [10], None, [], 0, id="zero-budget-disabled"),
    ],
)
def test_lru_eviction_by_bytes(
    budget: int,
    puts: list[int],
    touch: str | None,
    expect_present: list[str],
    expect_evictions: int,
) -> None:
    cache = MemoryLRU(budget)
    for i, size in enumerate(puts):
        if touch is not None and i == len(puts) - 1:
            cache.get(touch)
        cache.put(f"k{i}", entry(size - 2), ttl_s=60)
    present = [f"k{i}" for i in range(len(puts)) if cache.get(f"k{i}") is not None]
    assert present == expect_present
    stats = cache.stats()
    assert stats.evictions == expect_evictions
    assert stats.items == len(expect_present)
    assert stats.bytes == sum(puts[int(k[1:])] for k in expect_present)
    assert stats.bytes <= budget


def test_too_big_put_drops_the_old_value() -> None:
    cache = MemoryLRU(100)
    cache.put("k", entry(10), ttl_s=60)
    assert not cache.put("k", entry(200), ttl_s=60)
    assert cache.get("k") is None
    assert cache.stats().bytes == 0


def test_replacing_a_key_recounts_its_bytes() -> None:
    cache = MemoryLRU(1000)
    cache.put("k", entry(100), ttl_s=60)
    cache.put("k", entry(30), ttl_s=60)
    assert cache.stats().bytes == 31
    assert len(cache) == 1


def test_ttl_expires_entries() -> None:
    clock = FakeClock()
    cache = MemoryLRU(1000, clock=clock)
    cache.put("short", entry(10), ttl_s=5)
    cache.put("long", entry(10), ttl_s=50)
    clock.now += 4.9
    assert cache.get("short") is not None
    clock.now += 0.1
    assert cache.get("short") is None
    assert cache.get("long") is not None
    stats = cache.stats()
    assert (stats.items, stats.bytes, stats.expirations) == (1, 14, 1)


def test_non_positive_ttl_is_not_stored() -> None:
    cache = MemoryLRU(1000)
    assert not cache.put("k", entry(10), ttl_s=0)
    assert cache.get("k") is None


def test_delete_and_clear() -> None:
    cache = MemoryLRU(1000)
    cache.put("a", entry(10), ttl_s=60)
    cache.put("b", entry(10), ttl_s=60)
    assert cache.delete("a")
    assert not cache.delete("a")
    assert cache.stats().bytes == 11
    cache.clear()
    assert cache.stats().items == cache.stats().bytes == 0


def test_negative_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        MemoryLRU(-1)


def test_threads_never_break_the_byte_budget() -> None:
    budget = 5000
    cache = MemoryLRU(budget)
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        try:
            for i in range(2000):
                key = f"k{(seed * 7919 + i) % 300}"
                if i % 3:
                    cache.put(key, entry(20 + (i % 90)), ttl_s=60)
                else:
                    cache.get(key)
        except BaseException as exc:  # surfaced below: a thread's exception is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    stats = cache.stats()
    assert 0 < stats.bytes <= budget
    # The running byte count must equal the sum over what is actually stored.
    stored = {f"k{n}": cache.get(f"k{n}") for n in range(300)}
    sizes = [entry_size(key, value) for key, value in stored.items() if value is not None]
    assert len(sizes) == stats.items
    assert sum(sizes) == stats.bytes
