"""Cache keys: what makes two requests "the same work".

A key covers the exact input bytes (BLAKE3, so nobody can craft a second image whose key collides
with someone else's and read or poison their cached result), the operation, its parameters in a
canonical form, and the versions of every model (a new model never serves an old result). The key
also serves as the job id for identical work, so its format is stable: ``ff1:{operation}:{hex}``,
where ``ff1`` is bumped whenever the way keys are built changes.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from blake3 import blake3

from faceflow.models.catalog import model_versions

KEY_VERSION = "ff1"
RESULT_FORMAT = 9
"""Bumped whenever the code could make a cached answer differently (2: faces gained roll, quality
and ``reliable``; ID-photo checks gained hints. 3: ``face_centred``, the forehead in ``clipped``,
and the checks and thresholds changed since 2 without a bump. 4: the cut-out's soft tail over a
plain wall is keyed away beside skin too; ``banding``. 5: ``forehead_visible``'s
``crown_detail``, ``leftover_backdrop``'s ``head_notch``. 6: what changed since 5 without a
bump (``face_occluded``'s covered chin and colour patch among it), ``motion_blur``'s double
image, no band invented above a head the photo cuts and no fade below a body it cuts, a photo
saved on its side turned upright before its cut-out, PNGs whose compressed text made them
undecodable). 7: ID photos and sheets saved in full colour (4:4:4 JPEG), a face number past
the faces detection keeps said so, a smooth black cloth over the chin warned. 8: a sheet's
photo of another DPI (China's ID card, custom sizes) rendered at the sheet's 300 dpi, not
resized; ``exposure`` warns a dim face (its brightest 2 % under 120); ``mouth_closed`` sees
lips parted over a smile's teeth or below its corners. 9: ``clothing_contrast`` warns a cut-out
that kept a neck where the photo shows shoulders (a top the wall's colour cut away with it), on
transparent photos too. So no node serves an answer an older faceflow made.
tests/cache/test_result_format.py pins it beside a fingerprint of the code that makes answers,
so that no change to that code leaves it by mistake."""

CUTOUT_OPERATION = "matte"
"""The operation of an ID photo's cut-out, cached apart from the photos rendered from it."""
CUTOUT_KEY_PREFIX = f"{KEY_VERSION}:{CUTOUT_OPERATION}:"
"""How every cut-out's key begins: the in-process cache keeps them in a part of their own."""

ParamValue = str | int | float | bool | None

_OPERATION = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


def content_hash(data: bytes | memoryview) -> str:
    """BLAKE3 of ``data`` as 64 lowercase hex digits.

    ``digest().hex()``, not ``hexdigest()``: the same digits, but the blake3 package builds its
    hex string through Rust's character iterator (``timeit``: 1.1 µs a call against 0.6 µs for
    the bytes and ``bytes.hex``), twice per cache hit (here and in :func:`key_for_digest`)."""
    return blake3(data).digest().hex()


def canonical_params(params: Mapping[str, ParamValue]) -> str:
    """Parameters as compact JSON with sorted keys, so equal parameters give equal text.

    ``None`` values are dropped (an absent option and an explicit ``None`` mean the same default).
    Floats are normalised: an integral float becomes an int (``300.0`` ≡ ``300``) and ``-0.0``
    becomes ``0``; other floats keep their shortest round-trip form. ``True`` stays distinct from
    ``1``. Raises ``ValueError`` for NaN/infinity and ``TypeError`` for a non-scalar value: both
    are programming errors, since the service validates parameters before building a key.
    """
    clean: dict[str, str | int | float | bool] = {}
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool | str):
            clean[name] = value
        elif isinstance(value, int):
            clean[name] = int(value)
        elif isinstance(value, float):
            clean[name] = _normalise_float(name, value)
        else:
            raise TypeError(f"cache key parameter {name!r} must be a JSON scalar, not {value!r}")
    return json.dumps(clean, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def cache_key(
    data: bytes,
    operation: str,
    params: Mapping[str, ParamValue],
    *,
    versions: str | None = None,
) -> str:
    """The cache key of running ``operation`` with ``params`` on ``data``.

    ``versions`` defaults to :func:`faceflow.models.catalog.model_versions`; pass it only to pin a
    different model set. ``operation`` must be a short lowercase name (``analyze``, ``id-photo``);
    anything else raises ``ValueError``.
    """
    return cache_key_from_hash(content_hash(data), operation, params, versions=versions)


def cache_key_from_hash(
    digest: str,
    operation: str,
    params: Mapping[str, ParamValue],
    *,
    versions: str | None = None,
) -> str:
    """Like :func:`cache_key` for input bytes whose :func:`content_hash` is already known."""
    return key_for_digest(key_prefix(operation, params, versions=versions), digest)


def key_prefix(
    operation: str, params: Mapping[str, ParamValue], *, versions: str | None = None
) -> KeyPrefix:
    """Everything of a key but the content hash, to build many keys for the same options fast."""
    if not _OPERATION.fullmatch(operation):
        raise ValueError(f"operation {operation!r} is not a short lowercase name")
    return _prefix(
        operation, canonical_params(params), model_versions() if versions is None else versions
    )


@dataclass(frozen=True, slots=True)
class KeyPrefix:
    """A key's operation and its JSON material up to the content hash (:func:`key_for_digest`)."""

    operation: str
    material: str


@functools.lru_cache(maxsize=4096)
def _prefix(operation: str, canonical: str, versions: str) -> KeyPrefix:
    # A JSON array frames every part unambiguously: no choice of parameters can make
    # (operation, params) collide with a different (operation, params) pair. The digest is last,
    # so the array's text up to it is shared by every key with these options.
    material = json.dumps(
        [KEY_VERSION, RESULT_FORMAT, operation, canonical, versions, ""],
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return KeyPrefix(operation, material[: -len('""]')])


def key_for_digest(prefix: KeyPrefix, digest: str) -> str:
    """The key for content hash ``digest`` (hex, so it needs no JSON escaping) under ``prefix``."""
    material = f'{prefix.material}"{digest}"]'
    return f"{KEY_VERSION}:{prefix.operation}:{blake3(material.encode('ascii')).digest().hex()}"


def _normalise_float(name: str, value: float) -> int | float:
    if not math.isfinite(value):
        raise ValueError(f"cache key parameter {name!r} must be finite, not {value!r}")
    if value.is_integer():
        return int(value)
    return value
