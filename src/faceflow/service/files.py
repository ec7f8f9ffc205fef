"""The web page's and the API docs' files, always answered whole.

Starlette's ``StaticFiles`` answers byte ranges, and refuses a ``Range`` it cannot read in plain
text, outside the service's error JSON: ``bytes=5-3`` and ``items=0-1`` were ``400`` with
"Range header: start must be less than end", a range past the end ``416`` with an empty body,
none with a stable code. These files are small (the page's largest is 32 KB, the docs' bundle
1.5 MB, loaded once and cached) and nothing fetches them in parts, so the ``Range`` a request
carries is ignored, as RFC 9110 lets a server do, and the answer no longer offers ranges.
"""

from __future__ import annotations

from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from faceflow.service.middleware import HEAD_REQUEST

_RANGE_HEADERS = (b"range", b"if-range")
_ACCEPT_RANGES = b"accept-ranges"


class WholeFiles(StaticFiles):
    """``StaticFiles`` without byte ranges (module doc)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        headers = [(k, v) for k, v in scope["headers"] if k not in _RANGE_HEADERS]

        async def without_ranges(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    (k, v) for k, v in message.get("headers", ()) if k != _ACCEPT_RANGES
                ]
            await send(message)

        # A HEAD reaches here as a GET (HeadAsGet: FastAPI's routes answer none), and StaticFiles
        # read a GET's file whole for the body HeadAsGet then drops: a HEAD of the docs' 1.5 MB
        # bundle cost the API process 2.7-5.5 ms of CPU for a few hundred bytes. It answers HEAD
        # itself without opening the file.
        method = "HEAD" if scope.get(HEAD_REQUEST) else scope["method"]
        inner = {**scope, "headers": headers, "method": method}
        await super().__call__(inner, receive, without_ranges)
