"""The commands' shared helpers (cli/common.py): writing an output file."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pytest

from faceflow.cli.common import write_output
from faceflow.errors import InvalidParameter


class _StoppedMidWrite(io.BytesIO):
    """An opened output whose write is stopped by ``error`` (a Ctrl-C, a full disk)."""

    def __init__(self, target: Path, error: BaseException) -> None:
        super().__init__()
        # Opened for writing: created or truncated, as open("wb") leaves it (not through
        # Path.open, which the test replaced).
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC))
        self._error = error

    def write(self, _: Any) -> int:
        raise self._error


def stop_writes_to(monkeypatch: pytest.MonkeyPatch, target: Path, error: BaseException) -> None:
    opened = Path.open

    def open_stopped(self: Path, *args: Any, **kwargs: Any) -> Any:
        return _StoppedMidWrite(self, error) if self == target else opened(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", open_stopped)


def test_an_output_whose_write_fails_is_removed_and_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "photo.jpg"
    stop_writes_to(monkeypatch, target, OSError(28, "No space left on device"))

    with pytest.raises(InvalidParameter, match=r"cannot write .*photo\.jpg: No space left"):
        write_output(target, b"\xff\xd8")

    assert not target.exists()


def test_an_output_interrupted_mid_write_is_removed_and_the_interrupt_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Ctrl-C between the open and the end of the write left an empty or partial file.
    target = tmp_path / "photo.jpg"
    stop_writes_to(monkeypatch, target, KeyboardInterrupt())

    with pytest.raises(KeyboardInterrupt):
        write_output(target, b"\xff\xd8")

    assert not target.exists()


def test_an_output_is_written_whole(tmp_path: Path) -> None:
    target = tmp_path / "photo.jpg"

    write_output(target, b"\xff\xd8\xff")

    assert target.read_bytes() == b"\xff\xd8\xff"
