"""A uvicorn server with faceflow's HTTP protocol under a low open-file limit.

Run as ``python -m tests.service.descriptor_server LIMIT`` from the project root (by
tests/service/test_descriptors.py): it sets this process's soft and hard ``RLIMIT_NOFILE`` to
LIMIT, listens on a free loopback port, prints the port, and answers every request 200 until it
is stopped. Its lifespan state is what ``faceflow serve``'s app puts there
(:func:`faceflow.service.protocol.protocol_state`, with the default ``server.max_connections``);
uvicorn runs on its default loop (uvloop when installed, as ``faceflow serve``).
"""

from __future__ import annotations

import resource
import socket
import sys

import uvicorn
from starlette.types import Receive, Scope, Send

from faceflow.config import ServerSettings
from faceflow.service.metrics import Metrics
from faceflow.service.protocol import FaceflowHttpProtocol, protocol_state


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        scope["state"].update(protocol_state(ServerSettings(), Metrics()))
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def main() -> None:
    limit = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    config = uvicorn.Config(app, http=FaceflowHttpProtocol, log_config=None, backlog=4096)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
