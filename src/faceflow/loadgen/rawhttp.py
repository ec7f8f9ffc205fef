"""A minimal HTTP/1.1 POST on asyncio streams, for load that must cost its own machine little.

httpx costs a few milliseconds of CPU per request; generating an open-loop overload on the same
2-core machine as the server with it takes CPU from the very inference processes being measured.
This client sends one request per connection (as independent arrivals do) and reads the status,
the headers and a Content-Length body — all a faceflow answer has.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class RawResponse:
    status_code: int
    headers: dict[str, str]
    """Lower-cased names."""
    content: bytes


async def post(url: str, body: bytes, headers: Mapping[str, str]) -> RawResponse:
    """POST ``body`` to ``url`` (http only) on a new connection, closed after the answer."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [
        f"POST {target} HTTP/1.1",
        f"Host: {host}:{port}",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.writelines([("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), body])
        await writer.drain()
        status_line = await reader.readline()
        received: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            received[name.strip().lower()] = value.strip()
        content = await reader.readexactly(int(received.get("content-length", "0")))
        return RawResponse(int(status_line.split()[1]), received, content)
    finally:
        writer.close()
