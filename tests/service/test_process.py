"""An HTTP worker's process settings once it has started (service/process.py)."""

from __future__ import annotations

import gc
import platform
from collections.abc import Iterator

import pytest

from faceflow.service.process import keep_heap, settle


@pytest.fixture
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()  # the rest of the test session collects as before


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_takes_the_heap_thresholds() -> None:
    assert keep_heap()


def test_settling_freezes_what_start_up_allocated(unfrozen: None) -> None:
    kept: list[object] = []  # a container: tracked by the collector
    settle()
    # Frozen objects are in no generation: no collection walks them.
    assert gc.get_freeze_count() > 0
    assert not any(o is kept for o in gc.get_objects())
