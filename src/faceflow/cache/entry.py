"""What the service caches, and its versioned wire format.

An entry is a finished response body (JSON or an encoded image) with its media type and a few
scalar facts the service wants back on a hit (e.g. a face count for a header), or a
deterministic failure (:func:`failure_entry`: the error a repeat of the work would raise
again, so it is answered from the cache, not computed again). In Redis it is
stored as msgpack ``[SCHEMA_VERSION, media_type, body, meta]``; never pickle, because whoever can
write to the cache Redis must not be able to run code in the service.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import msgpack

from faceflow.errors import FaceflowError, error_from_code

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1

MetaValue = str | int | float | bool | None

FAILURE_MEDIA_TYPE = "application/vnd.faceflow.error"
"""The media type of a cached failure: its body the error's JSON object (code, message,
details), never sent as it is (:func:`failure_of` rebuilds the error, which its one handler
answers)."""

_SCALARS = (str, int, float, bool, type(None))

SERVED_MEDIA_TYPES = frozenset(
    {
        "application/json",
        "application/vnd.faceflow.matte",  # an ID photo's cut-out, cached apart
        FAILURE_MEDIA_TYPE,  # a deterministic failure, read back as its error
        "image/jpeg",
        "image/png",
        "image/webp",
        "image/gif",
    }
)
"""Every media type a faceflow task gives its result (tests/cache/test_entry.py holds it to
them). A value read from Redis of any other is no entry of faceflow's, and a miss: whoever could
write to the cache Redis (a compromised node, another application sharing it) stored
``text/html`` there, and the service answered it, a script in its body, on its own origin, where
its web page runs with the user's API key."""


@dataclass(frozen=True, slots=True, eq=True)
class CacheEntry:
    """A cached response: ``body`` bytes of ``media_type``, plus scalar ``meta`` facts.

    ``meta`` is copied and made read-only on construction, so an entry shared by the in-process
    cache cannot be changed by one of its readers. Raises ``TypeError`` for non-scalar meta.
    """

    media_type: str
    body: bytes
    meta: Mapping[str, MetaValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.media_type, str) or not isinstance(self.body, bytes):
            raise TypeError("CacheEntry needs a str media_type and bytes body")
        for name, value in self.meta.items():
            if not isinstance(name, str) or not isinstance(value, _SCALARS):
                raise TypeError(f"CacheEntry meta {name!r} must map str to a scalar")
        object.__setattr__(self, "meta", MappingProxyType(dict(self.meta)))

    @classmethod
    def from_checked(cls, media_type: str, body: bytes, meta: dict[str, MetaValue]) -> CacheEntry:
        """An entry from parts taken from an entry built (and so checked) before: the in-process
        cache rebuilds each hit's entry around a body copied out of its buffer, and checking
        again what it stored itself cost more than the copy (≈ 1.5 µs a hit)."""
        entry = object.__new__(cls)
        object.__setattr__(entry, "media_type", media_type)
        object.__setattr__(entry, "body", body)
        object.__setattr__(entry, "meta", MappingProxyType(meta))
        return entry

    @property
    def nbytes(self) -> int:
        """Payload size in bytes: body, media type and meta text (not Python object overhead)."""
        meta_bytes = sum(len(k) + len(str(v)) for k, v in self.meta.items())
        return len(self.body) + len(self.media_type) + meta_bytes


def encode_entry(entry: CacheEntry) -> bytes:
    """The msgpack wire form of ``entry``, tagged with :data:`SCHEMA_VERSION`: the bytes of
    ``msgpack.packb([SCHEMA_VERSION, media_type, body, meta])``, the body copied once, not by
    msgpack, which copied it into a buffer it grew as it went and then out of it, on the event
    loop, holding the GIL (4 MiB: 0.4-16 ms; 27 MiB: 27-290 ms on a 2-core VM)."""
    head = msgpack.packb([SCHEMA_VERSION, entry.media_type, None], use_bin_type=True)
    tail = msgpack.packb(dict(entry.meta), use_bin_type=True)
    # The fixarray header says 4 items, not 3; the None (one byte) gives way to the body.
    return b"".join((b"\x94", head[1:-1], bin_header(len(entry.body)), entry.body, tail))


def bin_header(size: int) -> bytes:
    """msgpack's header of a ``bin`` of ``size`` bytes (bin 8, 16 or 32), as ``packb`` writes
    it before the bytes: for values written around a large body rather than packed with it."""
    if size < 1 << 8:
        return b"\xc4" + size.to_bytes(1, "big")
    if size < 1 << 16:
        return b"\xc5" + size.to_bytes(2, "big")
    return b"\xc6" + size.to_bytes(4, "big")


def unpack_versioned(raw: bytes, version: int, *lengths: int) -> list[Any] | None:
    """``raw`` as the msgpack list ``[version, ...]`` of one of ``lengths`` items, or ``None``
    for anything else (corrupt bytes, another shape or schema version). Shared by every value
    faceflow stores or sends as msgpack (cache entries, job records, peers' calls)."""
    try:
        value: Any = msgpack.unpackb(raw, raw=False, use_list=True, strict_map_key=True)
    except Exception:  # msgpack raises several unrelated types for corrupt input
        logger.debug("undecodable msgpack value (%d bytes)", len(raw))
        return None
    # ``type(...) is int`` because msgpack's True would compare equal to version 1.
    if not isinstance(value, list) or len(value) not in lengths or type(value[0]) is not int:
        return None
    if value[0] != version:
        logger.debug("msgpack value of schema version %d, not %d", value[0], version)
        return None
    return value


def decode_entry(raw: bytes) -> CacheEntry | None:
    """The entry encoded in ``raw``, or ``None`` if it is corrupt or of another schema version.

    Never raises for bad input: a value nobody can read is simply a cache miss, and the fresh
    result computed next overwrites it.
    """
    value = unpack_versioned(raw, SCHEMA_VERSION, 4)
    if value is None:
        return None
    _, media_type, body, meta = value
    if not isinstance(media_type, str) or not isinstance(body, bytes) or not isinstance(meta, dict):
        return None
    if media_type not in SERVED_MEDIA_TYPES or not all(map(_header_safe, meta.values())):
        return None
    try:
        entry = CacheEntry(media_type=media_type, body=body, meta=meta)
    except TypeError:
        return None
    if media_type == FAILURE_MEDIA_TYPE and failure_of(entry) is None:
        return None  # not a failure faceflow stores (another code, another shape): a miss
    return entry


def failure_entry(error: FaceflowError) -> CacheEntry:
    """``error``, a :attr:`~faceflow.errors.FaceflowError.deterministic` one, as a cache entry,
    read back by :func:`failure_of`."""
    if not error.deterministic:
        raise ValueError(f"{error.code} depends on more than the work: it is not cached")
    body = json.dumps(error.to_dict(), separators=(",", ":"), ensure_ascii=True)
    return CacheEntry(FAILURE_MEDIA_TYPE, body.encode("ascii"))


def failure_of(entry: CacheEntry) -> FaceflowError | None:
    """The error a failure entry holds (as :func:`failure_entry` stored it: same code, message
    and details, so the same status and body); None for any other entry, and for a body that is
    no deterministic error's (written by someone other than faceflow: only the codes faceflow
    caches can come back, never a 503 that would turn every client away)."""
    if entry.media_type != FAILURE_MEDIA_TYPE:
        return None
    try:
        fields = json.loads(entry.body)
    except ValueError:
        return None
    if not isinstance(fields, dict):
        return None
    code, message = fields.pop("code", None), fields.pop("message", None)
    if not isinstance(code, str) or not isinstance(message, str):
        return None
    if not all(isinstance(value, _SCALARS) for value in fields.values()):
        return None
    error = error_from_code(code, message, fields)
    return error if error.deterministic and error.code == code else None


def _header_safe(value: object) -> bool:
    """Whether a meta value may become a response header's (X-Compliance is one): text of
    printable ASCII only. A compliance of ``"pass\r\nX: y"`` in a forged entry made the server
    drop every connection asking for that result, without an answer."""
    return not isinstance(value, str) or (value.isascii() and value.isprintable())
