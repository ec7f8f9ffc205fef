"""An HTTP worker's process settings once it has started (service/process.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from faceflow.service.process import settle


@pytest.fixture
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()  # the rest of the test session collects as before


def test_settling_freezes_what_start_up_allocated(unfrozen: None) -> None:
    kept: list[object] = []  # a container: tracked by the collector
    settle()
    # Frozen objects are in no generation: no collection walks them.
    assert gc.get_freeze_count() > 0
    assert not any(o is kept for o in gc.get_objects())
