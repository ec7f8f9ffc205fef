"""ID photos per second through the service against the compute ceiling, and recolouring a cached
upload against its first request, on this machine.

    .venv/bin/python bench/idphoto.py [--url URL] [--processes 2] [--concurrency 2 3 4]
        [--requests 24] [--repeats 7] [--spec cn-1inch] [--photos NAME ...] [--json]

Without ``--url`` it starts ``faceflow serve --processes N`` on a free loopback port (models
pulled, default settings otherwise) and stops it by PID at the end. Three measurements:

* ceiling: this process runs what one ID photo costs (decode, detect, u2netp matte, render and
  encode: the service's ``matte_task`` and ``render_task``) on the photos one at a time with one
  thread (onnxruntime's ``intra_op_threads`` = 1, ``cv2.setNumThreads(1)``, as the service's
  inference processes run), ``--rounds`` passes just before each step while the server is
  idle; the ceiling for the service is that rate × its inference processes. CPU time per
  photo, here and in the server's processes (from /proc, for a server started here), shows the
  service's overhead apart from the load;
* throughput: ``--requests`` never-seen uploads per concurrency step (the photos with a unique JPEG
  comment each, :func:`faceflow.loadgen.load.unique_variant`: new cache keys, same pixels, so every
  request runs detection, the matte and the render), counted from the first request's start to
  the last answer; a client refused with 503 waits out ``Retry-After`` and sends the upload again;
* recolour: ``--repeats`` times, one request for a never-seen upload, then the same upload on
  another background (the matte comes from the cache: only the render runs), then the first
  request again (a cache hit); medians of each, one request at a time.

The ceiling's photos are also run stage by stage (``--rounds`` passes, CPU time, medians per
photo), to show where an ID photo's CPU goes: decode, detect, the u2netp call, the refinement
around it (guided filter, one-person selection, backdrop model and re-keying, hole filling,
foreground colours), serialising the cut-out, and the render. The cut-out (decode to serialised
matte, what ``rembg remove`` does for a photo) is split into the u2netp call and the rest;
``--split-only`` prints only this table.

This script re-runs itself under the inference processes' glibc malloc tunables
(:data:`faceflow.runtime.pool.CHILD_GLIBC_TUNABLES`: transparent huge pages for mapped blocks),
so the ceiling and the split cost what they cost in the service's processes: without them, every
large temporary array of the refinement and of u2netp is faulted in by 4 KB pages, which made
the refinement 10–30 % dearer than in the service.

The machine is shared: the load average before and after is printed with the tables.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import httpx
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

from faceflow.config import load_settings
from faceflow.imaging.ingest import decode_image
from faceflow.loadgen.load import unique_variant, wait_retry_after
from faceflow.loadgen.procs import ServiceProcess, cpu_seconds, load_average, process_tree
from faceflow.pipeline.detect import detect_faces
from faceflow.pipeline.idphoto.matte import Segmenter, compute_matte, matte_to_bytes
from faceflow.pipeline.idphoto.options import IdPhotoOptions
from faceflow.pipeline.idphoto.render import render_id_photo, single_face
from faceflow.pipeline.idphoto.specs import get_spec
from faceflow.runtime.context import WorkerContext, load_context, warm_up
from faceflow.runtime.idphoto_tasks import (
    MATTE_DECODE_PX,
    MatteRequest,
    RenderRequest,
    matte_task,
    render_task,
)
from faceflow.runtime.pool import CHILD_GLIBC_TUNABLES, child_glibc_tunables

DEFAULT_TESTDATA = Path(__file__).resolve().parents[2] / "shared" / "testdata"
DEFAULT_PHOTOS = ("portrait_1.jpg", "portrait_2.jpg", "obama.jpg")
REQUEST_TIMEOUT_S = 120.0
MAX_ATTEMPTS = 20
"""Sends of one upload refused with 503 before the client gives up on it."""


@dataclass(frozen=True, slots=True)
class Ceiling:
    images: int
    single_thread_per_s: float
    median_ms: float
    cpu_ms: float
    """CPU time per photo in this process (median)."""
    processes: int

    @property
    def per_s(self) -> float:
        return self.single_thread_per_s * self.processes


@dataclass(frozen=True, slots=True)
class Step:
    concurrency: int
    requests: int
    ok: int
    refused: int
    """503s waited out (each upload is sent again after Retry-After)."""
    misses: int
    seconds: float
    p50_ms: float
    p95_ms: float
    ceiling: Ceiling
    """Measured just before this step, so both see about the same load on the machine."""
    cpu_ms: float | None
    """CPU time of the server's processes per photo (only for a server started here)."""
    statuses: dict[str, int]

    @property
    def per_s(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Recolour:
    repeats: int
    first_ms: float
    recolour_ms: float
    hit_ms: float
    matte_runs: float
    """matte_task runs the server counted over the whole measurement (should equal repeats)."""
    render_runs: float


SPLIT_STAGES = ("decode", "detect", "u2netp", "refine", "serialise", "render")


@dataclass(frozen=True, slots=True)
class Split:
    """Median CPU ms per stage of one ID photo, per photo name."""

    stages: dict[str, dict[str, float]]

    @staticmethod
    def cut_out_ms(stages: dict[str, float]) -> float:
        return sum(stages[k] for k in ("decode", "detect", "u2netp", "refine", "serialise"))


class TimedSegmenter:
    """The segmenter with its calls' CPU time added up (the u2netp stage)."""

    def __init__(self, segmenter: Segmenter) -> None:
        self.segmenter = segmenter
        self.cpu_s = 0.0

    def predict(self, rgb_crop: Any) -> Any:
        start = time.process_time()
        try:
            return self.segmenter.predict(rgb_crop)
        finally:
            self.cpu_s += time.process_time() - start


def measure_split(
    context: WorkerContext, photos: dict[str, bytes], options: IdPhotoOptions, rounds: int
) -> Split:
    """Each photo ``rounds`` times through the ID-photo stages, CPU time per stage."""
    stages: dict[str, dict[str, float]] = {}
    for name, data in photos.items():
        runs: dict[str, list[float]] = {k: [] for k in SPLIT_STAGES}
        for _ in range(rounds + 1):  # the first run touches this size's buffers: not counted
            segmenter = TimedSegmenter(context.models.segmenter)
            marks = [time.process_time()]
            image = decode_image(data, context.settings.limits, max_long_side_px=MATTE_DECODE_PX)
            marks.append(time.process_time())
            faces = detect_faces(
                image.rgb,
                context.models.detector,
                context.detect_defaults,
                source_scale=image.scale,
            )
            face = single_face(faces)
            marks.append(time.process_time())
            matte = compute_matte(image.rgb, face, segmenter, source_scale=image.scale)
            marks.append(time.process_time())
            matte_to_bytes(matte)
            marks.append(time.process_time())
            render_id_photo(matte, face, options)
            marks.append(time.process_time())
            cpu = [(b - a) * 1000 for a, b in itertools.pairwise(marks)]
            model = segmenter.cpu_s * 1000
            values = (cpu[0], cpu[1], model, cpu[2] - model, cpu[3], cpu[4])
            for key, value in zip(SPLIT_STAGES, values, strict=True):
                runs[key].append(value)
        stages[name] = {k: statistics.median(v[1:]) for k, v in runs.items()}
    return Split(stages)


def print_split(split: Split, console: Console) -> None:
    table = Table(title="Where one ID photo's CPU goes (ms, medians, one thread)")
    for column in ("photo", *SPLIT_STAGES, "cut-out", "beyond u2netp"):
        table.add_column(column, justify="right")
    for name, stages in split.stages.items():
        cut_out = Split.cut_out_ms(stages)
        beyond = cut_out - stages["u2netp"]
        table.add_row(
            name,
            *(f"{stages[k]:.0f}" for k in SPLIT_STAGES),
            f"{cut_out:.0f}",
            f"{beyond:.0f} ({beyond / cut_out:.0%})",
        )
    console.print(table)


@dataclass(frozen=True, slots=True)
class Report:
    command: str
    machine: dict[str, Any]
    url: str
    spec: str
    photos: list[str]
    ceiling: Ceiling
    steps: list[Step]
    recolour: Recolour
    split: Split


class CeilingMeter:
    """One ID photo at a time in this process with one thread: the service's work per photo."""

    def __init__(self, photos: list[bytes], spec: str, processes: int) -> None:
        settings = load_settings(models={"intra_op_threads": 1})
        cv2.setNumThreads(1)
        self.context = load_context(settings.model_dump_json())
        warm_up(self.context)
        self.photos = photos
        self.options = IdPhotoOptions(get_spec(spec))
        self.processes = processes
        self.seconds: list[float] = []
        self.cpu_seconds: list[float] = []
        for data in photos:  # first touches of each image size
            self.one(data)

    def one(self, data: bytes) -> None:
        """What the service does for a never-seen upload: the matte for every preset (the CLI's
        ``id_photo_file`` refines for one preset only), then the photo rendered from it."""
        matte = matte_task(self.context, MatteRequest(data))
        render_task(self.context, RenderRequest(matte.body, self.options))

    def measure(self, rounds: int) -> Ceiling:
        """``rounds`` passes over the photos, now; also kept for :meth:`overall`."""
        seconds, cpu = [], []
        for _ in range(rounds):
            for data in self.photos:
                start, start_cpu = time.perf_counter(), time.process_time()
                self.one(data)
                seconds.append(time.perf_counter() - start)
                cpu.append(time.process_time() - start_cpu)
        self.seconds += seconds
        self.cpu_seconds += cpu
        return self._ceiling(seconds, cpu)

    def overall(self) -> Ceiling:
        return self._ceiling(self.seconds, self.cpu_seconds)

    def _ceiling(self, seconds: list[float], cpu: list[float]) -> Ceiling:
        return Ceiling(
            images=len(seconds),
            single_thread_per_s=len(seconds) / sum(seconds),
            median_ms=statistics.median(seconds) * 1000,
            cpu_ms=statistics.median(cpu) * 1000,
            processes=self.processes,
        )


def percentile_ms(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] * 1000


async def run_step(
    base: str,
    server_pid: int | None,
    spec: str,
    photos: list[bytes],
    concurrency: int,
    requests: int,
    serial: int,
    ceiling: Ceiling,
) -> Step:
    """``requests`` never-seen uploads, ``concurrency`` clients at a time, back to back. A client
    refused with 503 waits out ``Retry-After`` and sends the same upload again, as a
    well-behaved client does, so every upload is eventually answered."""
    bodies = [unique_variant(photos[i % len(photos)], serial + i) for i in range(requests)]
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    misses = 0
    ends: list[float] = []

    async def client_loop() -> None:
        nonlocal misses
        async with httpx.AsyncClient(base_url=base, timeout=REQUEST_TIMEOUT_S) as client:
            while not queue.empty():
                body = queue.get_nowait()
                for _ in range(MAX_ATTEMPTS):
                    sent = time.perf_counter()
                    try:
                        response = await client.post(
                            "/v1/id-photo", params={"spec": spec}, content=body
                        )
                        status = str(response.status_code)
                        misses += response.headers.get("X-Cache") == "miss"
                    except httpx.TransportError as exc:
                        status = type(exc).__name__
                    done = time.perf_counter()
                    statuses[status] = statuses.get(status, 0) + 1
                    if status != "503":
                        break
                    await wait_retry_after(response)
                if status == "200":
                    latencies.append(done - sent)
                ends.append(done)

    def server_cpu_s() -> float:
        return cpu_seconds(process_tree(server_pid)) if server_pid is not None else 0.0

    cpu_before = server_cpu_s()
    start = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(concurrency)))
    cpu_s = server_cpu_s() - cpu_before if server_pid is not None else None
    ok = statuses.get("200", 0)
    return Step(
        concurrency=concurrency,
        requests=requests,
        ok=ok,
        refused=statuses.get("503", 0),
        misses=misses,
        seconds=max(ends) - start,
        p50_ms=percentile_ms(latencies, 50),
        p95_ms=percentile_ms(latencies, 95),
        ceiling=ceiling,
        cpu_ms=cpu_s / ok * 1000 if cpu_s is not None and ok else None,
        statuses=statuses,
    )


def inferences(client: httpx.Client, task: str) -> float:
    text = client.get("/metrics").text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "faceflow_inferences_total" and sample.labels.get("task") == task
    )


def timed_ok(client: httpx.Client, body: bytes, params: dict[str, str], cache: str) -> float:
    start = time.perf_counter()
    response = client.post("/v1/id-photo", params=params, content=body)
    seconds = time.perf_counter() - start
    if response.status_code != 200 or response.headers.get("X-Cache") != cache:
        raise SystemExit(
            f"expected 200 X-Cache {cache}, got {response.status_code} "
            f"{response.headers.get('X-Cache')}: {response.text[:300]}"
        )
    return seconds


def measure_recolour(
    base: str, spec: str, photos: list[bytes], repeats: int, serial: int
) -> Recolour:
    first, recolour, hit = [], [], []
    with httpx.Client(base_url=base, timeout=REQUEST_TIMEOUT_S) as client:
        mattes, renders = inferences(client, "matte_task"), inferences(client, "render_task")
        for i in range(repeats):
            body = unique_variant(photos[i % len(photos)], serial + i)
            white = {"spec": spec, "background": "white"}
            first.append(timed_ok(client, body, white, "miss"))
            recolour.append(timed_ok(client, body, {**white, "background": "blue"}, "miss"))
            hit.append(timed_ok(client, body, white, "hit"))
        mattes = inferences(client, "matte_task") - mattes
        renders = inferences(client, "render_task") - renders
    return Recolour(
        repeats=repeats,
        first_ms=statistics.median(first) * 1000,
        recolour_ms=statistics.median(recolour) * 1000,
        hit_ms=statistics.median(hit) * 1000,
        matte_runs=mattes,
        render_runs=renders,
    )


def print_report(report: Report, console: Console) -> None:
    ceiling = report.ceiling
    machine = report.machine
    console.print(f"$ {report.command}")
    console.print(
        f"{machine['cores']} cores, {machine['platform']}, Python {machine['python']}; "
        f"load average {machine['load_before']} before, {machine['load_after']} after"
    )
    console.print(
        f"service {report.url}, {ceiling.processes} inference processes; spec {report.spec}; "
        f"photos {', '.join(report.photos)}"
    )
    table = Table(title="ID photos of never-seen uploads (detect + matte + render each)")
    columns = ("concurrency", "ok / uploads", "503s waited out", "photos/s", "p50 ms", "p95 ms")
    for column in (*columns, "CPU ms/photo", "ceiling/s", "of ceiling"):
        table.add_column(column, justify="right")
    table.add_row(
        "in-process, 1 thread",
        f"{ceiling.images}",
        "",
        f"{ceiling.single_thread_per_s:.2f}",
        f"{ceiling.median_ms:.0f}",
        "",
        f"{ceiling.cpu_ms:.0f}",
        f"× {ceiling.processes} = {ceiling.per_s:.2f}",
        "",
    )
    for step in report.steps:
        table.add_row(
            str(step.concurrency),
            f"{step.ok} / {step.requests}",
            str(step.refused),
            f"{step.per_s:.2f}",
            f"{step.p50_ms:.0f}",
            f"{step.p95_ms:.0f}",
            "n/a" if step.cpu_ms is None else f"{step.cpu_ms:.0f}",
            f"{step.ceiling.per_s:.2f}",
            f"{step.per_s / step.ceiling.per_s:.0%}",
        )
    console.print(table)
    recolour = report.recolour
    table = Table(title=f"Recolouring a cached upload (medians of {recolour.repeats})")
    for column in ("request", "ms", "vs first"):
        table.add_column(column, justify="right")
    table.add_row("first (detect + matte + render)", f"{recolour.first_ms:.0f}", "1×")
    table.add_row(
        "new background (render from the cached matte)",
        f"{recolour.recolour_ms:.0f}",
        f"{recolour.first_ms / recolour.recolour_ms:.0f}× faster",
    )
    table.add_row(
        "same again (X-Cache: hit)",
        f"{recolour.hit_ms:.1f}",
        f"{recolour.first_ms / recolour.hit_ms:.0f}× faster",
    )
    console.print(table)
    console.print(
        f"server counted {recolour.matte_runs:.0f} matte_task and {recolour.render_runs:.0f} "
        f"render_task runs for the {recolour.repeats} uploads"
    )
    print_split(report.split, console)


def run_like_inference_processes() -> None:
    """Re-execute this script with the inference processes' malloc tunables, unless it has them.

    glibc reads ``GLIBC_TUNABLES`` only when a process starts. A tunable already set (by the
    operator, or by the re-executed run) is left as it is, so this runs at most once.
    """
    have = {item.split("=", 1)[0] for item in os.environ.get("GLIBC_TUNABLES", "").split(":")}
    if all(item.split("=", 1)[0] in have for item in CHILD_GLIBC_TUNABLES):
        return
    with child_glibc_tunables():
        os.execv(sys.executable, [sys.executable, *sys.argv])


def main() -> None:
    run_like_inference_processes()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running faceflow (default: start one)")
    parser.add_argument(
        "--processes", type=int, default=2, help="inference processes of the service started"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        default=[2, 3, 4],
        help="clients at a time, one or more: a throughput step each (default: %(default)s)",
    )
    parser.add_argument("--requests", type=int, default=24, help="uploads per concurrency step")
    parser.add_argument("--repeats", type=int, default=7, help="recolour measurements")
    parser.add_argument("--rounds", type=int, default=3, help="ceiling passes over the photos")
    parser.add_argument(
        "--spec",
        default="cn-1inch",
        help="ID-photo size preset; `faceflow id-photo-specs` lists them (default: %(default)s)",
    )
    parser.add_argument(
        "--testdata",
        type=Path,
        default=DEFAULT_TESTDATA,
        help="folder the --photos are read from (default: %(default)s)",
    )
    parser.add_argument(
        "--photos",
        nargs="+",
        default=list(DEFAULT_PHOTOS),
        help="file names in --testdata, one or more: the photos uploaded and timed "
        "(default: %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--split-only", action="store_true", help="only the stage split, no service started"
    )
    args = parser.parse_args()

    photos = [(args.testdata / name).read_bytes() for name in args.photos]
    command = " ".join([".venv/bin/python", "bench/idphoto.py", *sys.argv[1:]])
    if args.split_only:
        meter = CeilingMeter(photos, args.spec, 1)
        named = dict(zip(args.photos, photos, strict=True))
        console = Console(highlight=False, width=130)
        console.print(f"$ {command}")
        console.print(f"GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES')}")
        console.print(f"load average {load_average()}")
        print_split(measure_split(meter.context, named, meter.options, args.rounds), console)
        console.print(f"load average {load_average()}")
        return
    load_before = load_average()
    with contextlib.ExitStack() as stack:
        server_pid: int | None = None
        if args.url is None:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            env = {"FACEFLOW_RUNTIME__PROCESSES": str(args.processes)}
            server = stack.enter_context(ServiceProcess(env, tmp / "serve.log"))
            url, server_pid = server.url, server.pid
        else:
            url = args.url.rstrip("/")
        processes = int(httpx.get(f"{url}/readyz", timeout=10).json()["workers"])
        meter = CeilingMeter(photos, args.spec, processes)
        serial = 0
        steps = []
        for concurrency in args.concurrency:
            # The server is idle (its processes warmed up) while the ceiling is measured.
            ceiling = meter.measure(args.rounds)
            sweep = run_step(
                url, server_pid, args.spec, photos, concurrency, args.requests, serial, ceiling
            )
            steps.append(asyncio.run(sweep))
            serial += args.requests
        ceiling = meter.overall()
        recolour = measure_recolour(url, args.spec, photos, args.repeats, serial)
        named = dict(zip(args.photos, photos, strict=True))
        split = measure_split(meter.context, named, meter.options, args.rounds)
    machine = {
        "cores": os.cpu_count() or 0,
        "platform": platform.platform(terse=True),
        "python": platform.python_version(),
        "load_before": load_before,
        "load_after": load_average(),
    }
    report = Report(
        command, machine, url, args.spec, list(args.photos), ceiling, steps, recolour, split
    )
    if args.json:
        out = asdict(report)
        out["ceiling"]["per_s"] = ceiling.per_s
        for step, entry in zip(steps, out["steps"], strict=True):
            entry["per_s"] = step.per_s
            entry["ceiling"]["per_s"] = step.ceiling.per_s
            entry["of_ceiling"] = step.per_s / step.ceiling.per_s
        print(json.dumps(out, indent=2))
    else:
        print_report(report, Console(highlight=False, width=130))


if __name__ == "__main__":
    main()
