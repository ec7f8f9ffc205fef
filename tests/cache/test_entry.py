from __future__ import annotations

import msgpack
import pytest

from faceflow.cache.entry import SCHEMA_VERSION, CacheEntry, MetaValue, decode_entry, encode_entry

ENTRIES = [
    pytest.param(CacheEntry("application/json", b'{"faces":[]}'), id="json-no-meta"),
    pytest.param(
        CacheEntry("image/jpeg", bytes(range(256)) * 40, {"faces": 1, "w": 1.5}), id="image"
    ),
    pytest.param(
        CacheEntry("image/png", b"", {"a": None, "b": True, "c": "x", "d": -3}), id="all-scalars"
    ),
]


@pytest.mark.parametrize("entry", ENTRIES)
def test_round_trip(entry: CacheEntry) -> None:
    decoded = decode_entry(encode_entry(entry))
    assert decoded == entry
    assert decoded is not None
    assert dict(decoded.meta) == dict(entry.meta)
    assert type(decoded.body) is bytes


def test_wire_format_is_versioned_msgpack() -> None:
    raw = encode_entry(CacheEntry("image/png", b"\x89PNG", {"k": 1}))
    assert msgpack.unpackb(raw) == [SCHEMA_VERSION, "image/png", b"\x89PNG", {"k": 1}]


GOOD = encode_entry(CacheEntry("application/json", b"{}"))


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\xc1", id="reserved-byte"),
        pytest.param(GOOD[:-1], id="truncated"),
        pytest.param(GOOD + b"\x00", id="trailing-bytes"),
        pytest.param(b"\x80\x04\x95 not pickle", id="pickle-like"),
        pytest.param(msgpack.packb([SCHEMA_VERSION + 1, "a/b", b"", {}]), id="future-version"),
        pytest.param(msgpack.packb([0, "a/b", b"", {}]), id="old-version"),
        pytest.param(msgpack.packb([True, "a/b", b"", {}]), id="bool-version"),
        pytest.param(msgpack.packb([SCHEMA_VERSION, "a/b", b""]), id="short"),
        pytest.param(msgpack.packb({"v": SCHEMA_VERSION}), id="map"),
        pytest.param(msgpack.packb([SCHEMA_VERSION, b"a/b", b"", {}]), id="bytes-media-type"),
        pytest.param(msgpack.packb([SCHEMA_VERSION, "a/b", "str", {}]), id="str-body"),
        pytest.param(msgpack.packb([SCHEMA_VERSION, "a/b", b"", []]), id="list-meta"),
        pytest.param(msgpack.packb([SCHEMA_VERSION, "a/b", b"", {"k": [1]}]), id="nested-meta"),
        pytest.param(msgpack.packb([SCHEMA_VERSION, "a/b", b"", {1: 1}]), id="int-meta-key"),
        pytest.param(
            msgpack.packb([SCHEMA_VERSION, "a/b", msgpack.ExtType(1, b"x"), {}]), id="ext-type"
        ),
    ],
)
def test_unreadable_values_decode_as_miss(raw: bytes) -> None:
    assert decode_entry(raw) is None


def test_meta_is_a_read_only_copy() -> None:
    meta: dict[str, MetaValue] = {"faces": 1}
    entry = CacheEntry("application/json", b"{}", meta)
    meta["faces"] = 2
    assert entry.meta["faces"] == 1
    with pytest.raises(TypeError):
        entry.meta["faces"] = 3  # type: ignore[index]


@pytest.mark.parametrize(
    ("media_type", "body", "meta"),
    [
        pytest.param("a/b", b"", {"k": [1]}, id="list-meta"),
        pytest.param("a/b", b"", {1: "x"}, id="int-key"),
        pytest.param("a/b", "text", {}, id="str-body"),
        pytest.param(None, b"", {}, id="no-media-type"),
    ],
)
def test_bad_entries_are_refused(media_type: object, body: object, meta: object) -> None:
    with pytest.raises(TypeError):
        CacheEntry(media_type, body, meta)  # type: ignore[arg-type]


def test_nbytes_counts_body_media_type_and_meta() -> None:
    entry = CacheEntry("image/png", b"12345", {"ab": 10, "c": None})
    assert entry.nbytes == 5 + len("image/png") + (2 + 2) + (1 + 4)
