from __future__ import annotations

import random
import threading

import pytest

from faceflow.cache.entry import CacheEntry
from faceflow.cache.memory import MemoryRing, record_size
from faceflow.runtime.heap import resident_bytes

MEDIA_TYPE = "x/y"
HEADER_BYTES = record_size(CacheEntry(MEDIA_TYPE, b""))
"""What an entry of ``MEDIA_TYPE`` without meta takes in the buffer besides its body."""


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def entry(size: int, fill: bytes = b"b") -> CacheEntry:
    """An entry of ``MEDIA_TYPE`` that takes exactly ``size`` bytes of the buffer."""
    return CacheEntry(MEDIA_TYPE, (fill * size)[: size - HEADER_BYTES])


def present(cache: MemoryRing, count: int) -> list[str]:
    return [f"k{i}" for i in range(count) if cache.get(f"k{i}") is not None]


def test_record_size_is_header_plus_body() -> None:
    assert record_size(entry(50)) == 50
    with_meta = CacheEntry("application/json", b"{}", {"face_count": 2})
    assert record_size(with_meta) > len(b"{}") + len("application/json")


def test_get_returns_an_equal_copy() -> None:
    cache = MemoryRing(1000)
    value = CacheEntry("image/png", bytes(range(256)), {"face_count": 3, "ok": True, "x": None})
    assert cache.put("k", value, ttl_s=60)
    got = cache.get("k")
    assert got == value
    assert got is not None
    assert type(got.body) is bytes
    assert dict(got.meta) == dict(value.meta)
    assert cache.get("other") is None


@pytest.mark.parametrize(
    ("budget", "puts", "touch", "expect_present", "expect_evictions", "expect_reinsertions"),
    [
        # buffer bytes, record sizes of "k0".."kn", key read before the last put
        pytest.param(100, [50, 50], None, ["k0", "k1"], 0, 0, id="exactly-full"),
        pytest.param(100, [50, 50, 50], None, ["k1", "k2"], 1, 0, id="drops-oldest"),
        pytest.param(90, [30, 30, 30, 30], "k0", ["k0", "k2", "k3"], 1, 1, id="read-reinserted"),
        pytest.param(90, [30, 30, 30, 30], "k2", ["k1", "k2", "k3"], 1, 0, id="read-not-at-tail"),
        pytest.param(100, [30, 30, 30, 90], None, ["k3"], 3, 0, id="drops-several"),
        pytest.param(100, [40, 101], None, ["k0"], 0, 0, id="too-big-not-stored"),
        pytest.param(100, [100, 100], None, ["k1"], 1, 0, id="whole-buffer"),
        pytest.param(100, [30, 30, 30], None, ["k0", "k1", "k2"], 0, 0, id="fits-before-end"),
        # k2 does not fit after k1 (80 + 30 > 100): it goes to 0, the last 20 bytes stay unused
        pytest.param(100, [40, 40, 30], None, ["k1", "k2"], 1, 0, id="wraps-to-start"),
        # k3 fits between k2 and the unused end once k1 is dropped
        pytest.param(100, [40, 40, 30, 40], None, ["k2", "k3"], 2, 0, id="fills-after-wrap"),
        pytest.param(0, [10], None, [], 0, 0, id="zero-budget-disabled"),
    ],
)
def test_ring_eviction_by_bytes(
    budget: int,
    puts: list[int],
    touch: str | None,
    expect_present: list[str],
    expect_evictions: int,
    expect_reinsertions: int,
) -> None:
    cache = MemoryRing(budget)
    for i, size in enumerate(puts):
        if touch is not None and i == len(puts) - 1:
            assert cache.get(touch) is not None
        cache.put(f"k{i}", entry(size), ttl_s=60)
    stats = cache.stats()
    assert present(cache, len(puts)) == expect_present
    assert (stats.evictions, stats.reinsertions) == (expect_evictions, expect_reinsertions)
    assert stats.items == len(expect_present)
    assert stats.bytes == sum(puts[int(k[1:])] for k in expect_present)
    assert stats.bytes <= budget


def test_a_reinserted_entry_needs_a_new_read_to_stay_again() -> None:
    cache = MemoryRing(90)
    for i in range(3):
        cache.put(f"k{i}", entry(30), ttl_s=60)
    cache.get("k0")
    cache.put("k3", entry(30), ttl_s=60)  # k0 moved to the head, k1 dropped
    cache.put("k4", entry(30), ttl_s=60)  # k2 dropped
    cache.put("k5", entry(30), ttl_s=60)  # k0 at the tail again, unread since: dropped
    assert present(cache, 6) == ["k3", "k4", "k5"]
    assert cache.stats().reinsertions == 1


def test_reinsertion_keeps_the_bytes() -> None:
    cache = MemoryRing(100)
    first = CacheEntry("a/b", bytes(range(40)), {"n": 1})
    cache.put("k0", first, ttl_s=60)
    cache.put("k1", entry(40, b"1"), ttl_s=60)
    cache.get("k0")
    cache.put("k2", entry(45, b"2"), ttl_s=60)  # k0 kept (read), k1 dropped
    assert cache.get("k0") == first
    assert cache.get("k1") is None
    assert cache.get("k2") == entry(45, b"2")


def test_hot_entries_survive_a_stream_of_one_off_ones() -> None:
    cache = MemoryRing(2000)
    hot = {f"hot{i}": entry(100, bytes([65 + i])) for i in range(3)}
    for key, value in hot.items():
        cache.put(key, value, ttl_s=60)
    for n in range(200):
        for key, value in hot.items():
            assert cache.get(key) == value, (key, n)
        cache.put(f"cold{n}", entry(100 + n % 37, b"c"), ttl_s=60)
    stats = cache.stats()
    assert stats.evictions > 150
    assert stats.reinsertions > 0


def test_too_big_put_drops_the_old_value() -> None:
    cache = MemoryRing(100)
    cache.put("k", entry(10), ttl_s=60)
    assert not cache.put("k", entry(101), ttl_s=60)
    assert cache.get("k") is None
    assert cache.stats().bytes == 0


def test_an_answer_over_the_entry_limit_is_not_kept_and_evicts_nothing() -> None:
    # Two 15 MB annotated PNGs (92 % of the default buffer each) emptied it of every other
    # client's answers, the ones just read included.
    cache = MemoryRing(1000, max_entry_bytes=250)
    for key in "abcd":
        assert cache.put(key, entry(200), ttl_s=60)
    cache.get("a")
    assert not cache.put("big", entry(251), ttl_s=60)
    assert cache.get("big") is None
    assert all(cache.get(key) == entry(200) for key in "abcd")
    assert cache.stats().evictions == 0
    assert cache.put("fits", entry(250), ttl_s=60)


def test_replacing_a_key_recounts_its_bytes_and_frees_its_space() -> None:
    cache = MemoryRing(100)
    cache.put("k", entry(60), ttl_s=60)
    cache.put("k", entry(30, b"2"), ttl_s=60)
    assert cache.stats().bytes == 30
    assert len(cache) == 1
    assert cache.get("k") == entry(30, b"2")
    cache.put("other", entry(60), ttl_s=60)  # takes the old value's space, not k's
    assert cache.get("k") == entry(30, b"2")
    assert cache.get("other") == entry(60)
    assert cache.stats().evictions == 0


def test_ttl_expires_entries() -> None:
    clock = FakeClock()
    cache = MemoryRing(1000, clock=clock)
    cache.put("short", entry(10), ttl_s=5)
    cache.put("long", entry(14), ttl_s=50)
    clock.now += 4.9
    assert cache.get("short") is not None
    clock.now += 0.1
    assert cache.get("short") is None
    assert cache.get("long") is not None
    stats = cache.stats()
    assert (stats.items, stats.bytes, stats.expirations) == (1, 14, 1)


def test_expired_entries_at_the_tail_count_as_expirations_even_if_read() -> None:
    clock = FakeClock()
    cache = MemoryRing(90, clock=clock)
    cache.put("k0", entry(30), ttl_s=5)
    cache.put("k1", entry(30), ttl_s=50)
    cache.put("k2", entry(30), ttl_s=50)
    cache.get("k0")
    clock.now += 10
    cache.put("k3", entry(30), ttl_s=50)
    stats = cache.stats()
    assert (stats.expirations, stats.evictions, stats.reinsertions) == (1, 0, 0)
    assert present(cache, 4) == ["k1", "k2", "k3"]


def test_non_positive_ttl_is_not_stored() -> None:
    cache = MemoryRing(1000)
    assert not cache.put("k", entry(10), ttl_s=0)
    assert cache.get("k") is None


def test_delete_and_clear() -> None:
    cache = MemoryRing(1000)
    cache.put("a", entry(10), ttl_s=60)
    cache.put("b", entry(11), ttl_s=60)
    assert cache.delete("a")
    assert not cache.delete("a")
    assert cache.stats().bytes == 11
    cache.clear()
    assert cache.stats().items == cache.stats().bytes == 0
    assert cache.get("b") is None
    assert cache.put("c", entry(1000), ttl_s=60)  # the whole buffer is free again
    assert cache.get("c") == entry(1000)


def test_negative_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        MemoryRing(-1)


def test_the_buffer_is_resident_from_construction() -> None:
    size = 64 * 1024 * 1024
    before = resident_bytes()
    cache = MemoryRing(size)
    grown = resident_bytes() - before
    assert grown >= size * 0.95, grown
    for n in range(200):  # filling it (with wrap-arounds) adds next to nothing
        cache.put(f"k{n}", entry(1_000_000, bytes([n % 251])), ttl_s=60)
    assert resident_bytes() - before - grown < 8 * 1024 * 1024
    assert cache.stats().bytes <= size


def test_random_use_returns_exactly_what_was_stored() -> None:
    """Many wrap-arounds, replacements, deletions and reinsertions: every hit is the last value
    stored under its key, byte for byte, and the byte count is that of what is present."""
    rng = random.Random(7)
    budget = 10_000
    cache = MemoryRing(budget)
    latest: dict[str, CacheEntry] = {}
    for n in range(20_000):
        key = f"k{rng.randrange(60)}"
        action = rng.random()
        if action < 0.45:
            value = CacheEntry(MEDIA_TYPE, rng.randbytes(rng.randrange(0, 2500)), {"n": n})
            if cache.put(key, value, ttl_s=60):
                latest[key] = value
        elif action < 0.5:
            cache.delete(key)
            latest.pop(key, None)
        else:
            got = cache.get(key)
            if got is not None:
                assert got == latest[key], (n, key)
    stats = cache.stats()
    kept = {key: cache.get(key) for key in latest}
    assert all(value == latest[key] for key, value in kept.items() if value is not None)
    assert stats.bytes == sum(record_size(v) for v in kept.values() if v is not None)
    assert stats.items == sum(v is not None for v in kept.values())
    assert 0 < stats.bytes <= budget
    assert stats.evictions > 1000
    assert stats.reinsertions > 100


def test_threads_never_break_the_buffer() -> None:
    budget = 5000
    cache = MemoryRing(budget)
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        try:
            for i in range(2000):
                n = (seed * 7919 + i) % 300
                if i % 3:
                    # The body says which key it belongs to: a torn or misplaced copy shows.
                    cache.put(f"k{n}", CacheEntry(MEDIA_TYPE, b"%d;" % n * (1 + i % 40)), 60)
                else:
                    got = cache.get(f"k{n}")
                    assert got is None or set(got.body.split(b";")[:-1]) == {b"%d" % n}
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
    stored = [cache.get(f"k{n}") for n in range(300)]
    sizes = [record_size(value) for value in stored if value is not None]
    assert len(sizes) == stats.items
    assert sum(sizes) == stats.bytes
