"""Pieces every CLI command shares.

The CLI imports only typer and rich at start-up; every command imports what it uses (settings,
the ONNX stack, OpenCV, FastAPI, Redis) when it runs, so ``faceflow --help`` and the listing
commands start in a fraction of a second.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from rich.progress import Progress

    from faceflow.config import Settings

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="YAML or TOML settings file (env: FACEFLOW_CONFIG)",
        exists=True,
        dir_okay=False,
    ),
]


def settings_from(config: Path | None) -> Settings:
    """Settings from the file (if any) and the environment; exits readably if they are invalid."""
    from pydantic import ValidationError

    from faceflow.config import load_settings
    from faceflow.errors import FaceflowError

    try:
        return load_settings(config)
    except (ValidationError, FaceflowError) as exc:
        Console(stderr=True).print(f"[red]invalid settings:[/red] {exc}")
        raise typer.Exit(2) from None


def setup_logging(level: str = "info") -> None:
    from rich.logging import RichHandler

    logging.basicConfig(
        level=level.upper(),
        format="%(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False)],
    )


class OutputNames:
    """Output stems that never collide within one run (a/x.jpg and b/x.png → x, x-2)."""

    def __init__(self) -> None:
        self._used: set[str] = set()

    def unique(self, stem: str) -> str:
        candidate, serial = stem, 1
        while candidate in self._used:
            serial += 1
            candidate = f"{stem}-{serial}"
        self._used.add(candidate)
        return candidate


def print_table(console: Console, table: object) -> None:
    """Print a table at the terminal's width, or wide enough to stay readable when piped."""
    console.print(table, width=None if console.is_terminal else max(console.width, 200))


def file_progress(console: Console, files: int) -> Progress:
    """The progress bar of a command working through files (hidden for a single file)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=files < 2,
    )
