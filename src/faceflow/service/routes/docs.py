"""The API documentation pages (Swagger UI at /docs, ReDoc at /redoc), served with their own
assets.

FastAPI's default pages load Swagger UI, ReDoc, Google Fonts and a favicon from public CDNs: blank
on a machine without internet, and they tell a third party that someone opened the docs. The
same assets come here from the ``fastapi-offline`` package (MIT; Swagger UI is Apache-2.0, ReDoc
MIT), which only carries them: its FastAPI subclass is not used.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import cache
from importlib.resources import files
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from faceflow.service.answers import SharedAnswer
from faceflow.service.etags import Tagged, not_modified, tagged
from faceflow.service.files import WholeFiles

ASSETS_PATH = "/docs-assets"
OPENAPI_URL = "/openapi.json"
# Swagger UI checks a spec with an online validator by default; nothing leaves the machine.
_SWAGGER_PARAMETERS = {"validatorUrl": None}
# ReDoc's side menu always shows the Redocly logo from its CDN (no option turns it off).
_REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
# Relative to the page (/redoc, beside the assets), so that it is found under a root path too.
_LOCAL_LOGO = f"{ASSETS_PATH.removeprefix('/')}/favicon.png".encode()
ROOT_PATHS_KEPT = 4
"""Distinct root paths whose schema is kept made. The root path is the ASGI server's setting
(``uvicorn --root-path``), one per server; no header a client sends sets it here (uvicorn's
proxy-header handling reads ``X-Forwarded-For`` and ``-Proto`` only), but the bound holds
whatever sets it: beyond it, the schema is made again for each request, off the event loop."""


@cache
def _redoc_js() -> bytes:
    """ReDoc's bundle with its one remote image pointed at a local one (read once)."""
    bundle = (files("fastapi_offline") / "static" / "redoc.standalone.js").read_bytes()
    return bundle.replace(_REDOC_LOGO, _LOCAL_LOGO)


def root_path_of(request: Request) -> str:
    """The prefix a reverse proxy serves the app under (the ASGI ``root_path``), without its
    trailing slash, as FastAPI's own docs routes read it: "" at the root."""
    root_path: str = request.scope.get("root_path", "")
    return root_path.rstrip("/")


def served_schema(schema: dict[str, Any], root_path: str) -> dict[str, Any]:
    """``schema`` as FastAPI serves it under ``root_path`` (``root_path_in_servers``, on by
    default): the root path first in ``servers``, unless listed already, so that Swagger UI's
    "Try it out" and generated clients call the API under the proxy's prefix."""
    servers: list[dict[str, Any]] = schema.get("servers", [])
    if not root_path or root_path in {server.get("url") for server in servers}:
        return schema
    return {**schema, "servers": [{"url": root_path}, *servers]}


def install_docs(app: FastAPI, title: str) -> Callable[[], bytes]:
    """Serve the app's schema at :data:`OPENAPI_URL`, and /docs and /redoc from local assets;
    the app must be built with docs_url=None, redoc_url=None and openapi_url=None. Returns the
    function that makes the schema's JSON (once), for the app's start-up to call beside the
    loop."""
    assets = files("fastapi_offline") / "static"
    made: dict[str, Tagged] = {}  # the schema's JSON by root path, at most ROOT_PATHS_KEPT

    def tagged_schema(root_path: str) -> Tagged:
        known = made.get(root_path)
        if known is not None:
            return known
        schema = tagged(bytes(JSONResponse(served_schema(app.openapi(), root_path)).body))
        if len(made) < ROOT_PATHS_KEPT:
            made[root_path] = schema
        return schema

    def schema_json(root_path: str = "") -> bytes:
        return tagged_schema(root_path).body

    @app.get(OPENAPI_URL, include_in_schema=False)
    async def openapi_json(request: Request) -> Response:
        # Made once: FastAPI's own route serialised the 56 KB schema at each request, 1.4-1.7 ms
        # of the event loop (8-10 cache hits), and other clients' /healthz took 7-10 ms at the
        # median while four connections asked for it. Under a root path it is made once more,
        # at its first request, beside the loop.
        root_path = root_path_of(request)
        schema = made.get(root_path)
        if schema is None:
            schema = await asyncio.to_thread(tagged_schema, root_path)
        # Swagger UI, ReDoc and client generators fetch it at each load: 56 KB, or a 304.
        headers = {"ETag": schema.etag}
        return not_modified(request, headers) or Response(
            schema.body, media_type="application/json", headers=headers
        )

    @app.get(f"{ASSETS_PATH}/redoc.standalone.js", include_in_schema=False)
    async def redoc_js() -> Response:
        # In slices, as the example photos: written whole, the transport copied what the
        # kernel did not take at once, up to the bundle's 1.1 MB for each client not reading.
        return SharedAnswer(
            _redoc_js(),
            media_type="text/javascript",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    app.mount(ASSETS_PATH, WholeFiles(directory=str(assets)), name="docs-assets")

    # The pages name the schema and their assets under the root path, as FastAPI's own do: at
    # the server's root, behind a proxy's prefix, they were not found.
    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root_path = root_path_of(request)
        return get_swagger_ui_html(
            openapi_url=f"{root_path}{OPENAPI_URL}",
            title=f"{title} API",
            swagger_js_url=f"{root_path}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root_path}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root_path}{ASSETS_PATH}/favicon.png",
            swagger_ui_parameters=_SWAGGER_PARAMETERS,
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root_path = root_path_of(request)
        return get_redoc_html(
            openapi_url=f"{root_path}{OPENAPI_URL}",
            title=f"{title} API",
            redoc_js_url=f"{root_path}{ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{root_path}{ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )

    return schema_json
