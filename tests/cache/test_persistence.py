from __future__ import annotations

import pytest

from faceflow.cache.persistence import persistence


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"appendonly": "no", "save": ""}, None),
        ({b"appendonly": b"no", b"save": b""}, None),
        ({}, None),
        ({"appendonly": "yes", "save": ""}, "appendonly yes"),
        ({b"appendonly": b"yes"}, "appendonly yes"),
        ({"appendonly": "no", "save": "3600 1 300 100"}, 'save "3600 1 300 100"'),
        ({"appendonly": "yes", "save": " 60 1 "}, 'appendonly yes, save "60 1"'),
    ],
)
def test_persistence_reads_what_config_get_answers(
    config: dict[object, object], expected: str | None
) -> None:
    assert persistence(config) == expected
