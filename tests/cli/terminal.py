"""What the CLI tests need to see a command's output as a narrow terminal would show it."""

from __future__ import annotations

import re

NARROW_TERMINAL = {"COLUMNS": "80", "TTY_COMPATIBLE": "1", "NO_COLOR": "1"}
"""An 80-column terminal: rich lays tables out for it (TTY_COMPATIBLE makes it treat the test
runner's output as a terminal), without colours to strip."""

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def plain_lines(output: str) -> list[str]:
    """The output's lines without the styles (bold) a terminal still gets under NO_COLOR."""
    return [_ANSI.sub("", line) for line in output.splitlines()]


def table_rows(lines: list[str]) -> dict[str, str]:
    """A rich table's rows by their first cell, each row's lines joined (a row whose cells wrap
    continues on lines whose first cell is empty)."""
    rows: dict[str, str] = {}
    key = ""
    for line in lines:
        if not line.startswith("│"):
            continue
        first = line.split("│")[1].strip()
        key = first or key
        rows[key] = f"{rows.get(key, '')} {line}"
    return rows
