"""Garbage collection in faceflow's HTTP workers while they serve cache hits.

    .venv/bin/python bench/hit_gc.py [--seconds 8] [--runs 4] [--before OTHER/src]

`faceflow serve --http-workers 2` with bench/gc_probe/ first in ``PYTHONPATH``, so every process
times each collection in thread CPU time (not wall: on a shared machine a process losing its core
mid-collection would look like a long pause). ``wrk -t2 -c200`` sends raw-body and multipart hits
in turn; then each HTTP worker's full collections during the load are listed with their CPU ms,
and the gen0 / gen1 maxima. A full collection stops the worker's event loop, and every connection
it holds, for as long as it takes. With ``--before`` another checkout's ``src`` is measured the
same way afterwards.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import httpx

import hit_cpu
from faceflow.loadgen.procs import ServiceProcess, load_average
from hit_cpu import _script, _workers, _wrk
from service import FORM_CONTENT_TYPE, add_image_option, form_body, jpeg_near

PROBE = Path(__file__).resolve().parent / "gc_probe"


def measure(src: Path | None, image: bytes, seconds: int, runs: int, work: Path) -> None:
    probes = Path(tempfile.mkdtemp(prefix="gc-", dir=work))
    path = f"{PROBE}:{src.resolve()}" if src is not None else str(PROBE)
    env = {
        "FACEFLOW_SERVER__HTTP_WORKERS": "2",
        "PYTHONPATH": path,
        "FACEFLOW_GC_PROBE_DIR": str(probes),
    }
    raw = _script(work, "raw", image, "image/jpeg")
    form = _script(work, "form", form_body(image), FORM_CONTENT_TYPE)
    with ServiceProcess(env, work / "serve.log") as server:
        analyze = f"{server.url}/v1/analyze"
        _wrk(analyze, raw, 2, 20)  # every worker answers its miss once
        httpx.post(analyze, content=image, headers={"Content-Type": "image/jpeg"}, timeout=60)
        began = time.monotonic()
        hits = 0
        for run in range(runs):
            requests, elapsed, p99 = _wrk(analyze, (raw, form)[run % 2], seconds, 200)
            hits += requests
            kind = ("raw", "multipart")[run % 2]
            print(f"  {kind:9} {requests / elapsed:6.0f} hits/s, p99 {p99:.0f} ms")
        ended = time.monotonic()
        time.sleep(1.5)  # the probes write at most once a second
        _wrk(analyze, raw, 1, 2)
        workers = _workers(server)
    print(f"  {hits} hits in {ended - began:.0f} s; load average {load_average()}")
    for pid in workers:
        state = json.loads((probes / f"gc-{pid}.json").read_text())
        full = [f"{ms:.1f}" for at, ms, _ in state["full"] if began <= at <= ended]
        tally = state["tally"]
        print(
            f"  worker {pid}: {state['frozen']} objects frozen; full collections under load: "
            f"{len(full)} ({', '.join(full) or '-'} ms CPU); "
            f"gen0 max {tally['0'][2] * 1e3:.1f} ms, gen1 max {tally['1'][2] * 1e3:.1f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_image_option(parser)
    parser.add_argument(
        "--seconds", type=int, default=8, help="length of each wrk run (default: %(default)s)"
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=4,
        help="wrk runs per server, raw-body and multipart hits in turn (default: %(default)s)",
    )
    parser.add_argument("--before", type=Path, default=None, help="another checkout's src/")
    args = parser.parse_args()
    hit_cpu.PINNED = False
    image = jpeg_near(args.image)
    with tempfile.TemporaryDirectory(prefix="faceflow-hitgc-") as tmp:
        print("this checkout:")
        measure(None, image, args.seconds, args.runs, Path(tmp))
        if args.before is not None:
            print(f"{args.before}:")
            measure(args.before, image, args.seconds, args.runs, Path(tmp))


if __name__ == "__main__":
    main()
