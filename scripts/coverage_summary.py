"""Print line coverage of src/faceflow by package, from a ``coverage json`` report.

    .venv/bin/python scripts/coverage_summary.py artifacts/coverage.json

scripts/test.sh runs it after the suite. ``coverage report`` lists every file; a package's figure
is what tells where the suite is thin. Files directly in ``faceflow/`` are counted as the package
``faceflow``.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path, PurePosixPath
from typing import Any

ROOT_PACKAGE = "faceflow"


def package_of(path: str) -> str:
    """``src/faceflow/service/routes/faces.py`` → ``service``; a top-level module → ``faceflow``."""
    parts = PurePosixPath(path).parts
    below = parts[parts.index(ROOT_PACKAGE) + 1 :]
    return below[0] if len(below) > 1 else ROOT_PACKAGE


def summarise(report: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """Package → (statements, statements run)."""
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for path, measured in report["files"].items():
        summary = measured["summary"]
        counts = totals[package_of(path)]
        counts[0] += summary["num_statements"]
        counts[1] += summary["covered_lines"]
    return {package: (run[0], run[1]) for package, run in sorted(totals.items())}


def _percent(statements: int, run: int) -> str:
    return f"{100 * run / statements:5.1f} %" if statements else "    - "


def main() -> None:
    report = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    print(f"{'coverage of src/faceflow':<26}{'stmts':>7}{'miss':>7}{'cover':>9}")
    for package, (statements, run) in summarise(report).items():
        print(f"  {package:<24}{statements:>7}{statements - run:>7}  {_percent(statements, run)}")
    totals = report["totals"]
    statements, run = totals["num_statements"], totals["covered_lines"]
    print(f"{'TOTAL':<26}{statements:>7}{statements - run:>7}  {_percent(statements, run)}")


if __name__ == "__main__":
    main()
