"""When faceflow's HTTP protocol stops reading a connection (service/protocol.py READ_PAUSE_BYTES):
fed bytes directly, over a transport that records what the protocol asks of it."""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from starlette.types import Receive, Scope, Send
from uvicorn.server import ServerState

from faceflow.service.protocol import READ_PAUSE_BYTES, FaceflowHttpProtocol


class RecordingTransport(asyncio.Transport):
    """Just enough of a socket transport for uvicorn's protocol; counts read pauses."""

    def __init__(self) -> None:
        super().__init__()
        self.pauses = 0
        self.written = bytearray()
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 40000)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        self.pauses += 1

    def resume_reading(self) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closed

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True


async def _ignore(scope: Scope, receive: Receive, send: Send) -> None:
    """Never reads the body, so whatever arrives stays with the protocol."""


def _connection() -> tuple[FaceflowHttpProtocol, RecordingTransport]:
    config = uvicorn.Config(_ignore, http=FaceflowHttpProtocol, log_config=None)
    config.load()
    protocol = FaceflowHttpProtocol(config, ServerState(), app_state={})
    transport = RecordingTransport()
    protocol.connection_made(transport)
    return protocol, transport


def _request(body_bytes: int) -> bytes:
    head = f"POST /v1/detect HTTP/1.1\r\nhost: x\r\ncontent-length: {body_bytes}\r\n\r\n"
    return head.encode() + b"\xff" * body_bytes


async def test_a_photo_sized_upload_is_read_without_pausing_its_connection() -> None:
    # 100 KB: over uvicorn's own 64 KiB mark, which paused every such upload.
    protocol, transport = _connection()
    protocol.data_received(_request(100_000))
    assert transport.pauses == 0
    protocol.connection_lost(None)


async def test_a_body_beyond_the_mark_left_unread_pauses_its_connection() -> None:
    protocol, transport = _connection()
    protocol.data_received(_request(READ_PAUSE_BYTES + 1))
    assert transport.pauses == 1
    protocol.connection_lost(None)
