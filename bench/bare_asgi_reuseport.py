"""bench/bare_asgi.py on 2 uvicorn workers with one listening socket each, as `faceflow serve`
runs its HTTP workers (faceflow.cli.listeners): the floor on the same accept path.

    .venv/bin/python bench/bare_asgi_reuseport.py --port 8010
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import uvicorn

from faceflow.cli.listeners import run_workers

WORKERS = 2

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # The workers are spawned: they import bare_asgi from the path the parent had.
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    config = uvicorn.Config(
        "bare_asgi:app", host="127.0.0.1", port=args.port, workers=WORKERS, log_level="warning"
    )
    run_workers(config)
