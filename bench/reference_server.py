"""Build and start the cache-hit reference server: Flask under gunicorn (2 sync workers), the
SHA-256 of the upload as the key, the answer in a local redis-server (issue 13 item 7).

    .venv/bin/python bench/reference_server.py build     # its virtualenv, created on demand
    .venv/bin/python bench/reference_server.py serve --port 8001 --redis-url redis://...

``build`` installs Flask, gunicorn, the redis client and OpenCV into their own virtualenv under
``~/.cache/faceflow/peers/reference_server`` (reused while the pins are unchanged; none of them is
a faceflow dependency). ``serve`` replaces this process with gunicorn serving
bench/reference_server_app.py, so its PID is gunicorn's master and stopping it by PID stops the
server. bench/service.py measures it beside faceflow's hit path and the bare-ASGI floor with
:func:`running`, which also starts and stops the redis-server on a free port.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from faceflow.loadgen.procs import ServiceProcess, free_port
from peers_compare import DEFAULT_CACHE, Peer, ensure_venv

BENCH_DIR = Path(__file__).resolve().parent
WORKERS = 2
REFERENCE = Peer(
    "reference_server",
    (("flask>=3,<4", "gunicorn>=22,<24", "redis>=5,<7", "opencv-python-headless>=4.8,<5"),),
    "reference_server_app.py",
    (),
)


def yunet_path() -> Path:
    """faceflow's own YuNet file: a miss runs the same detector model."""
    from faceflow.config import load_settings
    from faceflow.models.catalog import model_spec
    from faceflow.models.store import ModelStore

    return ModelStore(load_settings().models).path_for(model_spec("yunet"))


@contextlib.contextmanager
def redis_server(log: Path) -> Iterator[str]:
    """A throw-away redis-server on a free loopback port (no persistence); yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 20
        while b"PONG" not in _ping(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start; see {log}")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _ping(port: int) -> bytes:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64)
    except OSError:
        return b""


@contextlib.contextmanager
def running(work: Path, cache: Path = DEFAULT_CACHE) -> Iterator[ServiceProcess]:
    """The reference server (and its redis-server) running on free ports until the block ends."""
    ensure_venv(REFERENCE, cache)
    with redis_server(work / "reference-redis.log") as url:
        args = (str(Path(__file__)), "serve", "--redis-url", url, "--cache", str(cache))
        with ServiceProcess({}, work / "reference-server.log", args=args) as server:
            yield server


def serve(port: int, redis_url: str, cache: Path) -> None:
    venv = cache / REFERENCE.name / "venv"
    gunicorn = venv / "bin" / "gunicorn"
    if not gunicorn.exists():
        raise SystemExit(f"no reference virtualenv at {venv}: run `{sys.argv[0]} build` first")
    os.environ["REFERENCE_REDIS_URL"] = redis_url
    os.environ["REFERENCE_YUNET"] = str(yunet_path())
    argv = [
        str(gunicorn),
        *("--workers", str(WORKERS), "--bind", f"127.0.0.1:{port}"),
        *("--chdir", str(BENCH_DIR), "--log-level", "warning"),
        "reference_server_app:app",
    ]
    os.execv(argv[0], argv)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "command",
        choices=("build", "serve"),
        help="build: make (or reuse) the server's virtualenv and print its folder; "
        "serve: replace this process with gunicorn serving the app",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=8001,
        help="loopback port serve listens on (default: %(default)s)",
    )
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/0",
        help="the Redis serve keeps the answers in (default: %(default)s)",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=DEFAULT_CACHE,
        help="folder of the peer virtualenvs, this server's among them (default: %(default)s)",
    )
    args = parser.parse_args()
    if args.command == "build":
        print(ensure_venv(REFERENCE, args.cache).parent.parent)
    else:
        serve(args.port, args.redis_url, args.cache)


if __name__ == "__main__":
    main()
