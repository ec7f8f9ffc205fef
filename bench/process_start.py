"""What a faceflow process pays before its first photo, in CPU seconds (issue 13 items 5–6).

    .venv/bin/python bench/process_start.py [--rounds 5] [--before OTHER/src] [--photo PATH]

Three measurements, each in fresh processes, ``--rounds`` times:

* ``analyze one photo``: ``faceflow analyze PHOTO --json`` (the installed command; interpreter,
  imports, settings, its models, the photo): user + system CPU of the command.
* ``inference process, no warm-up`` and ``inference process, warm-up``: one inference process
  of the server's pool (``runtime.operations`` at its default, every operation), spawned by a
  driver as ``faceflow serve`` spawns it, from its start to its ready message: that child's own
  CPU, read from ``/proc`` once it is ready and idle (interpreter, imports, settings, models,
  and with ``runtime.warmup`` the warm-up run).

``--before OTHER/src`` runs each measurement against another checkout's ``src/`` too (on
``PYTHONPATH``), alternating with this one (A B A B, the order reversed every other round), so
both see the machine's slow and fast spells alike; the table gives medians and ranges. CPU
seconds, not wall time: other work on the machine slows wall time far more than CPU time.
Python modules are loaded from their compiled ``.pyc`` files where they exist; run
``python -m compileall -q src`` in both checkouts first if the environment disables writing
them (``PYTHONDONTWRITEBYTECODE``), or each run compiles faceflow's modules again.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
PHOTO = HERE.parent.parent / "shared" / "testdata" / "obama.jpg"
FACEFLOW = Path(sys.executable).with_name("faceflow")
TIMEOUT_S = 300.0

# Spawns one inference process as the server does and prints the CPU seconds it used from its
# start to its ready message (it is idle once ready, so what /proc says then is its start-up).
_DRIVER = """
import asyncio, json, sys
from faceflow.config import Settings
from faceflow.loadgen.procs import cpu_seconds
from faceflow.runtime.context import load_pool_context, warm_up
from faceflow.runtime.pool import InferencePool

async def main(warmup):
    settings = Settings(runtime={"processes": 1, "nice": 0})
    pool = InferencePool(processes=1, max_waiting=1, deadline_s=60.0,
                         init=load_pool_context, init_arg=settings.model_dump_json(),
                         warmup=warm_up if warmup else None)
    await pool.start()
    try:
        await pool.wait_ready(240.0)
        print(json.dumps(cpu_seconds([w.pid for w in pool.workers()])))
    finally:
        await pool.close()

asyncio.run(main(sys.argv[1] == "warm"))
"""


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def analyze_one(env: dict[str, str], photo: Path) -> float:
    """CPU seconds of one ``faceflow analyze PHOTO --json``."""
    before = children_cpu_s()
    subprocess.run(
        [str(FACEFLOW), "analyze", str(photo), "--json"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
        timeout=TIMEOUT_S,
    )
    return children_cpu_s() - before


def inference_process(env: dict[str, str], warmup: bool) -> float:
    """CPU seconds one spawned inference process used from its start to ready."""
    done = subprocess.run(
        [sys.executable, "-c", _DRIVER, "warm" if warmup else "cold"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=TIMEOUT_S,
    )
    return float(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="runs of each measure per checkout")
    parser.add_argument("--before", type=Path, default=None, help="another checkout's src/")
    parser.add_argument("--photo", type=Path, default=PHOTO, help="the photo analysed")
    args = parser.parse_args()
    base = {k: v for k, v in os.environ.items() if not k.upper().startswith("FACEFLOW_")}
    checkouts = {"this": SRC}
    if args.before is not None:
        checkouts["before"] = args.before.resolve()
    measures: dict[str, Callable[[dict[str, str]], float]] = {
        "analyze one photo": functools.partial(analyze_one, photo=args.photo),
        "inference process, no warm-up": functools.partial(inference_process, warmup=False),
        "inference process, warm-up": functools.partial(inference_process, warmup=True),
    }
    found: dict[tuple[str, str], list[float]] = {}
    names = list(checkouts)
    for round_ in range(args.rounds):
        order = names if round_ % 2 == 0 else names[::-1]
        for measure, run in measures.items():
            for name in order:
                env = {**base, "PYTHONPATH": str(checkouts[name])}
                found.setdefault((measure, name), []).append(run(env))
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    table = Table(title=f"CPU seconds before the first photo: median of {args.rounds} (range)")
    table.add_column("measure")
    for name in names:
        table.add_column(f"{name} ({checkouts[name]})", justify="right")
    if len(names) == 2:
        table.add_column("change", justify="right")
    for measure in measures:
        row = [measure]
        medians = []
        for name in names:
            values = found[(measure, name)]
            medians.append(statistics.median(values))
            row.append(f"{medians[-1]:.3f} ({min(values):.3f}–{max(values):.3f})")
        if len(medians) == 2:
            row.append(f"{medians[0] - medians[1]:+.3f} s ({medians[0] / medians[1] - 1:+.0%})")
        table.add_row(*row)
    console = Console(width=150)
    console.print(table)
    console.print(f"load average at the end: {load}; nproc {os.cpu_count()}")


if __name__ == "__main__":
    main()
