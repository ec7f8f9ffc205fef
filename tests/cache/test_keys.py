from __future__ import annotations

import json
import re

import pytest
from blake3 import blake3

from faceflow.cache import keys
from faceflow.cache.keys import (
    ParamValue,
    cache_key,
    cache_key_from_hash,
    canonical_params,
    content_hash,
)
from faceflow.models.catalog import model_versions

DATA = b"\xff\xd8\xff\xe0 pretend jpeg bytes"
BASE: dict[str, ParamValue] = {"size": "1in", "dpi": 300, "bg": "#ffffff", "sheet": None}

KEY_FORMAT = re.compile(r"ff1:[a-z0-9_.-]+:[0-9a-f]{64}")


def test_content_hash_is_blake3_hex() -> None:
    assert content_hash(DATA) == blake3(DATA).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", content_hash(b""))


def test_a_key_is_spelled_as_before() -> None:
    """Keys name entries other nodes and older releases wrote (Redis, job ids): the way their
    hex is made may change, the digits may not."""
    versions = "m1"
    prefix = keys.key_prefix("detect", BASE, versions=versions)
    material = json.dumps(
        ["ff1", keys.RESULT_FORMAT, "detect", canonical_params(BASE), versions, content_hash(DATA)],
        separators=(",", ":"),
    )
    expected = f"ff1:detect:{blake3(material.encode('ascii')).hexdigest()}"
    assert keys.key_for_digest(prefix, content_hash(DATA)) == expected
    assert cache_key(DATA, "detect", BASE, versions=versions) == expected


def test_key_format_names_the_operation() -> None:
    key = cache_key(DATA, "id-photo", BASE)
    assert KEY_FORMAT.fullmatch(key)
    assert key.startswith("ff1:id-photo:")


@pytest.mark.parametrize(
    ("params_a", "params_b"),
    [
        pytest.param({"a": 1, "b": "x"}, {"b": "x", "a": 1}, id="key-order"),
        pytest.param({"a": 1, "b": None}, {"a": 1}, id="none-dropped"),
        pytest.param({"dpi": 300.0}, {"dpi": 300}, id="integral-float-is-int"),
        pytest.param({"t": -0.0}, {"t": 0}, id="negative-zero"),
        pytest.param({"r": 0.1 + 0.2}, {"r": 0.30000000000000004}, id="same-float"),
        pytest.param({}, {"x": None}, id="empty"),
    ],
)
def test_equal_params_give_equal_keys(
    params_a: dict[str, ParamValue], params_b: dict[str, ParamValue]
) -> None:
    assert canonical_params(params_a) == canonical_params(params_b)
    assert cache_key(DATA, "analyze", params_a) == cache_key(DATA, "analyze", params_b)


@pytest.mark.parametrize(
    ("data", "operation", "params", "versions"),
    [
        pytest.param(DATA + b"\x00", "id-photo", BASE, None, id="one-byte-more"),
        pytest.param(b"\x00" + DATA[1:], "id-photo", BASE, None, id="first-byte-changed"),
        pytest.param(DATA, "analyze", BASE, None, id="operation"),
        pytest.param(DATA, "id-photo", {**BASE, "dpi": 301}, None, id="int-param"),
        pytest.param(DATA, "id-photo", {**BASE, "dpi": 300.5}, None, id="float-param"),
        pytest.param(DATA, "id-photo", {**BASE, "bg": "#fffffe"}, None, id="str-param"),
        pytest.param(DATA, "id-photo", {**BASE, "sheet": "a4"}, None, id="none-to-value"),
        pytest.param(DATA, "id-photo", {**BASE, "extra": True}, None, id="added-param"),
        pytest.param(DATA, "id-photo", {"size": "1in", "dpi": 300}, None, id="removed-param"),
        pytest.param(DATA, "id-photo", BASE, "yunet@2024:abc", id="model-versions"),
    ],
)
def test_any_change_gives_another_key(
    data: bytes, operation: str, params: dict[str, ParamValue], versions: str | None
) -> None:
    changed = cache_key(data, operation, params, versions=versions)
    assert changed != cache_key(DATA, "id-photo", BASE)


@pytest.mark.parametrize(
    ("params_a", "params_b"),
    [
        pytest.param({"flag": True}, {"flag": 1}, id="bool-vs-int"),
        pytest.param({"flag": False}, {"flag": 0}, id="false-vs-zero"),
        pytest.param({"n": 1}, {"n": "1"}, id="int-vs-str"),
        pytest.param({"a": "b,c"}, {"a": "b", "c": None}, id="no-framing-confusion"),
        pytest.param({"a": "x", "b": "y"}, {"a": 'x","b":"y'}, id="quote-injection"),
    ],
)
def test_distinct_params_stay_distinct(
    params_a: dict[str, ParamValue], params_b: dict[str, ParamValue]
) -> None:
    assert cache_key(DATA, "analyze", params_a) != cache_key(DATA, "analyze", params_b)


def test_default_versions_are_the_catalogs() -> None:
    explicit = cache_key(DATA, "analyze", BASE, versions=model_versions())
    assert cache_key(DATA, "analyze", BASE) == explicit


def test_key_from_hash_matches_key_from_bytes() -> None:
    assert cache_key_from_hash(content_hash(DATA), "detect", BASE) == cache_key(
        DATA, "detect", BASE
    )


def test_canonical_params_is_compact_sorted_json() -> None:
    assert canonical_params({"b": 2, "a": "x", "c": None, "d": 1.5}) == '{"a":"x","b":2,"d":1.5}'


@pytest.mark.parametrize(
    ("params", "error"),
    [
        pytest.param({"x": float("nan")}, ValueError, id="nan"),
        pytest.param({"x": float("inf")}, ValueError, id="inf"),
        pytest.param({"x": [1, 2]}, TypeError, id="list"),
    ],
)
def test_bad_params_are_refused(params: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        cache_key(DATA, "analyze", params)  # type: ignore[arg-type]


@pytest.mark.parametrize("operation", ["", "Analyze", "a:b", "a b", "x" * 65, "-lead"])
def test_bad_operation_names_are_refused(operation: str) -> None:
    with pytest.raises(ValueError, match="operation"):
        cache_key(DATA, operation, {})


def test_a_new_result_format_gives_new_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    before = cache_key(b"image", "analyze", {"a": 1})
    keys._prefix.cache_clear()
    monkeypatch.setattr(keys, "RESULT_FORMAT", keys.RESULT_FORMAT + 1)
    assert cache_key(b"image", "analyze", {"a": 1}) != before
    keys._prefix.cache_clear()
