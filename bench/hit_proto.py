"""CPU per cache hit through the HTTP protocol, in one process: uvicorn's parser and faceflow's
protocol (service/protocol.py) fed the request's bytes, the app behind them, the answer written
to a transport that keeps it. The floor is bench/bare_asgi.py behind uvicorn's own protocol.

    .venv/bin/python bench/hit_proto.py [--requests 5000] [--rounds 3]
    PYTHONPATH=OTHER/src .venv/bin/python bench/hit_proto.py   # another checkout's code

What bench/hit_stack.py leaves out (parsing, the protocol's per-request work, uvicorn's response
path) and bench/hit_cpu.py cannot separate from the kernel's socket work and the load generator:
process CPU µs per request, which the machine's load hardly moves. Each request arrives whole in
one read, as a 95 KB upload does on loopback once the connection's window has grown.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

import bare_asgi
from hit_stack import run_rounds, running_app
from service import FORM_CONTENT_TYPE, form_body

CONNECTIONS = 50
"""Connections with a request ready per turn of the loop (wrk's 200 over 2 workers: about 100
open, not all ready at once)."""


class Sink(asyncio.Transport):
    """A socket transport that keeps nothing: counts the bytes written."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 40000)}.get(
            name, default
        )

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += len(data)

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.written += len(data)

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass


def _request(path: str, content_type: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1:8000\r\nuser-agent: wrk\r\n"
        f"content-type: {content_type}\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


_DATE = (b"date", b"Sun, 06 Dec 2026 23:00:00 GMT")


async def drive(
    protocol_class: type, app: ASGIApp, request: bytes, n: int, state: dict[str, Any]
) -> float:
    """µs of process CPU per request over ``n`` requests: :data:`CONNECTIONS` kept-alive
    connections each handed a request per turn of the loop, as a worker at saturation finds
    them (so what the app does once per turn is shared, as served).

    uvicorn is configured as each server runs: faceflow as ``faceflow serve`` starts it (no
    proxy-header layer, no ``server`` header), the floor as bench/service.py starts it (the
    ``uvicorn`` command's defaults: both); both send the ``date`` header the server adds."""
    floor = protocol_class is HttpToolsProtocol
    config = uvicorn.Config(
        app,
        http=protocol_class,
        log_config=None,
        access_log=False,
        proxy_headers=floor,
        server_header=floor,
    )
    config.load()
    server_state = ServerState()
    server_state.default_headers = [_DATE, *config.encoded_headers]
    transport = Sink()
    protocols = []
    for _ in range(CONNECTIONS):
        protocol = protocol_class(config, server_state, app_state=state)
        protocol.connection_made(transport)
        protocols.append(protocol)
    start = time.process_time()
    for _ in range(max(1, n // CONNECTIONS)):
        for protocol in protocols:
            protocol.data_received(request)
        for protocol in protocols:
            while protocol.tasks:
                await asyncio.gather(*protocol.tasks)
        await asyncio.sleep(0)  # the held heads' flush, the keep-alive timers: as served
    spent = time.process_time() - start
    for protocol in protocols:
        protocol.connection_lost(None)
    done = max(1, n // CONNECTIONS) * CONNECTIONS
    if transport.written < done * 50:
        raise RuntimeError(f"{transport.written} bytes written for {done} requests")
    return spent / done * 1e6


async def measure(image: bytes, requests: int, rounds: int) -> dict[str, list[float]]:
    from faceflow.service.protocol import SERVER_SETTINGS_STATE, FaceflowHttpProtocol

    form = form_body(image)
    raw = _request("/v1/analyze", "image/jpeg", image)
    multipart = _request("/v1/analyze", FORM_CONTENT_TYPE, form)
    async with running_app() as app:
        services = app.api.state.services  # type: ignore[attr-defined]  # a FaceflowApp
        state = {SERVER_SETTINGS_STATE: services.settings.server}
        await drive(FaceflowHttpProtocol, app, raw, 1, state)  # the miss that caches it
        targets = [
            ("floor (bare ASGI, uvicorn)", HttpToolsProtocol, bare_asgi.app, raw, {}),
            ("hit, raw body", FaceflowHttpProtocol, app, raw, state),
            ("hit, multipart", FaceflowHttpProtocol, app, multipart, state),
        ]
        for _, protocol, target, request, target_state in targets:  # warm up
            await drive(protocol, target, request, 200, target_state)
        results: dict[str, list[float]] = {}
        for _ in range(rounds):
            for name, protocol, target, request, target_state in targets:
                us = await drive(protocol, target, request, requests, target_state)
                results.setdefault(name, []).append(us)
    return results


def main() -> None:
    run_rounds(__doc__.split("\n\n")[0], measure, "floor (bare ASGI, uvicorn)")


if __name__ == "__main__":
    main()
