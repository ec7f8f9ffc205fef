"""The web page's and the API docs' files, always answered whole.

Starlette's ``StaticFiles`` answers byte ranges, and refuses a ``Range`` it cannot read in plain
text, outside the service's error JSON: ``bytes=5-3`` and ``items=0-1`` were ``400`` with
"Range header: start must be less than end", a range past the end ``416`` with an empty body,
none with a stable code. These files are small (the page's largest is 32 KB, the docs' bundle
1.5 MB, loaded once and cached) and nothing fetches them in parts, so the ``Range`` a request
carries is ignored, as RFC 9110 lets a server do, and the answer no longer offers ranges.

A small file (up to :data:`HELD_BYTES`) is read once and answered from memory after: each answer
read from disk took four trips through a thread (a stat, an open, a read, a close).

The files are listed once, and a path that names none of them is answered 404 at once: StaticFiles
looked each one up on disk, through a thread, and the web page's (``html``) then looked up a
``404.html`` too. Every path no route has reaches the web page, so a flood of such 404s cost the
API process 0.6-1.4 ms a request where a ``/healthz`` costs 0.2-0.4 (now as much). A path with
dot segments (``/js/..``, ``/index.html/.``), which browsers never send, names no file either:
StaticFiles normalised it and served the page there, its scripts and styles then loaded from the
wrong folder.
"""

from __future__ import annotations

from pathlib import Path

import anyio
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, Response
from starlette.staticfiles import NotModifiedResponse, StaticFiles
from starlette.types import Message, Receive, Scope, Send

from faceflow.service.edge import route_path
from faceflow.service.middleware import HEAD_REQUEST

_RANGE_HEADERS = (b"range", b"if-range")
_ACCEPT_RANGES = b"accept-ranges"

HELD_BYTES = 64 * 1024
"""Files up to this size are held in memory once read: every file of the web page (the largest
33 KB, 190 KB in all) and the docs' favicon; the docs' bundles (150 KB to 1.5 MB, loaded once by
a browser and cached) are read from disk at each request, in slices."""
HELD_FILES = 256
"""At most this many held: the paths are normalised and only existing files are held (each at
most twice, with and without a slash after its path), so the files in the directory bound them
already; this bounds them whatever is in it."""


class _Held:
    """A file's answer from memory: its headers as ``FileResponse`` makes them, and its bytes."""

    def __init__(self, headers: Headers, body: bytes) -> None:
        self.headers = headers
        self.body = body


class WholeFiles(StaticFiles):
    """``StaticFiles`` without byte ranges, small files held in memory (module doc). The files
    are the installed package's: one changed on disk is answered anew after a restart."""

    def __init__(self, *, directory: str, html: bool = False) -> None:
        super().__init__(directory=directory, html=html)
        # The request paths that name a file (relative, without the leading slash; "" is the
        # folder's index.html when ``html``), listed once: see the module doc.
        root = Path(directory)
        names = {path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()}
        self._names = frozenset(names | ({""} if html and "index.html" in names else set()))
        # By the normalised path and whether the request's path ends in a slash: StaticFiles
        # answers a folder's index.html only at its path with the slash ("/", and "/js/.." is
        # that folder too), and redirects the one without it there.
        self._held: dict[tuple[str, bool], _Held] = {}

    async def get_response(self, path: str, scope: Scope) -> Response:
        key = (path, str(scope["path"]).endswith("/"))
        # Only for a GET or a HEAD: any other method is StaticFiles' to refuse (a held file's
        # answer from memory was a POST's or a DELETE's too).
        held = self._held.get(key) if scope["method"] in ("GET", "HEAD") else None
        if held is None:
            response = await super().get_response(path, scope)
            if (
                scope["method"] != "GET"  # a HEAD opens no file (see __call__)
                or not isinstance(response, FileResponse)
                or response.status_code != 200
                or response.stat_result is None  # always set by StaticFiles, for mypy
                or response.stat_result.st_size > HELD_BYTES
                or len(self._held) >= HELD_FILES
            ):
                return response
            body = await anyio.Path(response.path).read_bytes()
            if len(body) != response.stat_result.st_size:  # changed since: not held
                return response
            held = self._held.setdefault(key, _Held(response.headers, body))
        if self.is_not_modified(held.headers, Headers(scope=scope)):
            return NotModifiedResponse(held.headers)
        return Response(held.body, headers=dict(held.headers))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        if route_path(scope).removeprefix("/") not in self._names:
            raise HTTPException(status_code=404)
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
