from __future__ import annotations

import msgpack
import pytest

from faceflow.cache.entry import (
    SCHEMA_VERSION,
    SERVED_MEDIA_TYPES,
    CacheEntry,
    MetaValue,
    decode_entry,
    encode_entry,
)
from faceflow.imaging.formats import ImageFormat, OutputFormat
from faceflow.runtime.idphoto_tasks import MATTE_MEDIA_TYPE
from faceflow.runtime.tasks import JSON_MEDIA_TYPE

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


PNG = "image/png"
GOOD = encode_entry(CacheEntry("application/json", b"{}"))


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\xc1", id="reserved-byte"),
        pytest.param(GOOD[:-1], id="truncated"),
        pytest.param(GOOD + b"\x00", id="trailing-bytes"),
        pytest.param(b"\x80\x04\x95 not pickle", id="pickle-like"),
        pytest.param(msgpack.packb([SCHEMA_VERSION + 1, PNG, b"", {}]), id="future-version"),
        pytest.param(msgpack.packb([0, PNG, b"", {}]), id="old-version"),
        pytest.param(msgpack.packb([True, PNG, b"", {}]), id="bool-version"),
        pytest.param(msgpack.packb([SCHEMA_VERSION, PNG, b""]), id="short"),
        pytest.param(msgpack.packb({"v": SCHEMA_VERSION}), id="map"),
        pytest.param(msgpack.packb([SCHEMA_VERSION, b"image/png", b"", {}]), id="bytes-media-type"),
        pytest.param(msgpack.packb([SCHEMA_VERSION, PNG, "str", {}]), id="str-body"),
        pytest.param(msgpack.packb([SCHEMA_VERSION, PNG, b"", []]), id="list-meta"),
        pytest.param(msgpack.packb([SCHEMA_VERSION, PNG, b"", {"k": [1]}]), id="nested-meta"),
        pytest.param(msgpack.packb([SCHEMA_VERSION, PNG, b"", {1: 1}]), id="int-meta-key"),
        pytest.param(
            msgpack.packb([SCHEMA_VERSION, PNG, msgpack.ExtType(1, b"x"), {}]), id="ext-type"
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
        pytest.param("image/png", b"", {"k": [1]}, id="list-meta"),
        pytest.param("image/png", b"", {1: "x"}, id="int-key"),
        pytest.param("image/png", "text", {}, id="str-body"),
        pytest.param(None, b"", {}, id="no-media-type"),
    ],
)
def test_bad_entries_are_refused(media_type: object, body: object, meta: object) -> None:
    with pytest.raises(TypeError):
        CacheEntry(media_type, body, meta)  # type: ignore[arg-type]


def test_nbytes_counts_body_media_type_and_meta() -> None:
    entry = CacheEntry("image/png", b"12345", {"ab": 10, "c": None})
    assert entry.nbytes == 5 + len("image/png") + (2 + 2) + (1 + 4)


@pytest.mark.parametrize(
    ("media_type", "meta"),
    [
        pytest.param("text/html", {}, id="html"),
        pytest.param("image/svg+xml", {}, id="svg"),
        pytest.param("application/json\r\nSet-Cookie: a=b", {}, id="crlf-media-type"),
        pytest.param("application/json", {"compliance": "pass\r\nX-A: b"}, id="crlf-meta"),
        pytest.param("application/json", {"compliance": "pass\x00"}, id="nul-meta"),
        pytest.param("application/json", {"compliance": "réussi"}, id="non-ascii-meta"),
    ],
)
def test_values_faceflow_never_writes_decode_as_miss(
    media_type: str, meta: dict[str, MetaValue]
) -> None:
    """Written by whoever else can write to the cache Redis: answered as they were, a
    text/html entry ran its script on the service's origin, and a CR LF in a meta value that
    becomes a header (X-Compliance) had the server drop the connection unanswered."""
    raw = msgpack.packb([SCHEMA_VERSION, media_type, b"<script>1</script>", meta])
    assert decode_entry(raw) is None


def test_every_media_type_faceflow_writes_is_read_back() -> None:
    written = {JSON_MEDIA_TYPE, MATTE_MEDIA_TYPE}
    written |= {f.mime_type for f in ImageFormat} | {f.mime_type for f in OutputFormat}
    assert written == SERVED_MEDIA_TYPES
    for media_type in written:
        entry = CacheEntry(media_type, b"x", {"compliance": "warn", "face_count": 2, "ms_x": 1.5})
        assert decode_entry(encode_entry(entry)) == entry
