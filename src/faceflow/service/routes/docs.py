"""The API documentation pages (Swagger UI at /docs, ReDoc at /redoc), served with their own
assets.

FastAPI's default pages load Swagger UI, ReDoc, Google Fonts and a favicon from public CDNs: blank
on a machine without internet, and they tell a third party that someone opened the docs. The
same assets come here from the ``fastapi-offline`` package (MIT; Swagger UI is Apache-2.0, ReDoc
MIT), which only carries them: its FastAPI subclass is not used.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib.resources import files

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.responses import HTMLResponse, JSONResponse, Response

from faceflow.service.answers import SharedAnswer
from faceflow.service.files import WholeFiles

ASSETS_PATH = "/docs-assets"
OPENAPI_URL = "/openapi.json"
# Swagger UI checks a spec with an online validator by default; nothing leaves the machine.
_SWAGGER_PARAMETERS = {"validatorUrl": None}
# ReDoc's side menu always shows the Redocly logo from its CDN (no option turns it off).
_REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
_LOCAL_LOGO = f"{ASSETS_PATH}/favicon.png".encode()


@cache
def _redoc_js() -> bytes:
    """ReDoc's bundle with its one remote image pointed at a local one (read once)."""
    bundle = (files("fastapi_offline") / "static" / "redoc.standalone.js").read_bytes()
    return bundle.replace(_REDOC_LOGO, _LOCAL_LOGO)


def install_docs(app: FastAPI, title: str) -> Callable[[], bytes]:
    """Serve the app's schema at :data:`OPENAPI_URL`, and /docs and /redoc from local assets;
    the app must be built with docs_url=None, redoc_url=None and openapi_url=None. Returns the
    function that makes the schema's JSON (once), for the app's start-up to call beside the
    loop."""
    assets = files("fastapi_offline") / "static"

    @cache
    def schema_json() -> bytes:
        return bytes(JSONResponse(app.openapi()).body)

    @app.get(OPENAPI_URL, include_in_schema=False)
    async def openapi_json() -> Response:
        # Made once: FastAPI's own route serialised the 56 KB schema at each request, 1.4-1.7 ms
        # of the event loop (8-10 cache hits), and other clients' /healthz took 7-10 ms at the
        # median while four connections asked for it.
        return Response(schema_json(), media_type="application/json")

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

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=OPENAPI_URL,
            title=f"{title} API",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon.png",
            swagger_ui_parameters=_SWAGGER_PARAMETERS,
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=OPENAPI_URL,
            title=f"{title} API",
            redoc_js_url=f"{ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )

    return schema_json
