"""What an error repeats of a client's input is bounded (errors.quoted): a query value or an
option name may be as long as the headers (64 KiB), and answers naming it grew with it (an
unknown option of 60 KB answered 120 KB, a size, sheet, background or attribute 60 KB)."""

from __future__ import annotations

import pytest

from faceflow.errors import QUOTED_CHARS
from tests.service.in_process import InProcess
from tests.service.support import error_of

pytestmark = pytest.mark.asyncio(loop_scope="session")

LONG = "q" * 20_000
ANSWER_BYTES = 1_200  # the longest message (every known size named) and its JSON around it


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", f"/v1/analyze?{LONG}=1"),
        ("POST", f"/v1/analyze?attributes={LONG}"),
        ("POST", f"/v1/id-photo?spec={LONG}"),
        ("POST", f"/v1/id-photo?sheet={LONG}"),
        ("POST", f"/v1/id-photo?background={LONG}"),
        ("POST", f"/v1/id-photo/sheet?layout=icao:1,{LONG}"),
        ("POST", f"/v1/jobs?operation={LONG}"),
        ("GET", f"/v1/examples/{LONG}"),
    ],
    ids=lambda value: value if len(value) < 20 else value[:24],
)
async def test_an_error_names_a_long_input_by_its_start_and_length(
    service_app: InProcess, face_jpeg: bytes, method: str, path: str
) -> None:
    async with service_app.client() as client:
        response = await client.request(
            method, path, content=face_jpeg if method == "POST" else None
        )

    assert 400 <= response.status_code < 500, response.text[:300]
    assert len(response.content) < ANSWER_BYTES, response.text[:300]
    message = error_of(response)["message"]
    assert "q" * QUOTED_CHARS in message
    assert "20,000 characters" in message
