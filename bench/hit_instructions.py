"""Instructions per cache hit through the HTTP protocol, counted by valgrind's callgrind: the
figure a change of a few per cent can be read in on a VM whose wall-clock and CPU-µs runs move by
a fifth (bench/hit_proto.py's µs, bench/service.py's rates).

    .venv/bin/python bench/hit_instructions.py [--requests 1000] [--targets raw,multipart,floor]
    PYTHONPATH=OTHER/src .venv/bin/python bench/hit_instructions.py   # another checkout's code
    .venv/bin/python bench/hit_instructions.py --keep DIR   # then, by function:
    callgrind_annotate DIR/callgrind-multipart.out

Needs valgrind (Debian package ``valgrind``). Each target runs in a process of its own under
``valgrind --tool=callgrind --instr-atstart=no``: bench/hit_proto.py's ``drive`` (its 50
kept-alive connections, faceflow's protocol and app, the answer written to a sink) warms up on
500 hits, then the count is switched on (``callgrind_control -i on``) for ``--requests`` hits
only and off again; the figure is the count over them divided by their number. Repeat runs agree
within ±0.5 % (timers run by the clock, and valgrind's pace moves with the machine's load). With
more than one HTTP worker the metrics are shared through files, so the driven process gets a
``PROMETHEUS_MULTIPROC_DIR`` (in /dev/shm) as a served worker does.

The ``floor`` target counts bench/bare_asgi.py's app behind uvicorn's own protocol, configured as
bench/service.py serves it (as bench/hit_proto.py drives it), on the raw body. Compare it with a
hit by function, not by total: valgrind counts a ``rep movsb`` copy a byte at a time, and the
floor copies the 95 KB body five times (uvicorn's two, the app's two, httptools' one: about
488,000 of its 910,000 instructions), where a hit copies it once.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp

import bare_asgi
import hit_proto
from hit_stack import running_app
from service import FORM_CONTENT_TYPE, TESTDATA, form_body, jpeg_near

BENCH_DIR = Path(__file__).resolve().parent
WARM_UP = 500
POLL_S = 0.05


def _until(path: Path, present: bool = True) -> None:
    """Block until ``path`` is there (or gone): in the child on purpose, so that its event loop
    does nothing while the count is switched."""
    while path.exists() != present:
        time.sleep(POLL_S)


def _mark_done(go: Path) -> None:
    Path(f"{go}.done").touch()


async def _driven(target: str, requests: int, go: Path) -> None:
    """The child: warm up, say ready, wait for ``go``, drive ``requests`` hits, mark done, wait
    for ``go`` to be taken away (the count is switched off meanwhile)."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from faceflow.service.protocol import SERVER_SETTINGS_STATE, FaceflowHttpProtocol

    image = jpeg_near(TESTDATA / "portrait_1.jpg")
    raw = hit_proto._request("/v1/analyze", "image/jpeg", image)
    form = hit_proto._request("/v1/analyze", FORM_CONTENT_TYPE, form_body(image))
    request = form if target == "multipart" else raw
    async with running_app() as app:
        services = app.api.state.services  # type: ignore[attr-defined]  # a FaceflowApp
        state: dict[str, Any] = {SERVER_SETTINGS_STATE: services.settings.server}
        await hit_proto.drive(FaceflowHttpProtocol, app, raw, 1, state)  # the miss that caches it
        protocol: type = FaceflowHttpProtocol
        target_app: ASGIApp = app
        if target == "floor":  # as bench/hit_proto.py drives it
            protocol, target_app, state = HttpToolsProtocol, bare_asgi.app, {}
        await hit_proto.drive(protocol, target_app, request, WARM_UP, state)
        print("ready", flush=True)
        _until(go)
        await hit_proto.drive(protocol, target_app, request, requests, state)
        _mark_done(go)
        _until(go, present=False)


def _switch(pid: int, state: str) -> None:
    """Switch callgrind's count in process ``pid`` on or off."""
    subprocess.run(["callgrind_control", "-i", state, str(pid)], check=True, capture_output=True)


def _count(target: str, requests: int, work: Path) -> int:
    """Instructions per hit of ``target``, counted in a child under callgrind."""
    go, out = work / f"go-{target}", work / f"callgrind-{target}.out"
    metrics = work / f"metrics-{target}"
    metrics.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics)}
    command = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={out}",
        sys.executable,
        __file__,
        "--child",
        target,
        "--requests",
        str(requests),
        "--go",
        str(go),
    ]
    child = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=BENCH_DIR,
    )
    try:
        assert child.stdout is not None
        for line in child.stdout:
            if line.strip() == "ready":
                break
        else:
            raise RuntimeError(f"the {target} child ended before it was ready")
        _switch(child.pid, "on")
        go.touch()
        _until(Path(f"{go}.done"))
        _switch(child.pid, "off")
        go.unlink()
        child.wait(timeout=600)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    totals = re.search(r"^totals: (\d+)", out.read_text(), re.MULTILINE)
    if totals is None:
        raise RuntimeError(f"no total in {out}")
    done = max(1, requests // hit_proto.CONNECTIONS) * hit_proto.CONNECTIONS
    return int(totals.group(1)) // done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="hits counted per target")
    parser.add_argument(
        "--targets", default="raw,multipart", help="raw, multipart, floor, comma-separated"
    )
    parser.add_argument("--keep", type=Path, help="a folder to keep callgrind's files in")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--go", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import uvloop  # as faceflow serve runs, and bench/hit_proto.py

        uvloop.run(_driven(args.child, args.requests, args.go))
        return
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("needs valgrind and callgrind_control (Debian package valgrind)")
    with tempfile.TemporaryDirectory(prefix="faceflow-hit-", dir="/dev/shm") as work:
        for target in args.targets.split(","):
            per_hit = _count(target, args.requests, Path(work))
            name = "floor (bare ASGI, raw body)" if target == "floor" else f"hit, {target}"
            print(f"{name}: {per_hit:,} instructions a request ({args.requests} counted)")
            if args.keep is not None:
                args.keep.mkdir(parents=True, exist_ok=True)
                shutil.copy(Path(work) / f"callgrind-{target}.out", args.keep)


if __name__ == "__main__":
    main()
