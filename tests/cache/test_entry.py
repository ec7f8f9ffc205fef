from __future__ import annotations

import msgpack
import pytest

from faceflow.cache.entry import (
    FAILURE_MEDIA_TYPE,
    SCHEMA_VERSION,
    SERVED_MEDIA_TYPES,
    CacheEntry,
    MetaValue,
    decode_entry,
    encode_entry,
    failure_entry,
    failure_of,
)
from faceflow.errors import (
    FaceflowError,
    InvalidParameter,
    MultipleFaces,
    NoFace,
    NoSubject,
    Overloaded,
    TooManyPixels,
    Undecodable,
)
from faceflow.imaging.formats import ImageFormat, OutputFormat
from faceflow.runtime.idphoto_tasks import MATTE_MEDIA_TYPE
from faceflow.runtime.tasks import JSON_MEDIA_TYPE
from tests.fixtures.packing import packed_sizes

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


@pytest.mark.parametrize("size", [0, 1, 255, 256, 65_535, 65_536, 1 << 20])
def test_the_wire_form_is_msgpacks_own_bytes_at_every_body_size(size: int) -> None:
    # Written around the body, not by msgpack: the bytes packb writes, whichever bin header
    # (8, 16 or 32 bits of length) the body's size takes; entries already stored stay readable.
    entry = CacheEntry("image/jpeg", b"\xff" * size, {"face_count": 2, "size_px": None})
    whole = [SCHEMA_VERSION, "image/jpeg", entry.body, {"face_count": 2, "size_px": None}]
    assert encode_entry(entry) == msgpack.packb(whole, use_bin_type=True)


def test_an_entrys_body_is_not_copied_through_msgpack(monkeypatch: pytest.MonkeyPatch) -> None:
    # A cache Redis's SET encodes the entry on the event loop: msgpack copied the body into a
    # buffer it grew as it went, then out of it, holding the GIL (27 MiB: 27-290 ms).
    packed = packed_sizes(monkeypatch)
    body = bytes(range(256)) * 4096
    assert decode_entry(encode_entry(CacheEntry("image/png", body))) == CacheEntry(PNG, body)
    assert packed, "nothing was packed: the test would prove nothing"
    assert max(packed) < len(body) // 100


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
    assert written | {FAILURE_MEDIA_TYPE} == SERVED_MEDIA_TYPES  # failures: tested below
    written -= {FAILURE_MEDIA_TYPE}
    for media_type in written:
        entry = CacheEntry(media_type, b"x", {"compliance": "warn", "face_count": 2, "ms_x": 1.5})
        assert decode_entry(encode_entry(entry)) == entry


@pytest.mark.parametrize(
    "error",
    [
        NoFace("no face found"),
        MultipleFaces("two faces", {"face_count": 2}),
        NoSubject("the cut-out left the face out"),
        Undecodable("cannot decode this jpeg image", {"format": "jpeg"}),
        InvalidParameter(
            "cannot fit", {"parameter": "max_kb", "max_kb": 1, "min_achievable_kb": 9}
        ),
    ],
    ids=lambda error: error.code,
)
def test_a_deterministic_failure_comes_back_from_redis_as_the_same_error(
    error: FaceflowError,
) -> None:
    decoded = decode_entry(encode_entry(failure_entry(error)))
    assert decoded is not None
    again = failure_of(decoded)
    assert again is not None
    assert (type(again), again.status, again.to_dict()) == (
        type(error),
        error.status,
        error.to_dict(),
    )


def test_an_entry_that_is_no_failure_holds_none() -> None:
    assert failure_of(CacheEntry("application/json", b'{"code":"no_face","message":"x"}')) is None


def test_only_deterministic_failures_are_made_entries() -> None:
    for error in (Overloaded("busy"), TooManyPixels("over the limit"), FaceflowError("bug")):
        with pytest.raises(ValueError, match="not cached"):
            failure_entry(error)


@pytest.mark.parametrize(
    "body",
    [
        b'{"code":"overloaded","message":"everyone away"}',  # a 503 for every client
        b'{"code":"internal","message":"x"}',
        b'{"code":"too_many_pixels","message":"x"}',  # depends on the reader's settings
        b'{"code":"no_such_code","message":"x"}',
        b'{"code":"no_face"}',
        b'{"code":"no_face","message":"x","nested":{"a":1}}',
        b'["no_face"]',
        b"not json",
    ],
)
def test_a_failure_faceflow_would_not_store_is_a_miss(body: bytes) -> None:
    """Whoever can write to the cache Redis cannot make the service answer a 503 (or any error
    that is not a deterministic one, in faceflow's own shape) for someone else's upload."""
    assert decode_entry(encode_entry(CacheEntry(FAILURE_MEDIA_TYPE, body))) is None
