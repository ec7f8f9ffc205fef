"""What each pipeline stage costs on one thread, and how close `faceflow analyze --workers N`
gets to the compute ceiling, on this machine.

    .venv/bin/python bench/stages.py [--repeats 7] [--rounds 6] [--trials 3] [--json]

Two measurements, on every photo in the shared test folder (``../shared/testdata``, or
``FACEFLOW_TESTDATA``):

* stages: decode (as ``analyze`` decodes: JPEG draft to ≥ 1280 px), detect, align (both chip
  sizes), age, gender, and the whole CLI task (``analyze_file``: all of the above plus bookkeeping),
  each the median of ``--repeats`` runs in this process on one thread (onnxruntime's
  ``intra_op_threads`` = 1 and ``cv2.setNumThreads(1)``);
* CLI: the photos, ``--rounds`` times over, through :func:`faceflow.cli.files.run_files` with the
  ``analyze`` task, exactly as ``faceflow analyze --workers N`` runs them (N = 1 in this process,
  N > 1 in a pool of spawned processes). Its rate counts from the N-th finished image to the
  last, so spawning and model loading are not in it (they are reported as start-up). Its ceiling
  is min(N, cores) × the single-thread rate of the whole task over the photos, measured in this
  process just before, so that both see about the same background load. Each N is measured
  ``--trials`` times; the table shows medians, and the range of single trials' ratios.

Other processes on the machine share its cores: the load average before and after is printed,
and the spread of the trials shows how much it moved the figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
from rich.console import Console
from rich.table import Table

from faceflow.cli.common import IMAGE_SUFFIXES
from faceflow.cli.files import FileOutcome, only, run_files
from faceflow.config import Settings, load_settings
from faceflow.domain import Attribute, Operation
from faceflow.imaging.ingest import decode_image
from faceflow.pipeline.detect import detect_faces
from faceflow.pipeline.detect_options import DetectOptions
from faceflow.runtime.context import WorkerContext, load_context, warm_up
from faceflow.runtime.tasks import (
    ANALYZE_DECODE_PX,
    FaceRequest,
    FileAnalysis,
    analyze_file,
)

DEFAULT_TESTDATA = Path(__file__).resolve().parents[2] / "shared" / "testdata"
STAGES = ("decode", "detect", "align", "age", "gender")
ATTRIBUTES = (Attribute.AGE, Attribute.GENDER)


@dataclass(frozen=True, slots=True)
class PhotoStages:
    """Median milliseconds per stage for one photo; ``task_ms`` is the whole CLI task."""

    photo: str
    width_px: int
    height_px: int
    faces: int
    decode_ms: float
    detect_ms: float
    align_ms: float
    age_ms: float
    gender_ms: float
    task_ms: float
    task_cpu_ms: float
    """CPU time of the whole task: unlike wall time, hardly moved by other processes."""


@dataclass(frozen=True, slots=True)
class CliTrial:
    images_per_s: float
    """Steady rate: from the ``workers``-th finished image to the last."""
    ceiling_images_per_s: float
    """min(workers, cores) × the single-thread rate measured just before this trial."""
    startup_s: float
    """From the start to the first finished image: spawning, imports, model loading."""
    wall_s: float
    failed: int

    @property
    def of_ceiling(self) -> float:
        return self.images_per_s / self.ceiling_images_per_s


@dataclass(frozen=True, slots=True)
class CliRun:
    """Every trial of one pool size."""

    workers: int
    images: int
    trials: list[CliTrial]

    def median(self, value: Callable[[CliTrial], float]) -> float:
        return statistics.median(value(trial) for trial in self.trials)

    def summary(self) -> dict[str, Any]:
        """Medians over the trials; ``of_ceiling`` is the ratio of the two medians, and its
        range the lowest and highest ratio of a single trial."""
        rate = self.median(lambda t: t.images_per_s)
        ceiling = self.median(lambda t: t.ceiling_images_per_s)
        ratios = [trial.of_ceiling for trial in self.trials]
        return {
            "workers": self.workers,
            "images": self.images,
            "images_per_s": round(rate, 2),
            "ceiling_images_per_s": round(ceiling, 2),
            "of_ceiling": round(rate / ceiling, 3),
            "of_ceiling_min": round(min(ratios), 3),
            "of_ceiling_max": round(max(ratios), 3),
            "startup_s": round(self.median(lambda t: t.startup_s), 2),
            "failed": sum(trial.failed for trial in self.trials),
        }


@dataclass(frozen=True, slots=True)
class Report:
    machine: dict[str, str | int | float]
    stages: list[PhotoStages]
    single_thread_images_per_s: float
    """From the stage table: photos / the sum of their median whole-task times."""
    cli: list[CliRun]


def median_ms(
    run: Callable[[], object], repeats: int, clock: Callable[[], float] = time.perf_counter
) -> float:
    samples = []
    for _ in range(repeats):
        start = clock()
        run()
        samples.append((clock() - start) * 1000)
    return statistics.median(samples)


def measure_photo(context: WorkerContext, path: Path, repeats: int) -> PhotoStages:
    """Each stage of ``analyze`` on one photo, timed in isolation on its own inputs."""
    data = path.read_bytes()
    limits, models, options = context.settings.limits, context.models, context.detect_defaults
    image = decode_image(data, limits, max_long_side_px=ANALYZE_DECODE_PX)
    faces = detect_faces(image.rgb, models.detector, options, source_scale=image.scale)
    landmarks = [face.landmarks.scaled(1.0 / image.scale) for face in faces]
    sizes = [models.age.chip_px, models.gender.chip_px]
    chips = models.aligner.chips(image.rgb, landmarks, sizes)
    request = FaceRequest(data, Operation.ANALYZE, options, ATTRIBUTES)
    return PhotoStages(
        photo=path.name,
        width_px=image.source_width_px,
        height_px=image.source_height_px,
        faces=len(faces),
        decode_ms=median_ms(
            lambda: decode_image(data, limits, max_long_side_px=ANALYZE_DECODE_PX), repeats
        ),
        detect_ms=median_ms(
            lambda: detect_faces(image.rgb, models.detector, options, source_scale=image.scale),
            repeats,
        ),
        align_ms=median_ms(lambda: models.aligner.chips(image.rgb, landmarks, sizes), repeats),
        age_ms=median_ms(lambda: models.age.predict(chips[models.age.chip_px]), repeats),
        gender_ms=median_ms(lambda: models.gender.predict(chips[models.gender.chip_px]), repeats),
        task_ms=median_ms(lambda: analyze_file(context, request), repeats),
        # One thread does all the work (intra_op_threads = 1), so its CPU time is the task's.
        task_cpu_ms=median_ms(lambda: analyze_file(context, request), repeats, time.thread_time),
    )


def single_thread_rate(context: WorkerContext, paths: list[Path]) -> float:
    """Images per second running the whole ``analyze`` task on ``paths`` one after another."""
    requests = [
        FaceRequest(p.read_bytes(), Operation.ANALYZE, context.detect_defaults, ATTRIBUTES)
        for p in paths
    ]
    start = time.perf_counter()
    for request in requests:
        analyze_file(context, request)
    return len(requests) / (time.perf_counter() - start)


def cli_trial(settings: Settings, paths: list[Path], workers: int, ceiling: float) -> CliTrial:
    """``paths`` through the CLI's file runner with ``workers`` processes, once."""
    finished: list[float] = []
    failed = 0

    def done(outcome: FileOutcome[FileAnalysis]) -> None:
        nonlocal failed
        finished.append(time.perf_counter())
        failed += outcome.error is not None

    options = DetectOptions.from_settings(settings.detection)  # as `faceflow analyze` does
    base = FaceRequest(b"", Operation.ANALYZE, options, ATTRIBUTES)
    start = time.perf_counter()
    run_files(
        only(settings, Operation.ANALYZE),  # as `faceflow analyze` does: no u2netp loaded
        paths,
        lambda data: dataclasses.replace(base, data=data),
        analyze_file,
        workers,
        done,
    )
    end = time.perf_counter()
    steady = finished[workers - 1 :]
    rate = (len(steady) - 1) / (steady[-1] - steady[0]) if len(steady) > 1 else 0.0
    return CliTrial(
        images_per_s=rate,
        ceiling_images_per_s=ceiling,
        startup_s=finished[0] - start if finished else end - start,
        wall_s=end - start,
        failed=failed,
    )


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo where there is one (Linux), else the architecture."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.machine()


def photos_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def run(testdata: Path, repeats: int, rounds: int, trials: int, pool_sizes: list[int]) -> Report:
    settings = load_settings(models={"intra_op_threads": 1})
    cv2.setNumThreads(1)
    photos = photos_in(testdata)
    if not photos:
        raise SystemExit(f"no photos in {testdata}")
    cores = os.cpu_count() or 1
    load_before = os.getloadavg()[0]
    context = load_context(settings.model_dump_json())
    warm_up(context)
    stages = [measure_photo(context, path, repeats) for path in photos]
    single_thread = len(stages) / (sum(s.task_ms for s in stages) / 1000)
    cli = []
    for workers in pool_sizes:
        runs = []
        for _ in range(trials):
            ceiling = min(workers, cores) * single_thread_rate(context, photos * 2)
            runs.append(cli_trial(settings, photos * rounds, workers, ceiling))
        cli.append(CliRun(workers, len(photos) * rounds, runs))
    machine: dict[str, str | int | float] = {
        "cores": cores,
        "cpu": cpu_name(),
        "python": platform.python_version(),
        "load_avg_1m_before": round(load_before, 2),
        "load_avg_1m_after": round(os.getloadavg()[0], 2),
        "repeats": repeats,
        "trials": trials,
    }
    return Report(machine, stages, single_thread, cli)


def stages_table(report: Report) -> Table:
    table = Table(title="single thread, median ms per photo (analyze: decode to ≥ 1280 px)")
    table.add_column("photo")
    table.add_column("size", justify="right")
    table.add_column("faces", justify="right")
    for column in (*STAGES, "whole task", "task CPU"):
        table.add_column(column, justify="right")
    for s in report.stages:
        table.add_row(
            s.photo,
            f"{s.width_px}×{s.height_px}",
            str(s.faces),
            *(f"{v:.1f}" for v in (s.decode_ms, s.detect_ms, s.align_ms, s.age_ms, s.gender_ms)),
            f"{s.task_ms:.1f}",
            f"{s.task_cpu_ms:.1f}",
        )
    rate = report.single_thread_images_per_s
    cpu_rate = len(report.stages) / (sum(s.task_cpu_ms for s in report.stages) / 1000)
    table.caption = (
        f"single-thread rate over these photos: {rate:.1f} images/s by wall time, "
        f"{cpu_rate:.1f} images/s by CPU time (what one idle core would do)"
    )
    return table


def cli_table(report: Report) -> Table:
    m = report.machine
    table = Table(
        title=f"faceflow analyze --workers N (run_files): medians of {m['trials']} trials, "
        f"{m['cores']} cores ({m['cpu']})"
    )
    columns = ("workers", "images", "images/s", "ceiling", "of ceiling", "range", "start-up s")
    for column in columns:
        table.add_column(column, justify="right")
    for run_ in report.cli:
        s = run_.summary()
        table.add_row(
            str(s["workers"]),
            str(s["images"]),
            f"{s['images_per_s']:.1f}",
            f"{s['ceiling_images_per_s']:.1f}",
            f"{s['of_ceiling']:.0%}",
            f"{s['of_ceiling_min']:.0%}–{s['of_ceiling_max']:.0%}",
            f"{s['startup_s']:.1f}",
        )
    failed = sum(run_.summary()["failed"] for run_ in report.cli)
    table.caption = (
        "ceiling = min(workers, cores) × single-thread rate measured just before each trial; "
        f"failed images: {failed}; load average (1 min) {m['load_avg_1m_before']} before, "
        f"{m['load_avg_1m_after']} after"
    )
    return table


def as_json(report: Report) -> str:
    document = asdict(report)
    document["cli"] = [
        {**run_.summary(), "trials": [asdict(t) for t in run_.trials]} for run_ in report.cli
    ]
    return json.dumps(document, indent=2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--testdata", type=Path, default=None, help="folder of photos")
    parser.add_argument("--repeats", type=int, default=7, help="runs per stage per photo")
    parser.add_argument("--rounds", type=int, default=6, help="passes over the photos per trial")
    parser.add_argument("--trials", type=int, default=3, help="CLI runs per pool size")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="pool sizes")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = parser.parse_args(argv)
    testdata = args.testdata or Path(os.environ.get("FACEFLOW_TESTDATA", DEFAULT_TESTDATA))
    report = run(testdata, args.repeats, args.rounds, args.trials, args.workers)
    if args.json:
        sys.stdout.write(as_json(report) + "\n")
        return
    # Wide enough for the tables even when piped (rich assumes 80 columns then).
    console = Console(width=max(Console().width, 120))
    console.print(stages_table(report))
    console.print(cli_table(report))


if __name__ == "__main__":
    main()
