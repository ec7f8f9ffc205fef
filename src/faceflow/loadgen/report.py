"""Tables and plots of load-test results."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.table import Table

from faceflow.loadgen.load import StepResult


def results_table(title: str, results: Sequence[StepResult]) -> Table:
    table = Table(title=title)
    columns = ("clients", "req/s", "p50", "p95", "p99", "ok", "errors", "hits")
    rows = [_row(step) for step in results]
    # On a narrow terminal the headers and the errors (codes and counts) wrap; a figure is never
    # cut: each column is at least as wide as its widest figure.
    for index, column in enumerate((*columns, "client CPU")):
        widest = max((len(row[index]) for row in rows), default=0)
        if column == "errors":
            table.add_column(column, justify="right", overflow="fold", min_width=min(widest, 8))
        else:
            table.add_column(column, justify="right", min_width=widest)
    for row in rows:
        table.add_row(*row)
    table.caption = (
        "p50, p95, p99: latency percentiles in ms. hits: the share of answers from the cache. "
        "client CPU: this load generator's own CPU, as a share of one core; on the server's "
        "machine it is CPU the server did not get"
    )
    return table


def _row(step: StepResult) -> list[str]:
    errors = {f"{k}": v for k, v in step.statuses.items() if k != 200}
    errors.update(step.transport_errors)
    codes = ", ".join(f"{code}×{n}" for code, n in step.error_codes.items())
    error_text = ", ".join(f"{k}×{v}" for k, v in errors.items()) or "0"
    if codes:
        error_text += f" ({codes})"
    return [
        str(step.concurrency),
        f"{step.throughput:,.0f}",
        _milliseconds(step.percentile_ms(50)),
        _milliseconds(step.percentile_ms(95)),
        _milliseconds(step.percentile_ms(99)),
        str(step.ok),
        error_text,
        f"{step.hit_ratio:.0%}",
        f"{step.client_cpu_share:.0%}",
    ]


def _milliseconds(value: float) -> str:
    """Tenths below 100 ms, where they tell runs apart; whole milliseconds above."""
    return f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def plot_results(title: str, results: Sequence[StepResult], path: Path) -> None:
    """Throughput and p99 latency against concurrency, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clients = [step.concurrency for step in results]
    figure, left = plt.subplots(figsize=(7, 4), dpi=110)
    left.plot(clients, [s.throughput for s in results], "o-", color="tab:blue", label="req/s")
    left.set_xscale("log")
    left.set_xlabel("concurrent clients")
    left.set_ylabel("successful requests / s", color="tab:blue")
    right = left.twinx()
    right.plot(clients, [s.percentile_ms(99) for s in results], "s--", color="tab:red", label="p99")
    right.set_ylabel("p99 latency (ms)", color="tab:red")
    left.set_title(title)
    left.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
