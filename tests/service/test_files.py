"""The web page's and the API docs' files (service/files.py): answered whole, whatever Range a
request carries; starlette refused the ranges it could not read in plain text, without a code."""

from __future__ import annotations

import pytest

from tests.service.in_process import InProcess

pytestmark = pytest.mark.asyncio(loop_scope="session")

FILES = ["/js/i18n.js", "/css/app.css", "/", "/docs-assets/favicon.png"]


@pytest.mark.parametrize("path", FILES)
@pytest.mark.parametrize(
    "wanted",
    ["bytes=5-3", "items=0-1", "bytes=99999999-", "bytes=abc", "bytes=0-0,2-2", "bytes=0-9"],
    ids=["backwards", "unknown unit", "past the end", "not a number", "two ranges", "one range"],
)
async def test_a_file_is_answered_whole_whatever_range_is_asked(
    service_app: InProcess, path: str, wanted: str
) -> None:
    async with service_app.client() as client:
        whole = await client.get(path)
        ranged = await client.get(path, headers={"Range": wanted, "If-Range": "x"})

    assert whole.status_code == 200
    assert "accept-ranges" not in whole.headers  # no ranges offered
    assert ranged.status_code == 200, ranged.text[:200]
    assert ranged.content == whole.content
