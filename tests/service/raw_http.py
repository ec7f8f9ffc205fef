"""Blocking raw-socket HTTP/1.1 for tests that must control every byte: partial headers, a body
that trickles or stops short, ``Expect: 100-continue`` so a refused upload is never sent."""

from __future__ import annotations

import json
import select
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: dict[str, str]
    """Lower-cased names."""
    body: bytes

    def error(self) -> dict[str, Any]:
        assert self.headers.get("content-type", "").startswith("application/json"), self
        error: dict[str, Any] = json.loads(self.body)["error"]
        return error


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S)


def head(
    path: str, length: int | None, headers: Sequence[tuple[str, str]] = (), method: str = "POST"
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class Reader:
    """Reads answers off one socket, keeping bytes that arrived beyond the current one."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _more(self) -> bool:
        chunk = self.sock.recv(1 << 16)
        self.buffer += chunk
        return bool(chunk)

    def answer(self) -> Answer:
        while b"\r\n\r\n" not in self.buffer:
            if not self._more():
                raise ConnectionError(f"closed before an answer; got {self.buffer[:200]!r}")
        raw_head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status_line, *lines = raw_head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        status = int(status_line.split()[1])
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            if not self._more():
                raise ConnectionError("closed in the middle of an answer body")
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return Answer(status, headers, body)

    def closed_by_server(self) -> bool:
        """True once the server has closed the connection (after any bytes still buffered)."""
        try:
            return not self._more()
        except ConnectionResetError:
            return True

    def readable(self, timeout_s: float) -> bool:
        return bool(self.buffer) or bool(select.select([self.sock], [], [], timeout_s)[0])


def post(
    port: int,
    path: str,
    pieces: Sequence[bytes],
    headers: Sequence[tuple[str, str]] = (),
) -> Answer:
    """POST the concatenation of ``pieces`` with ``Expect: 100-continue``: the body is sent only
    after the server's ``100 Continue``; an answer instead (a refusal) is returned unsent."""
    length = sum(len(piece) for piece in pieces)
    with connect(port) as sock:
        sock.sendall(head(path, length, [*headers, ("Expect", "100-continue")]))
        reader = Reader(sock)
        first = reader.answer()
        if first.status != 100:
            return first
        for piece in pieces:
            sock.sendall(piece)
        return reader.answer()
