"""Imported by this directory's sitecustomize when ``FACEFLOW_TAIL_PROBE_DIR`` is set (bench/
hit_tail.py sets it and puts the directory first in ``PYTHONPATH``). In each uvicorn worker it
records, for the request tail:

* each request's time inside the server, from the parser's first byte of it to the last byte of
  its answer handed to the socket (uvicorn's ``on_message_begin`` to ``on_response_complete``);
* the event loop's lag: how late a 5 ms sleep wakes up (a turn of the loop that serves ~100
  connections, or a stall, shows here);
* garbage collections longer than 1 ms (wall time) and every full one;
* how often uvicorn's protocol stopped reading a connection (``pause_reading``) per request.

It writes them to ``$FACEFLOW_TAIL_PROBE_DIR/tail-PID.json`` every 2 s. Millisecond histograms, so
the cost per request is a dict increment.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

_DIR = os.environ.get("FACEFLOW_TAIL_PROBE_DIR")
_WRITE_EVERY_S = 2.0
_TICK_S = 0.005

_latency_ms: Counter[int] = Counter()
_lag_ms: Counter[int] = Counter()
_counts: Counter[str] = Counter()
_slow_gc: list[tuple[int, float]] = []  # (generation, wall ms)
_gc_started = [0.0]


def _gc_probe(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _gc_started[0] = time.perf_counter()
        return
    generation = info["generation"]
    ms = (time.perf_counter() - _gc_started[0]) * 1e3
    _counts[f"gc{generation}"] += 1
    if ms > 1 or generation == 2:
        _slow_gc.append((generation, round(ms, 2)))


def _write() -> None:
    state = {
        "latency_ms": _latency_ms,
        "lag_ms": _lag_ms,
        "counts": _counts,
        "slow_gc": _slow_gc,
    }
    # Whole files only: the driver may read while a worker writes.
    temporary = Path(_DIR or ".", f".tail-{os.getpid()}")
    temporary.write_text(json.dumps(state))
    temporary.replace(Path(_DIR or ".", f"tail-{os.getpid()}.json"))


async def _watch_loop() -> None:
    loop = asyncio.get_running_loop()
    written = loop.time()
    while True:
        before = loop.time()
        await asyncio.sleep(_TICK_S)
        now = loop.time()
        _lag_ms[int((now - before - _TICK_S) * 1e3)] += 1
        if now - written > _WRITE_EVERY_S:
            written = now
            _write()


def _install() -> None:
    from uvicorn import server
    from uvicorn.protocols.http import flow_control, httptools_impl

    protocol = httptools_impl.HttpToolsProtocol
    began = protocol.on_message_begin
    completed = protocol.on_response_complete
    pause = flow_control.FlowControl.pause_reading
    startup = server.Server.startup

    def on_message_begin(self: Any) -> None:
        self._tail_probe_began = time.perf_counter()
        began(self)

    def on_response_complete(self: Any) -> None:
        start = getattr(self, "_tail_probe_began", None)
        if start is not None:
            _latency_ms[int((time.perf_counter() - start) * 1e3)] += 1
            _counts["requests"] += 1
        completed(self)

    def pause_reading(self: Any) -> None:
        if not self.read_paused:
            _counts["pauses"] += 1
        pause(self)

    async def started(self: Any, sockets: Any = None) -> None:
        await startup(self, sockets)
        asyncio.get_running_loop().create_task(_watch_loop())

    protocol.on_message_begin = on_message_begin  # type: ignore[method-assign]
    protocol.on_response_complete = on_response_complete  # type: ignore[method-assign]
    flow_control.FlowControl.pause_reading = pause_reading  # type: ignore[method-assign]
    server.Server.startup = started  # type: ignore[method-assign]
    gc.callbacks.append(_gc_probe)


if _DIR:
    _install()
