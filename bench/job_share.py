"""One API key submitting detect jobs of new work (one photo, a new threshold each) to a
scale-out `faceflow serve` (RQ runner, ``jobs.max_result_bytes_per_client`` set) until it is
refused: how many jobs it kept and how much of the queue Redis they hold.

    .venv/bin/python bench/job_share.py [--share 200000] [--pythonpath OTHER/src]

Starts its own ``redis-server`` (a free loopback port), one ``faceflow worker`` process and
`faceflow serve` (1 inference process, API keys on), all stopped at the end. The key submits
25 jobs, waits half a second, and so on; after a 429 it waits 2 s (its jobs finish and their
results are measured at its next submission) and stops at the third. ``--pythonpath`` runs
another checkout's code (its ``src``), to compare before and after.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import tempfile
import time
from collections import Counter
from pathlib import Path

from redis import Redis

from faceflow.loadgen.procs import ServiceProcess
from jobs import QUEUE, Fleet, RedisServer

_TESTDATA = Path(__file__).resolve().parents[2] / "shared" / "testdata"
KEY = "bench-key"


def used_memory(url: str) -> int:
    client = Redis.from_url(url)
    try:
        return int(client.info("memory")["used_memory"])
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--share", type=int, default=200_000, help="bytes (default: %(default)s)")
    parser.add_argument("--pythonpath", help="another checkout's src, run instead of this one")
    args = parser.parse_args()
    photo = (_TESTDATA / "obama_small.jpg").read_bytes()
    with tempfile.TemporaryDirectory() as work:
        redis = RedisServer(Path(work))
        env = {
            "JOBS__REDIS_URL": redis.url,
            "JOBS__QUEUE_NAME": QUEUE,
            "JOBS__MAX_RESULT_BYTES_PER_CLIENT": str(args.share),
            "SERVER__API_KEY_HASHES": f'["{hashlib.sha256(KEY.encode()).hexdigest()}"]',
        }
        serve_env = {f"FACEFLOW_{k}": v for k, v in env.items()}
        serve_env["FACEFLOW_RUNTIME__PROCESSES"] = "1"
        if args.pythonpath:
            serve_env["PYTHONPATH"] = args.pythonpath
        fleet = Fleet(redis.url, 1, Path(work) / "worker.log", env)
        try:
            fleet.wait_ready(1)
            with ServiceProcess(serve_env, Path(work) / "serve.log") as server:
                before = used_memory(redis.url)
                connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
                headers = {"Authorization": f"Bearer {KEY}"}
                statuses: Counter[int] = Counter()
                sent = 0
                while sent < 5_000 and statuses[429] < 3:
                    target = f"/v1/jobs?operation=detect&threshold=0.{500_000 + sent}"
                    connection.request("POST", target, photo, headers)
                    response = connection.getresponse()
                    response.read()
                    statuses[response.status] += 1
                    sent += 1
                    if response.status == 429:
                        time.sleep(2)
                    elif sent % 25 == 0:
                        time.sleep(0.5)
                time.sleep(3)  # the last jobs end
                after = used_memory(redis.url)
        finally:
            fleet.stop()
            redis.stop()
    print(
        f"share {args.share:,} bytes: {statuses[202]} jobs taken before the third 429"
        f" ({dict(statuses)}); the queue Redis's used_memory {before:,} -> {after:,}"
        f" (+{(after - before) / 1e6:.2f} MB, {(after - before) / max(statuses[202], 1):,.0f}"
        " bytes a job)"
    )


if __name__ == "__main__":
    main()
