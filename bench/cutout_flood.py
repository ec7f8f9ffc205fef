"""Whether an idle user's ID-photo cut-out outlives other clients' large renders.

    .venv/bin/python bench/cutout_flood.py [--renders 8] [--side 3000]
    PYTHONPATH=OTHER/src .venv/bin/python bench/cutout_flood.py   # another checkout's code

Starts ``faceflow serve`` (default cache settings, one HTTP worker so every request meets the
same in-process cache, 2 inference processes) on a free loopback port and stops it by PID at
the end. A user uploads a photo once (its cut-out is cached) and goes idle; another client
uploads another photo and asks for ``--renders`` ``source=`` renders of it, each a
``--side`` × ``--side`` px PNG on a new radial gradient (3.8–4.0 MB at 3000 px: under
``cache.memory_max_entry_bytes``, so each is kept in memory). Then the idle user asks for a
``source=`` render of their photo: 200 while their cut-out is still held, 404
``source_expired`` once it was evicted (the web page then sends the photo again; an API client
gets the 404).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import httpx

from faceflow.loadgen.procs import ServiceProcess, load_average

TESTDATA = Path(__file__).resolve().parents[2] / "shared" / "testdata"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--renders", type=int, default=8, help="the other client's source= renders (8)"
    )
    parser.add_argument(
        "--side", type=int, default=3000, help="their width and height in px (3000: 3.8-4.0 MB)"
    )
    args = parser.parse_args()
    print(f"load before: {load_average()}")
    env = {"FACEFLOW_RUNTIME__PROCESSES": "2", "FACEFLOW_SERVER__HTTP_WORKERS": "1"}
    with (
        tempfile.TemporaryDirectory() as tmp,
        ServiceProcess(env, Path(tmp) / "serve.log") as server,
        httpx.Client(base_url=server.url, timeout=120) as client,
    ):

        def source_of(name: str) -> str:
            upload = (TESTDATA / name).read_bytes()
            answer = client.post("/v1/id-photo?spec=cn-1inch", content=upload)
            answer.raise_for_status()
            return answer.headers["X-Source"]

        idle, other = source_of("portrait_2.jpg"), source_of("obama.jpg")
        size = f"width={args.side}&height={args.side}&unit=px&format=png&gradient=radial"
        sizes = []
        started = time.perf_counter()
        for n in range(args.renders):
            colour = f"%23{0x112233 + n * 0x111111:06x}"
            render = client.post(f"/v1/id-photo?source={other}&{size}&background={colour}")
            render.raise_for_status()
            sizes.append(len(render.content))
        flood_s = time.perf_counter() - started
        back = client.post(f"/v1/id-photo?source={idle}&spec=us-passport&background=blue")
    print(
        f"{args.renders} renders of {min(sizes):,}–{max(sizes):,} bytes in {flood_s:.1f} s; "
        f"then the idle user's source= render: {back.status_code} "
        f"{back.headers.get('x-error-code', '')}"
    )
    print(f"load after: {load_average()}")


if __name__ == "__main__":
    main()
