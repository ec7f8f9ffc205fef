"""`faceflow bench URL`: a concurrency sweep against a running faceflow."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from faceflow.cli import stdout
from faceflow.cli.common import (
    escape,
    help_examples,
    make_output_folder,
    print_table,
    read_at_most,
    stderr_console,
)

if TYPE_CHECKING:
    from rich.console import Console

    from faceflow.loadgen.load import StepResult

DEFAULT_SWEEP = (1, 5, 10, 20, 50, 200)
"""The concurrency sweep (faceflow.loadgen.load's default, repeated so --help stays light)."""


def _sweep(value: str) -> list[int]:
    try:
        steps = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter("use comma-separated integers, e.g. 1,5,10") from None
    if not steps or any(step < 1 for step in steps):
        raise typer.BadParameter("every concurrency must be at least 1")
    return steps


def _checked_sweep(value: str) -> str:
    """``--concurrency`` as given, once :func:`_sweep` takes it: checked by the parser, before
    the command makes the ``--plot`` folder or reads a photo (it was checked after both)."""
    _sweep(value)
    return value


MAX_IMAGE_BYTES = 64 * 1024 * 1024
"""The most of a photo ``--image`` reads: more than any server takes by default (10 MiB), with
room for one set higher. ``-i /dev/zero`` read without end, the command's memory growing until
it was killed (a MemoryError traceback under a memory limit)."""


def _read_image(path: Path) -> bytes:
    """The photo's bytes, at most :data:`MAX_IMAGE_BYTES`; a usage error past them or if it cannot
    be read (:func:`~faceflow.cli.common.read_at_most`: a FIFO without a writer hung it)."""
    try:
        data = read_at_most(path, MAX_IMAGE_BYTES)
    except OSError as exc:
        raise typer.BadParameter(
            f"cannot read {path}: {exc.strerror}", param_hint="'--image'"
        ) from None
    if len(data) > MAX_IMAGE_BYTES:
        raise typer.BadParameter(
            f"{path} is over {MAX_IMAGE_BYTES // (1024 * 1024)} MiB: no photo to upload",
            param_hint="'--image'",
        )
    return data


READY_WAIT_S = 120.0
"""How long a sweep waits for a server that is up but not ready yet (models loading)."""


def _reachable(url: str, api_key: str | None, err: Console) -> str:
    """``url`` without its trailing slash, once its server answers ``/readyz`` with 200.

    Checked before the sweep: against a server that is not there, or a URL that is no faceflow,
    every request of every step failed at once and the sweep ran its whole length (a minute by
    default) before a table of transport errors said so. A server still loading its models is
    waited for (``READY_WAIT_S``). Exit 2 with the reason otherwise."""
    import time

    import httpx

    base = url.rstrip("/")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    deadline = time.monotonic() + READY_WAIT_S
    said = False
    while True:
        try:
            answer = httpx.get(f"{base}/readyz", headers=headers, timeout=10.0)
        except httpx.HTTPError as exc:
            err.print(f"[red]cannot reach {escape(base)}:[/red] {escape(exc)}", highlight=False)
            raise typer.Exit(2) from None
        if answer.status_code == 200:
            return base
        if answer.status_code != 503 or time.monotonic() > deadline:
            err.print(
                f"[red]{escape(base)} is not a ready faceflow:[/red] GET /readyz answered"
                f" {answer.status_code}",
                highlight=False,
            )
            raise typer.Exit(2)
        if not said:
            err.print(f"{escape(base)} is loading its models; waiting for /readyz", highlight=False)
            said = True
        time.sleep(0.5)


BENCH_EXAMPLES = help_examples(
    "faceflow bench http://127.0.0.1:8000 -i photo.jpg",
    "faceflow bench http://host:8000 -i a.jpg -i b.jpg --json",
    "faceflow bench http://host:8000 -i a.jpg --hit-ratio 0.9",
    "faceflow bench http://host:8000 -i a.jpg --plot out.png",
)


def bench(
    url: Annotated[
        str,
        typer.Argument(
            metavar="URL", help="base URL of a running faceflow, e.g. http://127.0.0.1:8000"
        ),
    ],
    images: Annotated[
        list[Path],
        typer.Option(
            "--image",
            "-i",
            exists=True,
            dir_okay=False,
            help="photo(s) to upload; repeat the option",
        ),
    ],
    endpoint: Annotated[str, typer.Option(help="path and query to POST to")] = "/v1/analyze",
    concurrency: Annotated[
        str,
        typer.Option(help="comma-separated numbers of concurrent clients", callback=_checked_sweep),
    ] = ",".join(map(str, DEFAULT_SWEEP)),
    duration: Annotated[float, typer.Option(min=0.5, help="seconds per step")] = 10.0,
    requests: Annotated[
        int | None, typer.Option(min=1, help="requests per step instead of a duration")
    ] = None,
    hit_ratio: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="share of requests repeating an already-sent image"),
    ] = 0.0,
    api_key: Annotated[
        str | None, typer.Option(envvar="FACEFLOW_API_KEY", help="sent as Bearer")
    ] = None,
    ignore_retry_after: Annotated[
        bool, typer.Option(help="retry 429/503 at once instead of waiting out Retry-After")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print results as JSON")] = False,
    plot: Annotated[
        Path | None, typer.Option(help="write a PNG of req/s and p99 against clients")
    ] = None,
) -> None:
    """Load a running faceflow with a concurrency sweep and report throughput and latency.

    Misses upload bytes the server has never seen (the same photo with a unique JPEG comment), hits
    repeat a small warmed set. Errors are counted by status and by the error code header.
    """
    import asyncio
    import importlib.util

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    out, err = Console(), stderr_console()
    stdout.check()  # the result is printed there: fail before any work if it is closed
    if plot is not None and importlib.util.find_spec("matplotlib") is None:
        # Checked before the sweep: a long run must not end without the chart it was asked for.
        err.print("--plot needs matplotlib: pip install 'faceflow[loadgen]'", markup=False)
        raise typer.Exit(2)
    if plot is not None:  # made now, or refused now: not found missing after the whole sweep
        make_output_folder(err, plot.parent, "--plot")

    from faceflow.loadgen.load import LoadGenerator, LoadPlan
    from faceflow.loadgen.report import plot_results, results_table

    steps = _sweep(concurrency)
    photos = [_read_image(path) for path in images]
    base = _reachable(url if "://" in url else f"http://{url}", api_key, err)
    plan = LoadPlan(
        url=base + endpoint,
        images=photos,
        hit_ratio=hit_ratio,
        duration_s=None if requests else duration,
        requests_per_step=requests,
        headers={"Authorization": f"Bearer {api_key}"} if api_key else {},
        honor_retry_after=not ignore_retry_after,
    )
    try:
        generator = LoadGenerator(plan)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--image'") from None
    results: list[StepResult] = []

    async def run() -> None:
        await generator.warm()
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed} req"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as progress:
            for clients in steps:
                task = progress.add_task(f"{clients:>4} clients", total=requests)
                results.append(
                    await generator.step(clients, functools.partial(progress.advance, task))
                )
                progress.remove_task(task)

    asyncio.run(run())
    title = f"{plan.url} — hit ratio {hit_ratio:.0%}"
    if as_json:
        out.print_json(
            json.dumps(
                {"url": plan.url, "hit_ratio": hit_ratio, "steps": [r.to_dict() for r in results]}
            )
        )
    else:
        print_table(out, results_table(title, results))
    if plot is not None:
        plot_results(title, results, plot)
        err.print(f"plot written to {escape(plot)}")
