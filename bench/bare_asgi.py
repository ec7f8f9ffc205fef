"""The floor of a cache-hit route on this machine: a bare ASGI app that reads the upload, hashes it
with faceflow's content hash and answers from a dict — no framework, no middleware, no checks.

bench/service.py serves it with uvicorn (the same HTTP stack as faceflow) to show how much of the
hit path's cost is the server and the machine rather than faceflow.
"""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from faceflow.cache.keys import content_hash
from faceflow.runtime.heap import keep_heap

# The heap setting faceflow's HTTP workers make once started (runtime/heap.py): without it
# each request here would re-fault its body's pages, and the floor would be higher than the
# cheapest hit route this stack allows.
keep_heap()

_ANSWERS: dict[str, bytes] = {}
_ANSWER = b'{"faces":[]}'
_HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(_ANSWER))]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    body = bytearray()
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    answer = _ANSWERS.setdefault(content_hash(bytes(body)), _ANSWER)
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": answer})
