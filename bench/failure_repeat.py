"""What a repeat of a failing ID photo costs: the same upload and options sent again after the
first answer was an error (an impossible ``max_kb``, a photo without a face).

    .venv/bin/python bench/failure_repeat.py [--repeats 5] [--side 4000]
    PYTHONPATH=OTHER/src .venv/bin/python bench/failure_repeat.py   # another checkout's code

Starts ``faceflow serve`` (default settings, 2 inference processes) on a free loopback port and
stops it by PID at the end. The upload is a test photo enlarged to ``--side`` × ``--side`` px
(JPEG, quality 90); each case is sent once (its cut-out made), then ``--repeats`` times one at a
time. Per repeat: the answer's status, code and ``X-Cache``, its wall time (median), and the
CPU the server's whole process tree spent on the repeats (from /proc, in 10 ms ticks: divided by
``--repeats``).
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from PIL import Image

from faceflow.loadgen.procs import ServiceProcess, cpu_seconds, load_average

TESTDATA = Path(__file__).resolve().parents[2] / "shared" / "testdata"

CASES = {
    "max_kb=1, preset (cn-1inch)": ("portrait_2.jpg", "spec=cn-1inch&max_kb=1"),
    "max_kb=50, 4000 × 4000 px output": (
        "portrait_2.jpg",
        "width=4000&height=4000&unit=px&dpi=300&max_kb=50",
    ),
    "no face (cn-1inch)": ("coffee.jpg", "spec=cn-1inch"),
}


def enlarged(name: str, side: int) -> bytes:
    with Image.open(TESTDATA / name) as image:
        big = image.convert("RGB").resize((side, side), Image.Resampling.BICUBIC)
    out = io.BytesIO()
    big.save(out, "JPEG", quality=90)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--repeats", type=int, default=5, help="times each case is sent again after the first (5)"
    )
    parser.add_argument(
        "--side", type=int, default=4000, help="the uploaded photo's width and height in px"
    )
    args = parser.parse_args()
    print(f"load before: {load_average()}")
    with tempfile.TemporaryDirectory() as tmp:
        env = {"FACEFLOW_RUNTIME__PROCESSES": "2"}
        with (
            ServiceProcess(env, Path(tmp) / "serve.log") as server,
            httpx.Client(base_url=server.url, timeout=120) as client,
        ):
            print(
                "| case | first: status, code, s | repeat: status, code, X-Cache "
                "| wall ms | server CPU ms |"
            )
            print("|---|---|---|---|---|")
            for label, (name, query) in CASES.items():
                upload = enlarged(name, args.side)
                started = time.perf_counter()
                first = client.post(f"/v1/id-photo?{query}", content=upload)
                first_s = time.perf_counter() - started
                walls, seen = [], set()
                cpu_before = cpu_seconds(server.pids())
                for _ in range(args.repeats):
                    started = time.perf_counter()
                    again = client.post(f"/v1/id-photo?{query}", content=upload)
                    walls.append((time.perf_counter() - started) * 1000)
                    code = again.headers.get("x-error-code", "-")
                    seen.add((again.status_code, code, again.headers.get("x-cache", "-")))
                    assert again.content == first.content, "a repeat answered otherwise"
                cpu_ms = (cpu_seconds(server.pids()) - cpu_before) * 1000 / args.repeats
                first_code = first.headers.get("x-error-code", "-")
                print(
                    f"| {label} | {first.status_code} {first_code} {first_s:.2f} | "
                    f"{', '.join(' '.join(map(str, s)) for s in sorted(seen))} | "
                    f"{statistics.median(walls):.1f} | {cpu_ms:.1f} |"
                )
    print(f"load after: {load_average()}")


if __name__ == "__main__":
    main()
