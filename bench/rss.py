"""Resident memory of `faceflow serve` after warm-up and over a long mixed load, on this machine.

    .venv/bin/python bench/rss.py [--requests 2000] [--clients 3] [--processes 2] [--env K=V]
                                  [--detail]

Starts `faceflow serve` with ``--processes`` inference processes on a free loopback port (stopped
by PID at the end), takes the RSS of the server, each inference process and multiprocessing's
resource tracker once /readyz answers (every model loaded and warmed up), then sends
``--requests`` never-seen uploads from ``--clients`` concurrent clients (a 503, the pool's wait
queue full, is sent again) in ten rounds, and takes it again after each round, once every reply
has come (what the processes keep, not one request's working set; the largest total seen while
requests ran is printed too), and once more when the server has been idle past
``runtime.heap.IDLE_TRIM_S`` (what a server keeps once its load is over). The uploads are the
photos of ``../shared/testdata`` and ``../shared/devset`` resized to long sides of 320 to
3,000 px and re-encoded as JPEG, each with a unique comment so every request is a cache miss that
runs the models; the operations are mixed:
detect, analyze, annotate and (unless ``runtime.operations`` leaves it out) the ID photo.
``--env`` passes settings to the server, e.g. for a server without ID photos:
``--env 'FACEFLOW_RUNTIME__OPERATIONS=["detect","analyze","annotate"]'``.

The server's result cache is a memory budget that fills with answers by design
(``cache.memory_bytes``, 16 MB by default: the mixed uploads fill it within a few hundred
requests); the benchmark runs the default, as an operator would. ``--env
FACEFLOW_CACHE__MEMORY_BYTES=...`` sets another (0: no in-process cache, to see what the
processes keep without it).

RSS counts every resident page of each process, shared library pages once per process (what
``ps`` and the issue report); the ``change`` column compares each sample with the one taken
after warm-up. ``--detail`` prints, with each sample, what makes up each process's RSS (from
``/proc/PID/smaps``): its unique (USS) and proportional (PSS) sets, anonymous against
file-backed pages, and the anonymous pages by kind (the main heap, the other anonymous
mappings: malloc's thread arenas, large blocks and onnxruntime's arenas) and the files mapped
most. Other processes on the machine share its cores and memory bandwidth but not
its RSS: the figures do not depend on the load, only the run's duration does.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import itertools
import json
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from PIL import Image
from rich.console import Console
from rich.table import Table

from faceflow.loadgen.load import unique_variant
from faceflow.loadgen.procs import ServiceProcess, load_average, process_tree, rss_bytes
from faceflow.runtime.heap import IDLE_TRIM_S

SHARED = Path(__file__).resolve().parents[2] / "shared"
PHOTO_DIRS = (SHARED / "testdata", SHARED / "devset")
LONG_SIDES_PX = (320, 640, 1024, 1600, 2200, 3000)
VARIANTS = 48
"""Distinct (photo, size) uploads prepared; a unique comment makes every request new anyway."""
FACE_ROUTES = ("/v1/detect", "/v1/analyze", "/v1/annotate")
ID_PHOTO_ROUTE = "/v1/id-photo"
ID_PHOTO_EVERY = 20
"""One request in this many is an ID photo (≈ 1 s of CPU each, 20× a face request)."""
SAMPLES = 10
RETRY_503_S = 0.05
PEAK_POLL_S = 0.2
SETTLE_S = 0.5
"""Pause after a round before sampling: the last replies have been sent, the processes idle."""
IDLE_S = IDLE_TRIM_S + 1.0
"""Pause after the last round before the idle sample: the inference processes' idle trim done."""


@dataclass(frozen=True, slots=True)
class Sample:
    requests: int
    server_mb: float
    workers_mb: tuple[float, ...]
    other_mb: float
    idle: bool = False
    """Taken :data:`IDLE_S` after the last round, not right after one."""

    @property
    def total_mb(self) -> float:
        return self.server_mb + sum(self.workers_mb) + self.other_mb


def prepare_uploads(seed: int) -> list[bytes]:
    """``VARIANTS`` JPEGs: random photos at random long sides (smaller photos are enlarged)."""
    photos = sorted(
        p for d in PHOTO_DIRS for p in d.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"}
    )
    rng = random.Random(seed)
    uploads = []
    for photo in rng.sample(photos, min(VARIANTS, len(photos))):
        side = rng.choice(LONG_SIDES_PX)
        with Image.open(photo) as opened:
            rgb = opened.convert("RGB")
        scale = side / max(rgb.size)
        rgb = rgb.resize((max(16, round(rgb.width * scale)), max(16, round(rgb.height * scale))))
        out = io.BytesIO()
        rgb.save(out, "JPEG", quality=90)
        uploads.append(out.getvalue())
    return uploads


def sample(server: ServiceProcess, requests: int, *, idle: bool = False) -> Sample:
    """RSS by role: the server, each inference process, the rest (the resource tracker)."""
    server_mb, workers, other = 0.0, [], 0.0
    for pid in process_tree(server.pid):
        mb = rss_bytes([pid]) / 1e6
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if pid == server.pid:
            server_mb = mb
        elif b"multiprocessing.spawn" in command:
            workers.append(mb)
        else:
            other += mb
    return Sample(requests, server_mb, tuple(sorted(workers)), other, idle)


ARENA_ALIGN = 64 * 1024 * 1024
"""glibc's thread arenas (``HEAP_MAX_SIZE`` on 64-bit) start at multiples of this."""


def _mapping_kind(head: list[str]) -> str:
    """What a ``/proc/PID/smaps`` mapping is: a file's name, ``[heap]``, or an anonymous kind."""
    if len(head) == 6:
        return Path(head[5]).name if head[5].startswith("/") else head[5]
    start, end = (int(x, 16) for x in head[0].split("-"))
    if start % ARENA_ALIGN == 0 and "rw" in head[1]:
        return "anon arena"
    if end - start == 1024 * 1024:
        return "anon 1MiB"
    return "anon"


def memory_detail(pid: int, role: str) -> str:
    """One line on what makes up ``pid``'s RSS, in MB (see the module doc, ``--detail``)."""
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        maps = Path(f"/proc/{pid}/smaps").read_text()
    except OSError:
        return f"{role} {pid}: gone"
    field = {
        line.split(":")[0]: int(line.split()[1]) / 1e3
        for line in rollup.splitlines()[1:]
        if line.split() and line.split()[-1] == "kB"
    }
    uss = field["Private_Clean"] + field["Private_Dirty"]
    by_name: dict[str, float] = {}
    anon_maps = 0
    name = "?"
    for line in maps.splitlines():
        head = line.split(maxsplit=5)
        if len(head) >= 5 and "-" in head[0] and ":" not in head[0]:
            name = _mapping_kind(head)
            anon_maps += name.startswith("anon")
        elif line.startswith("Rss:"):
            by_name[name] = by_name.get(name, 0.0) + int(line.split()[1]) / 1e3
    files = sorted(
        ((mb, n) for n, mb in by_name.items() if not n.startswith(("anon", "["))),
        reverse=True,
    )
    top = ", ".join(f"{n} {mb:.1f}" for mb, n in files[:4])
    return (
        f"  {role} {pid}: rss {field['Rss']:.1f} pss {field['Pss']:.1f} uss {uss:.1f} | "
        f"anon {field['Anonymous']:.1f} (heap {by_name.get('[heap]', 0.0):.1f}, "
        f"{anon_maps} maps: malloc arenas {by_name.get('anon arena', 0.0):.1f}, "
        f"1 MiB (pymalloc) {by_name.get('anon 1MiB', 0.0):.1f}, "
        f"other {by_name.get('anon', 0.0):.1f}) "
        f"file {field['Rss'] - field['Anonymous']:.1f} ({top})"
    )


def details(server: ServiceProcess) -> str:
    lines = []
    for pid in process_tree(server.pid):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        role = (
            "server"
            if pid == server.pid
            else "worker"
            if b"multiprocessing.spawn" in command
            else "other"
        )
        lines.append(memory_detail(pid, role))
    return "\n".join(lines)


def progress(row: Sample) -> str:
    workers = " + ".join(f"{mb:.0f}" for mb in row.workers_mb)
    return (
        f"{time.strftime('%H:%M:%S')} {row.requests} requests{', idle' if row.idle else ''}: "
        f"server {row.server_mb:.0f} "
        f"+ workers {workers} + other {row.other_mb:.0f} = {row.total_mb:.0f} MB"
    )


@dataclass
class Peak:
    """The largest total RSS seen by a sampler polling while requests run."""

    total_mb: float = 0.0


async def poll_peak(server: ServiceProcess, peak: Peak) -> None:
    while True:
        peak.total_mb = max(peak.total_mb, sample(server, 0).total_mb)
        await asyncio.sleep(PEAK_POLL_S)


async def load(
    server: ServiceProcess,
    uploads: list[bytes],
    requests: int,
    clients: int,
    id_photos: bool,
    detail: bool,
) -> tuple[list[Sample], Peak, dict[str, int]]:
    """Send ``requests`` never-seen uploads in ten rounds; after each, with every request
    answered and the processes idle, sample RSS (what they keep, not a request's working set)."""
    routes = list(FACE_ROUTES)
    statuses: dict[str, int] = {}
    body_bytes: dict[str, int] = {}
    samples: list[Sample] = []
    peak = Peak()
    serials = itertools.count()
    per_round = max(1, requests // SAMPLES)

    async def client_loop(client: httpx.AsyncClient, end: int) -> None:
        while (serial := next(serials)) < end:
            if id_photos and serial % ID_PHOTO_EVERY == ID_PHOTO_EVERY - 1:
                route = ID_PHOTO_ROUTE
            else:
                route = routes[serial % len(routes)]
            body = unique_variant(uploads[serial % len(uploads)], serial)
            while True:
                try:
                    response = await client.post(
                        server.url + route, content=body, headers={"Content-Type": "image/jpeg"}
                    )
                except httpx.TransportError:
                    # A kept-alive connection the server closed as it was reused (its idle
                    # timeout, under load): not a result either.
                    statuses["sent again (connection closed)"] = (
                        statuses.get("sent again (connection closed)", 0) + 1
                    )
                    continue
                if response.status_code != 503:
                    break
                await asyncio.sleep(RETRY_503_S)  # the pool's wait queue is full: not a result
            key = f"{route} {response.status_code}"
            statuses[key] = statuses.get(key, 0) + 1
            body_bytes[route] = body_bytes.get(route, 0) + len(response.content)

    poller = asyncio.create_task(poll_peak(server, peak))
    async with httpx.AsyncClient(timeout=120.0) as client:
        for end in range(per_round, requests + 1, per_round):
            serials = itertools.count(end - per_round)
            await asyncio.gather(*(client_loop(client, end) for _ in range(clients)))
            await asyncio.sleep(SETTLE_S)
            samples.append(sample(server, end))
            # As it is taken, so a long run stopped early (a timeout) still has its samples.
            print(progress(samples[-1]), file=sys.stderr, flush=True)
            if detail:
                print(details(server), file=sys.stderr, flush=True)
    poller.cancel()
    await asyncio.sleep(IDLE_S)
    samples.append(sample(server, requests, idle=True))
    print(progress(samples[-1]), file=sys.stderr, flush=True)
    for route, total in body_bytes.items():
        answered = sum(n for key, n in statuses.items() if key.startswith(route + " "))
        statuses[f"{route} mean KB"] = round(total / max(1, answered) / 1024)
    return samples, peak, statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--requests",
        type=int,
        default=2000,
        help="never-seen uploads sent in all, in ten rounds (default: %(default)s)",
    )
    parser.add_argument(
        "--clients", type=int, default=3, help="concurrent clients (default: %(default)s)"
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=2,
        help="inference processes of the server started (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=13,
        help="seed for picking the photos and their sizes (default: %(default)s)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for the server, e.g. a FACEFLOW_ setting (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="print the samples as JSON")
    parser.add_argument(
        "--detail", action="store_true", help="print what makes up each process's RSS (stderr)"
    )
    args = parser.parse_args()
    env = {"FACEFLOW_RUNTIME__PROCESSES": str(args.processes)}
    env.update(item.split("=", 1) for item in args.env)
    operations = json.loads(env.get("FACEFLOW_RUNTIME__OPERATIONS", '["id-photo"]'))
    uploads = prepare_uploads(args.seed)
    before = load_average()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as work, ServiceProcess(env, Path(work) / "serve.log") as s:
        samples = [sample(s, 0)]
        print(progress(samples[0]), file=sys.stderr, flush=True)
        if args.detail:
            print(details(s), file=sys.stderr, flush=True)
        more, peak, statuses = asyncio.run(
            load(s, uploads, args.requests, args.clients, "id-photo" in operations, args.detail)
        )
        samples += more
    seconds = time.perf_counter() - started
    if args.json:
        rows = [vars_of(x) for x in samples]
        print(json.dumps({"samples": rows, "peak_mb": peak.total_mb, "statuses": statuses}))
        return
    console = Console(width=120)
    console.print(
        f"load average before {before}, after {load_average()}; {seconds:.0f} s; "
        f"{len(uploads)} uploads of {min(map(len, uploads)) // 1024}–"
        f"{max(map(len, uploads)) // 1024} KB; env {env}"
    )
    table = Table(title="RSS of faceflow serve, MB (after warm-up, then under the mixed load)")
    for column in ("requests", "server", "inference processes", "other", "total", "change"):
        table.add_column(column, justify="right")
    base = samples[0].total_mb
    for row in samples:
        table.add_row(
            "after warm-up"
            if row.requests == 0
            else f"idle {IDLE_S:.0f} s after"
            if row.idle
            else f"{row.requests:,}",
            f"{row.server_mb:.0f}",
            " + ".join(f"{mb:.0f}" for mb in row.workers_mb),
            f"{row.other_mb:.0f}",
            f"{row.total_mb:.0f}",
            f"{(row.total_mb / base - 1) * 100:+.1f} %",
        )
    console.print(table)
    console.print(
        f"peak total while requests ran (polled every {PEAK_POLL_S} s): {peak.total_mb:.0f} MB"
    )
    console.print(
        "statuses (and mean answer sizes): "
        + ", ".join(f"{k}: {n}" for k, n in sorted(statuses.items()))
    )


def vars_of(row: Sample) -> dict[str, object]:
    return {
        "requests": row.requests,
        "server_mb": row.server_mb,
        "workers_mb": row.workers_mb,
        "other_mb": row.other_mb,
        "total_mb": row.total_mb,
        "idle": row.idle,
    }


if __name__ == "__main__":
    main()
