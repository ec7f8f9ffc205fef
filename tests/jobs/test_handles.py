"""Handles: random, unguessable, scoped to the API key that made them, expiring."""

from __future__ import annotations

from faceflow.jobs.handles import MemoryHandles, is_handle, new_handle, visible_to
from faceflow.jobs.records import HandleRecord


def test_handles_are_random_and_well_formed() -> None:
    handles = {new_handle() for _ in range(1000)}
    assert len(handles) == 1000
    assert all(is_handle(h) for h in handles)
    assert not is_handle("ff1-detect-abc")
    assert not is_handle("../" + new_handle()[3:])


def test_visibility_follows_the_owner_digest() -> None:
    mine = HandleRecord("job", "detect", "a" * 64, 0.0)
    anyone = HandleRecord("job", "detect", None, 0.0)
    assert visible_to(mine, "a" * 64)
    assert not visible_to(mine, "b" * 64)
    assert not visible_to(mine, None)
    assert visible_to(anyone, None)
    assert not visible_to(anyone, "a" * 64)


def test_memory_handles_expire_and_purge() -> None:
    now = [100.0]
    store = MemoryHandles(clock=lambda: now[0])
    record = HandleRecord("job-1", "detect", None, 100.0)
    store.put("h1", record, ttl_s=10)
    store.put("h2", HandleRecord("job-2", "detect", None, 100.0), ttl_s=100)
    assert store.get("h1") == record
    canceled = store.mark_canceled("h1", 105.0)
    assert canceled is not None
    assert canceled.canceled_at == 105.0
    now[0] = 110.0
    assert store.get("h1") is None
    assert store.purge(keep=lambda r: r.job_id != "job-2") == 1
    assert len(store) == 0
