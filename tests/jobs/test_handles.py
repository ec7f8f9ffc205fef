"""Handles: random, unguessable, signed, scoped to the API key that made them, expiring."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest

from faceflow.jobs.handles import (
    KEY_BYTES,
    HandleSigner,
    MemoryHandles,
    is_handle,
    new_key,
    visible_to,
)
from faceflow.jobs.records import HandleRecord

SIGNER = HandleSigner(b"k" * KEY_BYTES)


def test_handles_are_random_and_well_formed() -> None:
    handles = {SIGNER.new() for _ in range(1000)}
    assert len(handles) == 1000
    assert all(is_handle(h) and SIGNER.genuine(h) for h in handles)
    assert not is_handle("ff1-detect-abc")
    assert not is_handle("../" + SIGNER.new()[3:])


def _flipped(handle: str, byte: int) -> str:
    raw = bytearray(base64.urlsafe_b64decode(handle))
    raw[byte] ^= 1
    return base64.urlsafe_b64encode(bytes(raw)).decode()


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda h: _flipped(h, 35), id="tampered-tag"),
        pytest.param(lambda h: _flipped(h, 0), id="tampered-random-part"),
        pytest.param(lambda h: "A" * 48, id="right-shape"),
        pytest.param(lambda h: h[:32], id="old-shape"),
        pytest.param(lambda h: h + "A", id="one-more"),
        pytest.param(lambda h: h[:-1] + "=", id="padding"),
        pytest.param(lambda h: HandleSigner(new_key()).new(), id="another-key"),
    ],
)
def test_only_the_keys_own_handles_are_genuine(forge: Callable[[str], str]) -> None:
    handle = SIGNER.new()
    forged = forge(handle)
    assert forged != handle
    assert not SIGNER.genuine(forged)
    assert SIGNER.genuine(handle)


def test_the_same_key_tells_the_same_handles() -> None:
    key = new_key()
    assert len(key) == KEY_BYTES
    assert HandleSigner(key).genuine(HandleSigner(bytes(key)).new())
    with pytest.raises(ValueError, match="16 bytes"):
        HandleSigner(b"short")


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


def test_a_handle_carries_its_minters_origin_under_its_tag() -> None:
    signer = HandleSigner(b"k" * KEY_BYTES, origin=b"worker-1")
    handle = signer.new()
    assert signer.origin(handle) == b"worker-1"
    assert SIGNER.genuine(handle)  # the same key: a genuine handle whatever its origin
    assert len({signer.new() for _ in range(100)}) == 100
    # Naming another worker breaks the tag: a client cannot route a handle anywhere.
    assert signer.origin(_flipped(handle, 0)) is None
    assert signer.origin("x" * 48) is None
