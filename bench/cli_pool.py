"""`faceflow analyze --workers 1` against `--workers 2` (or any commands), wall clock, run
back to back in interleaved pairs (issue 13 item 6).

    .venv/bin/python bench/cli_pool.py [--sizes 50 154] [--rounds 6] [--variant NAME=COMMAND ...]

The photo sets are built in a temporary folder from every image of ``../shared/testdata`` and
``../shared/devset`` (77), copied in name order and, past 77, copied again under new names, so
a set of 50 is the first 50 and one of 154 all of them twice. Each round runs every variant once
on each set, the order reversed every other round, so the machine's slow and fast spells fall on
all of them alike. Wall seconds and CPU seconds (user + system of the command and every process
it forked) per run; each round's ratio of the first variant's wall time to every other's is
what the table gives the median and range of. On a shared machine the ratio is noisy: read it
with the load average printed beside it.

A variant's COMMAND is a shell-free command line with ``{photos}`` where the folder goes; the
defaults are this checkout's ``faceflow analyze {photos} --workers N --json`` with N = 1 and 2.
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared"
SOURCES = (SHARED / "testdata", SHARED / "devset")
SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif"}
FACEFLOW = Path(sys.executable).with_name("faceflow")
TIMEOUT_S = 600.0


def make_set(root: Path, size: int) -> Path:
    """``size`` photos of the shared sets in ``root/photos{size}``, repeated under new names."""
    photos = [
        path
        for folder in SOURCES
        for path in sorted(folder.iterdir())
        if path.suffix.lower() in SUFFIXES
    ]
    target = root / f"photos{size}"
    target.mkdir()
    for index in range(size):
        source = photos[index % len(photos)]
        shutil.copyfile(source, target / f"{index:04d}_{source.name}")
    return target


def run_once(command: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of ``command`` (its output discarded), the CPU of its children too."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
        timeout=TIMEOUT_S,
    )
    # 1 is the commands' "some files failed" (a photo without one face for id-photo): still a
    # batch worked through; anything else means the command did not run.
    if done.returncode not in (0, 1):
        raise subprocess.CalledProcessError(done.returncode, command)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[50, 154],
        help="photo-set sizes, one or more, each timed with every variant (default: %(default)s)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=6,
        help="rounds, each running every variant once per set (default: %(default)s)",
    )
    parser.add_argument(
        "--variant",
        action="append",
        metavar="NAME=COMMAND",
        help="a command to time, {photos} for the folder; the first is the reference",
    )
    args = parser.parse_args()
    variants = [
        (name, shlex.split(command))
        for name, command in (v.split("=", 1) for v in args.variant or [])
    ] or [
        (
            f"{n} worker{'s' if n > 1 else ''}",
            [str(FACEFLOW), "analyze", "{photos}", "--workers", str(n), "--json"],
        )
        for n in (1, 2)
    ]
    with tempfile.TemporaryDirectory(prefix="cli_pool_") as temporary:
        sets = {size: make_set(Path(temporary), size) for size in args.sizes}
        walls: dict[tuple[int, str], list[float]] = {}
        cpus: dict[tuple[int, str], list[float]] = {}
        loads: list[float] = []
        for round_ in range(args.rounds):
            order = variants if round_ % 2 == 0 else variants[::-1]
            for size, folder in sets.items():
                for name, command in order:
                    loads.append(os.getloadavg()[0])
                    wall, cpu = run_once([part.format(photos=folder) for part in command])
                    walls.setdefault((size, name), []).append(wall)
                    cpus.setdefault((size, name), []).append(cpu)
                    print(
                        f"round {round_ + 1} photos {size} {name}: wall {wall:.2f} s, "
                        f"CPU {cpu:.2f} s, load {loads[-1]:.1f}",
                        flush=True,
                    )
    reference = variants[0][0]
    print(f"\nload average (1 min) {min(loads):.1f}–{max(loads):.1f}, {args.rounds} rounds")
    print("| photos | variant | wall: median (range) | CPU | speed-up: median (range) |")
    print("|---|---|---|---|---|")
    for size in sets:
        for name, _ in variants:
            times = walls[(size, name)]
            ratios = [a / b for a, b in zip(walls[(size, reference)], times, strict=True)]
            print(
                f"| {size} | {name} | {statistics.median(times):.2f} s ({min(times):.2f}–"
                f"{max(times):.2f}) | {statistics.median(cpus[(size, name)]):.2f} s | "
                f"{statistics.median(ratios):.2f}× ({min(ratios):.2f}–{max(ratios):.2f}) |"
            )


if __name__ == "__main__":
    main()
