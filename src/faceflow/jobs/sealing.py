"""Job payloads and outcomes encrypted at rest in the queue Redis (``jobs.payload_key_file``).

The queue Redis runs with ``appendonly yes``, so every upload and result it holds reaches its
disk, in clear, and stays in its append-only file after the job ends until Redis rewrites it.
With keys configured, what faceflow writes there under ``jobdata`` and ``jobresult`` is sealed
with AES-256-GCM:

``0xc1`` ``0x01`` | key id (4 bytes) | nonce (12 bytes) | ciphertext and tag

``0xc1`` is the one byte msgpack never writes, so no record in clear (every one is a msgpack
array) is taken for a sealed one: records stored before keys were set are read as before. The
associated data binds a value to its queue, its kind and its job id, so a payload moved under
another job's key, or read as an outcome, does not open.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MARK = b"\xc1\x01"
_KEY_ID_BYTES = 4
_NONCE_BYTES = 12
_HEAD_BYTES = len(MARK) + _KEY_ID_BYTES + _NONCE_BYTES

PAYLOAD = "payload"
OUTCOME = "outcome"


class CannotOpen(Exception):
    """A sealed value this process has no key for, or that does not open (another job's, or
    altered). The message names the key id, never a key."""


def sealed(raw: bytes) -> bool:
    return raw.startswith(MARK)


def key_id(key: bytes) -> bytes:
    """Which key sealed a value: the first bytes of its BLAKE3, which tell nothing of it."""
    return blake3.blake3(key).digest()[:_KEY_ID_BYTES]


class Sealer:
    """Seals with the first of ``keys`` and opens with any; without keys, seals nothing."""

    __slots__ = ("_ciphers", "_queue")

    def __init__(self, keys: Sequence[bytes], queue_name: str) -> None:
        self._ciphers = {key_id(key): AESGCM(key) for key in keys}
        self._queue = queue_name

    def __repr__(self) -> str:
        return f"Sealer({len(self._ciphers)} keys)"

    @property
    def enabled(self) -> bool:
        return bool(self._ciphers)

    def seal(self, kind: str, job_id: str, plain: bytes) -> bytes:
        """``plain`` sealed for ``kind`` of ``job_id``; as it is without keys."""
        if not self._ciphers:
            return plain
        kid, cipher = next(iter(self._ciphers.items()))
        nonce = os.urandom(_NONCE_BYTES)  # random: 2^32 values per key before a repeat matters
        return b"".join((MARK, kid, nonce, cipher.encrypt(nonce, plain, self._bound(kind, job_id))))

    def open(self, kind: str, job_id: str, raw: bytes) -> bytes:
        """``raw`` opened; as it is when it is not sealed (stored in clear, before keys were
        set); :class:`CannotOpen` when it is sealed and no key of ours opens it."""
        if not sealed(raw):
            return raw
        kid = raw[len(MARK) : len(MARK) + _KEY_ID_BYTES]
        cipher = self._ciphers.get(kid)
        if cipher is None:
            held = "no jobs.payload_key_file" if not self._ciphers else "other keys"
            raise CannotOpen(f"it is encrypted with key {kid.hex()}, and this process has {held}")
        nonce = raw[len(MARK) + _KEY_ID_BYTES : _HEAD_BYTES]
        try:
            if len(nonce) != _NONCE_BYTES:  # cut short: AESGCM raised ValueError for its nonce
                raise InvalidTag
            return cipher.decrypt(nonce, raw[_HEAD_BYTES:], self._bound(kind, job_id))
        except InvalidTag:
            raise CannotOpen(
                f"it does not open with key {kid.hex()}: altered, or stored for another job"
            ) from None

    def _bound(self, kind: str, job_id: str) -> bytes:
        return f"faceflow:{self._queue}:{kind}:{job_id}".encode()
