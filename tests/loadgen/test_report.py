"""The results table and plot of a sweep."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

from PIL import Image
from rich.console import Console

from faceflow.loadgen.load import StepResult
from faceflow.loadgen.report import plot_results, results_table


def step(concurrency: int, ok: int, refused: int) -> StepResult:
    return StepResult(
        concurrency=concurrency,
        seconds=2.0,
        latencies_s=[0.010 * (i + 1) for i in range(ok + refused)],
        statuses=Counter({200: ok, 503: refused} if refused else {200: ok}),
        error_codes=Counter({"overloaded": refused} if refused else {}),
        cache_hits=ok,
        cache_misses=refused,
        client_cpu_s=0.5,
    )


def rendered(results: list[StepResult], width: int = 200) -> str:
    console = Console(width=width, record=True)
    console.print(results_table("sweep", results))
    return console.export_text()


def test_the_table_has_a_row_per_step_with_its_figures() -> None:
    text = rendered([step(1, 10, 0), step(200, 40, 6)])

    rows = [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in text.splitlines()
        if line.startswith("│")
    ]
    # clients, req/s, p50, p95, p99, ok, errors, hit ratio, client CPU (0.5 s in a 2 s step)
    assert rows == [
        ["1", "5", "55.0", "95.5", "99.1", "10", "0", "100%", "25%"],
        ["200", "20", "235", "438", "455", "40", "503×6 (overloaded×6)", "87%", "25%"],
    ]
    assert "client CPU" in text


def test_on_an_80_column_terminal_no_figure_is_cut_and_the_errors_wrap() -> None:
    # A long step of a fast server refusing some: six-figure counts, latencies past a second.
    long_step = dataclasses.replace(step(200, 0, 0), seconds=30.0)
    long_step.latencies_s.extend(0.001 * (i % 1500) for i in range(360_000))
    long_step.statuses.update({200: 350_000, 503: 10_000})
    long_step.error_codes.update({"overloaded": 10_000})
    text = rendered([step(1, 10, 0), long_step], width=80)

    lines = [line for line in text.splitlines() if line.startswith("│")]
    assert all(len(line) == len(lines[0]) <= 80 and line.endswith("│") for line in lines)
    cells = [[cell.strip() for cell in line.split("│")[1:-1]] for line in lines]
    assert cells[0] == ["1", "5", "55.0", "95.5", "99.1", "10", "0", "100%", "25%"]
    assert cells[1][:6] == ["200", "11,667", "750", "1,424", "1,484", "350000"]
    assert "".join(row[6] for row in cells[1:]).replace(" ", "") == "503×10000(overloaded×10000)"


def test_the_plot_is_a_png(tmp_path: Path) -> None:
    path = tmp_path / "sweep.png"

    plot_results("sweep", [step(1, 10, 0), step(5, 30, 2)], path)

    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width > 300
