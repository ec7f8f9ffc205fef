"""The one-connection-per-request client the open-loop load uses, against the real service."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from faceflow.loadgen import rawhttp
from tests.fixtures.live_server import LiveServer


def test_a_post_reads_the_status_headers_and_body(live_server: LiveServer, testdata: Path) -> None:
    body = (testdata / "obama_small.jpg").read_bytes()

    response = asyncio.run(
        rawhttp.post(f"{live_server.url}/v1/echo-size", body, {"Content-Type": "image/jpeg"})
    )

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert json.loads(response.content) == {"bytes": len(body)}


def test_an_error_keeps_its_code_header(live_server: LiveServer) -> None:
    response = asyncio.run(
        rawhttp.post(
            f"{live_server.url}/v1/detect", b"not an image", {"Content-Type": "image/jpeg"}
        )
    )

    assert response.status_code == 415
    assert response.headers["x-error-code"] == "unsupported_format"
