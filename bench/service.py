"""The service's figures next to their ceilings, measured in one run on this machine (DESIGN §6).

    .venv/bin/python bench/service.py [--image PATH] [--seconds 8] [--hit-path] [--json]

Starts its own `faceflow serve` processes on free loopback ports and stops them by PID. Load
sources: wrk (Debian package `wrk`) for the 200-connection HTTP figures, faceflow's own load
generator (`faceflow bench`) for the rest. Prints one table:

* HTTP ceiling: POST /v1/echo-size (the same upload path, no hashing, cache or inference) with the
  same 100 KB JPEG, 200 connections; cache-hit path: POST /v1/analyze with that image already
  cached, as the raw body and as a multipart form field; both with 1 and with 2 uvicorn workers
  (medians of 3 rounds); and the floor of any hit route on this machine: bench/bare_asgi.py
  (read, hash, dict; no framework) on 2 workers, run in the same rounds as the 2-worker rows
  (echo, hit, multipart hit, floor, then again), its shares the median of the rounds' shares;
  and the reference a user would otherwise build: Flask under gunicorn (2 workers), SHA-256 of
  the upload as the key, the answer in a local redis-server (bench/reference_server.py, its own
  virtualenv), its hits measured the same way;
* compute ceiling: the inference processes' own analyze task in this process, one image at a
  time, one thread, × processes; cache-miss path: never-seen uploads (the same photo with a unique
  JPEG comment) at 1, 5, 10, 20, 50 and 200 clients;
* overload: never-seen uploads arriving (open loop) at 4× the measured capacity: the share shed
  as 503, how fast, and the accepted requests' p99 against the p99 at half the capacity;
* memory: total RSS of the server and its inference processes at start, after 10,000 requests,
  and once idle past `runtime.heap.IDLE_TRIM_S` (the inference processes give back their slack);
* start-up: from spawning `faceflow serve` to /readyz answering 200.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table

import reference_server
from faceflow.config import load_settings
from faceflow.domain import Attribute, Operation
from faceflow.loadgen.ceiling import single_thread_rate
from faceflow.loadgen.load import LoadGenerator, LoadPlan, StepResult, unique_variant
from faceflow.loadgen.procs import ServiceProcess, load_average, rss_bytes
from faceflow.pipeline.detect_options import DetectOptions
from faceflow.runtime.heap import IDLE_TRIM_S
from faceflow.runtime.tasks import FaceRequest, run_face_request

BENCH_DIR = Path(__file__).resolve().parent
TESTDATA = BENCH_DIR.parents[1] / "shared" / "testdata"
PROCESSES = 2
SWEEP = (1, 5, 10, 20, 50, 200)
WRK_CONNECTIONS = 200


def add_image_option(parser: argparse.ArgumentParser) -> None:
    """``--image``: the photo a hit or miss benchmark uploads, as :func:`jpeg_near` makes it."""
    parser.add_argument(
        "--image",
        type=Path,
        default=TESTDATA / "portrait_1.jpg",
        help="the photo (sent as a JPEG of about 100 KB; default: %(default)s)",
    )


def jpeg_near(path: Path, target_bytes: int = 100 * 1024) -> bytes:
    """The photo as the highest-quality JPEG no larger than ``target_bytes``."""
    with Image.open(path) as opened:
        rgb = opened.convert("RGB")
    for quality in range(95, 10, -5):
        out = io.BytesIO()
        rgb.save(out, "JPEG", quality=quality)
        if out.tell() <= target_bytes:
            return out.getvalue()
    raise SystemExit(f"{path} does not fit in {target_bytes} bytes")


@dataclass
class WrkResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    non_2xx: int


FORM_BOUNDARY = "faceflow-bench-7MA4YWxkTrZu0gW"
FORM_CONTENT_TYPE = f"multipart/form-data; boundary={FORM_BOUNDARY}"


def form_body(image: bytes) -> bytes:
    """``image`` as the multipart field ``image``, as a browser or ``curl -F`` sends it."""
    return (
        (
            f"--{FORM_BOUNDARY}\r\n"
            'Content-Disposition: form-data; name="image"; filename="upload.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + image
        + f"\r\n--{FORM_BOUNDARY}--\r\n".encode()
    )


def wrk(
    url: str, body: Path, seconds: int, runs: int = 3, content_type: str = "image/jpeg"
) -> WrkResult:
    """Median of ``runs`` wrk runs POSTing ``body`` with 200 connections."""
    script = body.with_suffix(".lua")
    script.write_text(
        f'local f = io.open("{body}", "rb")\nwrk.body = f:read("*all")\nf:close()\n'
        f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "{content_type}"\n'
    )
    command = ["wrk", "-t2", f"-c{WRK_CONNECTIONS}", f"-d{seconds}s", "--latency"]
    results = []
    for _ in range(runs):
        output = subprocess.run(
            [*command, "-s", str(script), url], capture_output=True, text=True, check=True
        ).stdout
        rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
        non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
        results.append(
            WrkResult(
                float(rate.group(1)) if rate else float("nan"),
                _wrk_ms(output, "50%"),
                _wrk_ms(output, "99%"),
                int(non_2xx.group(1)) if non_2xx else 0,
            )
        )
    return sorted(results, key=lambda r: r.requests_per_s)[len(results) // 2]


def _wrk_ms(output: str, label: str) -> float:
    match = re.search(rf"{re.escape(label)}\s+([\d.]+)(us|ms|s)", output)
    if match is None:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


@dataclass
class Report:
    machine: str
    load_before: str
    image_bytes: int
    http: dict[str, dict[str, float]] = field(default_factory=dict)
    bare_asgi_rps: float = 0.0
    """bench/bare_asgi.py on 2 uvicorn workers: the floor of any hit route here."""
    bare_asgi_p99_ms: float = 0.0
    reference: dict[str, float] = field(default_factory=dict)
    """Hits on bench/reference_server.py (Flask + gunicorn 2 workers + Redis, SHA-256 key)."""
    compute_ceiling_per_s: float = 0.0
    sweep: list[dict[str, object]] = field(default_factory=list)
    overload: dict[str, float] = field(default_factory=dict)
    memory_mb: dict[str, float] = field(default_factory=dict)
    start_up_s: float = 0.0
    load_after: str = ""


# bench/bare_asgi.py under uvicorn: answers every path, /readyz included, with 200.
BARE_ASGI = (
    *("-m", "uvicorn", "bare_asgi:app", "--app-dir", str(BENCH_DIR), "--workers", "2"),
    *("--no-access-log", "--log-level", "warning"),
)


def http_figures(
    body_path: Path, seconds: int, http_workers: int, work: Path, floor_url: str | None = None
) -> dict[str, float]:
    """Echo ceiling, raw-body hits and multipart hits, medians of 3 rounds; with ``floor_url``
    the bare floor too, in the same rounds: each round runs every target in turn, so a slow or
    fast spell of this shared machine falls on all of them alike rather than on one row."""
    env = {"FACEFLOW_SERVER__HTTP_WORKERS": str(http_workers)}
    form_path = body_path.with_name("upload-form.bin")
    form_path.write_bytes(form_body(body_path.read_bytes()))
    rounds: dict[str, list[WrkResult]] = {}
    with ServiceProcess(env, work / f"serve-http{http_workers}.log") as server:
        # Warm every HTTP worker's own cache: each answers a miss once, then hits.
        wrk(f"{server.url}/v1/analyze", body_path, 2, runs=1)
        targets = {
            "ceiling": (f"{server.url}/v1/echo-size", body_path, "image/jpeg"),
            "hit": (f"{server.url}/v1/analyze", body_path, "image/jpeg"),
            # The same image as a form upload: the same cache entry, through the form reader.
            "form": (f"{server.url}/v1/analyze", form_path, FORM_CONTENT_TYPE),
        }
        if floor_url is not None:
            targets["floor"] = (floor_url, body_path, "image/jpeg")
        for _ in range(3):
            for name, (url, path, content_type) in targets.items():
                result = wrk(url, path, seconds, runs=1, content_type=content_type)
                rounds.setdefault(name, []).append(result)
    ceiling, hit, form = (_median(rounds[name]) for name in ("ceiling", "hit", "form"))
    figures = {
        "ceiling_rps": ceiling.requests_per_s,
        "ceiling_p99_ms": ceiling.p99_ms,
        "hit_rps": hit.requests_per_s,
        "hit_p50_ms": hit.p50_ms,
        "hit_p99_ms": hit.p99_ms,
        "hit_non_2xx": hit.non_2xx,
        "hit_share_of_ceiling": hit.requests_per_s / ceiling.requests_per_s,
        "form_hit_rps": form.requests_per_s,
        "form_hit_p50_ms": form.p50_ms,
        "form_hit_p99_ms": form.p99_ms,
        "form_hit_non_2xx": form.non_2xx,
    }
    if "floor" in rounds:
        floor = _median(rounds["floor"])
        figures["floor_rps"] = floor.requests_per_s
        figures["floor_p99_ms"] = floor.p99_ms
        # Shares round by round (each against the floor measured minutes apart at most).
        for name, figure in (("hit", "hit"), ("form", "form_hit")):
            shares = [
                r.requests_per_s / f.requests_per_s
                for r, f in zip(rounds[name], rounds["floor"], strict=True)
            ]
            figures[f"{figure}_share_of_floor"] = statistics.median(shares)
    return figures


def _median(results: list[WrkResult]) -> WrkResult:
    """The run with the median rate (its latencies with it)."""
    return sorted(results, key=lambda r: r.requests_per_s)[len(results) // 2]


def reference_figures(body_path: Path, seconds: int, work: Path) -> dict[str, float]:
    with reference_server.running(work) as reference:
        url = f"{reference.url}/v1/analyze"
        # One miss stores the answer in Redis, which every worker reads: the rest are hits.
        headers = {"Content-Type": "image/jpeg"}
        stored = httpx.post(url, content=body_path.read_bytes(), headers=headers, timeout=60)
        stored.raise_for_status()
        hit = wrk(url, body_path, seconds)
    return {
        "hit_rps": hit.requests_per_s,
        "hit_p50_ms": hit.p50_ms,
        "hit_p99_ms": hit.p99_ms,
        "hit_non_2xx": hit.non_2xx,
    }


async def miss_figures(
    url: str, body: bytes, seconds: float, capacity_hint: float
) -> tuple[list[StepResult], StepResult, StepResult]:
    plan = LoadPlan(url=f"{url}/v1/analyze", images=[body], duration_s=seconds)
    generator = LoadGenerator(plan)
    sweep = [await generator.step(clients) for clients in SWEEP]
    capacity = max(max(step.throughput for step in sweep), capacity_hint * 0.5)
    # A p99 needs a few hundred samples to mean anything: at least 20 s per open-loop phase.
    phase_s = max(seconds, 20.0)
    calm = await generator.open_loop(capacity * 0.5, phase_s)
    overload = await generator.open_loop(capacity * 4, phase_s)
    return sweep, calm, overload


async def soak(url: str, body: bytes, total: int) -> StepResult:
    plan = LoadPlan(
        url=f"{url}/v1/analyze",
        images=[body],
        hit_ratio=0.9,
        duration_s=None,
        requests_per_step=total,
    )
    generator = LoadGenerator(plan)
    await generator.warm()
    return await generator.step(20)


def run(image: Path, seconds: int, hit_path_only: bool = False) -> Report:
    """Every figure; with ``hit_path_only`` just the 200-connection hit rows (2 HTTP workers:
    the echo ceiling, faceflow's hits, the bare floor and the Flask + Redis reference)."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    settings = load_settings(runtime={"processes": PROCESSES})
    body = jpeg_near(image)
    report = Report(
        machine=f"{Path('/proc/cpuinfo').read_text().count('processor')} cores",
        load_before=load_average(),
        image_bytes=len(body),
    )
    options = DetectOptions.from_settings(settings.detection)
    attributes = (Attribute.AGE, Attribute.GENDER)
    if not hit_path_only:
        rate = single_thread_rate(
            settings,
            run_face_request,
            lambda i: FaceRequest(unique_variant(body, i), Operation.ANALYZE, options, attributes),
        )
        report.compute_ceiling_per_s = rate * PROCESSES
    with tempfile.TemporaryDirectory(prefix="faceflow-bench-") as tmp:
        work = Path(tmp)
        body_path = work / "upload.jpg"
        body_path.write_bytes(body)
        if not hit_path_only:
            report.http["1_http_workers"] = http_figures(body_path, seconds, 1, work)
        # The floor in the same rounds as the 2-worker hit rows it is compared with.
        with ServiceProcess({}, work / "bare_asgi.log", args=BARE_ASGI) as bare:
            two = http_figures(body_path, seconds, 2, work, floor_url=bare.url)
        report.http["2_http_workers"] = two
        report.bare_asgi_rps, report.bare_asgi_p99_ms = two["floor_rps"], two["floor_p99_ms"]
        report.reference = reference_figures(body_path, seconds, work)
        if hit_path_only:
            report.load_after = load_average()
            return report
        env = {"FACEFLOW_RUNTIME__PROCESSES": str(PROCESSES)}
        with ServiceProcess(env, work / "serve.log") as server:
            report.start_up_s = server.ready_after_s
            report.memory_mb["at_start"] = rss_bytes(server.pids()) / 1e6
            sweep, calm, overload = asyncio.run(
                miss_figures(server.url, body, seconds, report.compute_ceiling_per_s)
            )
            soaked = asyncio.run(soak(server.url, body, 10_000))
            report.memory_mb["after_10000"] = rss_bytes(server.pids()) / 1e6
            report.memory_mb["soak_ok"] = soaked.ok
            # Once the load is over: the inference processes give back their slack when idle.
            time.sleep(IDLE_TRIM_S + 1.0)
            report.memory_mb["idle"] = rss_bytes(server.pids()) / 1e6
    report.sweep = [step.to_dict() for step in sweep]
    shed = overload.statuses.get(503, 0)
    report.overload = {
        "offered_rps": overload.requests / overload.seconds,
        "accepted_rps": overload.throughput,
        "shed_share": shed / max(1, overload.requests),
        "shed_p50_ms": float(np.percentile(overload.rejected_latencies_s, 50) * 1000)
        if overload.rejected_latencies_s
        else float("nan"),
        "accepted_p99_ms": overload.percentile_ms(99),
        "calm_p99_ms": calm.percentile_ms(99),
        "p99_ratio": overload.percentile_ms(99) / calm.percentile_ms(99),
        "other_errors": sum(n for code, n in overload.statuses.items() if code not in (200, 503))
        + sum(overload.transport_errors.values()),
    }
    report.load_after = load_average()
    return report


def print_report(report: Report, console: Console) -> None:
    console.print(
        f"machine: {report.machine}; load average before {report.load_before}, after "
        f"{report.load_after}; upload {report.image_bytes / 1024:.0f} KB JPEG"
    )
    table = Table(title="faceflow service against its ceilings (same run, same machine)")
    for column in ("figure", "measured", "ceiling", "share"):
        table.add_column(column, justify="right" if column != "figure" else "left")
    for name, http in report.http.items():
        workers = name.split("_")[0]
        table.add_row(
            f"cache hit, 200 conns, {workers} uvicorn worker(s)",
            f"{http['hit_rps']:,.0f} req/s (p50 {http['hit_p50_ms']:.0f} ms, p99 "
            f"{http['hit_p99_ms']:.0f} ms)",
            f"{http['ceiling_rps']:,.0f} req/s echo-size",
            f"{http['hit_share_of_ceiling']:.0%}",
        )
        table.add_row(
            f"cache hit, multipart upload, {workers} uvicorn worker(s)",
            f"{http['form_hit_rps']:,.0f} req/s (p50 {http['form_hit_p50_ms']:.0f} ms, p99 "
            f"{http['form_hit_p99_ms']:.0f} ms, non-2xx {http['form_hit_non_2xx']:.0f})",
            "",
            "",
        )
    two = report.http["2_http_workers"]
    two_workers = two["hit_rps"]
    table.add_row(
        "floor: bare ASGI read + hash + dict, 2 workers",
        f"{report.bare_asgi_rps:,.0f} req/s (p99 {report.bare_asgi_p99_ms:.0f} ms)",
        "",
        f"hit path {two['hit_share_of_floor']:.0%} of it (raw body), "
        f"{two['form_hit_share_of_floor']:.0%} (multipart); median of the rounds' shares",
    )
    ref = report.reference
    table.add_row(
        "reference: Flask + gunicorn 2 workers + Redis, SHA-256 key (hits)",
        f"{ref['hit_rps']:,.0f} req/s (p50 {ref['hit_p50_ms']:.0f} ms, p99 "
        f"{ref['hit_p99_ms']:.0f} ms, non-2xx {ref['hit_non_2xx']:.0f})",
        "",
        f"hit path {two_workers / ref['hit_rps']:.1f}× it",
    )
    if not report.sweep:
        console.print(table)
        return
    best = max(report.sweep, key=lambda step: float(str(step["throughput_rps"])))
    table.add_row(
        f"cache miss (analyze), best of sweep ({best['concurrency']} clients)",
        f"{best['throughput_rps']} req/s",
        f"{report.compute_ceiling_per_s:.1f} req/s ({PROCESSES} × 1 thread)",
        f"{float(str(best['throughput_rps'])) / report.compute_ceiling_per_s:.0%}",
    )
    o = report.overload
    table.add_row(
        "overload: 4× capacity offered (open loop)",
        f"{o['offered_rps']:.0f} offered, {o['accepted_rps']:.1f} accepted/s, "
        f"{o['shed_share']:.0%} shed in {o['shed_p50_ms']:.0f} ms (p50)",
        "",
        "",
    )
    table.add_row(
        "overload: accepted p99 vs p99 at ½ capacity",
        f"{o['accepted_p99_ms']:.0f} ms vs {o['calm_p99_ms']:.0f} ms",
        "≤ 2×",
        f"{o['p99_ratio']:.2f}×",
    )
    m = report.memory_mb
    table.add_row(
        "RSS, server + inference processes",
        f"{m['at_start']:.0f} MB at start → {m['after_10000']:.0f} MB after 10,000 requests "
        f"→ {m['idle']:.0f} MB idle {IDLE_TRIM_S + 1.0:.0f} s later",
        "",
        f"{m['after_10000'] / m['at_start']:.2f}×; idle {m['idle'] / m['at_start']:.2f}×",
    )
    table.add_row("start-up to /readyz", f"{report.start_up_s:.1f} s", "", "")
    console.print(table)
    sweep = Table(title="cache-miss sweep: never-seen uploads to /v1/analyze")
    for column in ("clients", "req/s", "p50 ms", "p95 ms", "p99 ms", "statuses", "client CPU"):
        sweep.add_column(column, justify="right")
    for step in report.sweep:
        sweep.add_row(
            str(step["concurrency"]),
            str(step["throughput_rps"]),
            str(step["p50_ms"]),
            str(step["p95_ms"]),
            str(step["p99_ms"]),
            json.dumps(step["statuses"]),
            f"{float(str(step['client_cpu_share'])):.0%}",
        )
    sweep.caption = (
        "client CPU: the load generator's own CPU (a share of one core), taken from the same "
        "2 cores the server runs on"
    )
    console.print(sweep)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_image_option(parser)
    parser.add_argument("--seconds", type=int, default=8, help="per measurement")
    parser.add_argument(
        "--hit-path", action="store_true", help="only the hit rows: faceflow, floor, reference"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()
    report = run(args.image, args.seconds, hit_path_only=args.hit_path)
    if args.json:
        print(json.dumps(asdict(report), indent=2))
    else:
        print_report(report, Console(width=160))


if __name__ == "__main__":
    main()
