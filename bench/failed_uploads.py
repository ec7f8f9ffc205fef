"""What the API process keeps after uploads that fail: RSS of `faceflow serve` (its API process
alone) after each of a few large requests whose images the inference process refuses.

    .venv/bin/python bench/failed_uploads.py [--batches 5] [--singles 15] [--processes 1]
                                             [--pythonpath OTHER/src]

Starts `faceflow serve` on a free loopback port (stopped by PID at the end), then sends, one at a
time: ``--batches`` batches of 16 images of 10 MiB each (JPEG magic, then random bytes: each
answered 422 ``undecodable`` inside the batch's 200), two pairs of concurrent batches of 12 such
images, then ``--singles`` such images to each of ``/v1/detect``, ``/v1/annotate`` and
``/v1/jobs``. After each step it prints the API process's RSS and its peak (``VmHWM``). A request
answered and let go frees its body at once; what stays is what the process kept (a failed
request's upload held in a reference cycle until the next full collection, say).
``--pythonpath`` runs another checkout's code (its ``src``), to compare before and after.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
from pathlib import Path

import httpx

from faceflow.loadgen.procs import ServiceProcess

_IMAGE_BYTES = 10 * 1024 * 1024


def broken_jpeg() -> bytes:
    return b"\xff\xd8\xff" + os.urandom(_IMAGE_BYTES - 3)


def api_memory(pid: int) -> str:
    """RSS and its peak (VmHWM) of the API process ``pid``."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    rss, peak = (int(fields[name].split()[0]) // 1024 for name in ("VmRSS", "VmHWM"))
    return f"RSS {rss} MB (peak {peak})"


def batch(client: httpx.Client, images: int) -> int:
    files = [("images", (f"{i}.jpg", broken_jpeg(), "image/jpeg")) for i in range(images)]
    return client.post("/v1/batch", params={"operation": "detect"}, files=files).status_code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--batches", type=int, default=5, help="batches of 16 images (default: %(default)s)"
    )
    parser.add_argument(
        "--singles", type=int, default=15, help="images sent to each route (default: %(default)s)"
    )
    parser.add_argument(
        "--processes", type=int, default=1, help="inference processes (default: %(default)s)"
    )
    parser.add_argument("--pythonpath", help="another checkout's src, run instead of this one")
    args = parser.parse_args()
    env = {"FACEFLOW_RUNTIME__PROCESSES": str(args.processes)}
    if args.pythonpath:
        env["PYTHONPATH"] = args.pythonpath
    with (
        tempfile.TemporaryDirectory() as work,
        ServiceProcess(env, Path(work) / "serve.log") as server,
        httpx.Client(base_url=server.url, timeout=120) as client,
    ):
        print(f"ready: {api_memory(server.pid)}", flush=True)
        for n in range(args.batches):
            status = batch(client, 16)
            print(
                f"batch {n + 1} of 16 × 10 MiB: {status}, {api_memory(server.pid)}",
                flush=True,
            )
        for n in range(2):
            statuses: list[int] = []

            def send(into: list[int] = statuses) -> None:
                into.append(batch(client, 12))

            pair = [threading.Thread(target=send) for _ in range(2)]
            for thread in pair:
                thread.start()
            for thread in pair:
                thread.join()
            print(
                f"two concurrent batches of 12 × 10 MiB ({n + 1}): {statuses},"
                f" {api_memory(server.pid)}",
                flush=True,
            )
        for path, params in (
            ("/v1/detect", {}),
            ("/v1/annotate", {}),
            ("/v1/jobs", {"operation": "detect"}),
        ):
            for _ in range(args.singles):
                status = client.post(
                    path,
                    params=params,
                    content=broken_jpeg(),
                    headers={"content-type": "image/jpeg"},
                ).status_code
            print(
                f"{args.singles} × {path} of 10 MiB: {status}, {api_memory(server.pid)}",
                flush=True,
            )


if __name__ == "__main__":
    main()
