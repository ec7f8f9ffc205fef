"""The web page's and the API docs' files (service/files.py): answered whole, whatever Range a
request carries; starlette refused the ranges it could not read in plain text, without a code."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from starlette.staticfiles import StaticFiles

from faceflow.service.files import HELD_BYTES
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


@pytest.mark.parametrize("path", [*FILES, "/docs-assets/swagger-ui-bundle.js"])
async def test_a_head_of_a_file_reads_none_of_it(
    service_app: InProcess, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # HEAD reached the files as a GET, which read the whole file for a body then dropped: the
    # docs' 1.5 MB bundle cost 5.5 ms of the API process for a few hundred bytes.
    async with service_app.client() as client:
        whole = await client.get(path)
        opened: list[object] = []
        open_file = anyio.open_file

        async def counted(*args: Any, **kwargs: Any) -> Any:
            opened.append(args[0])
            return await open_file(*args, **kwargs)

        monkeypatch.setattr(anyio, "open_file", counted)
        head = await client.head(path)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(whole.content))
    assert head.headers["etag"] == whole.headers["etag"]
    assert opened == []


def _looked_up(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths the files look up on disk from now on (each a stat through a thread)."""
    looked_up: list[str] = []
    lookup = StaticFiles.lookup_path

    def counted(self: StaticFiles, path: str) -> Any:
        looked_up.append(path)
        return lookup(self, path)

    monkeypatch.setattr(StaticFiles, "lookup_path", counted)
    return looked_up


@pytest.mark.parametrize("path", FILES)
async def test_a_small_file_is_read_once_and_answered_from_memory(
    service_app: InProcess, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Read from disk, each answer took four trips through a thread (a stat, an open, a read and a
    # close): 0.5-1.0 ms of the API process a request, 0.11-0.14 ms from memory.
    async with service_app.client() as client:
        first = await client.get(path)
        looked_up = _looked_up(monkeypatch)
        again = await client.get(path)
        unchanged = await client.get(path, headers={"If-None-Match": first.headers["etag"]})
    assert first.status_code == again.status_code == 200
    assert len(first.content) <= HELD_BYTES
    assert again.content == first.content
    del first.headers["x-request-id"], again.headers["x-request-id"]
    assert again.headers == first.headers  # the page's own headers (CSP, ...) too
    assert unchanged.status_code == 304
    assert unchanged.headers["etag"] == first.headers["etag"]
    assert looked_up == []


async def test_a_large_file_is_not_held(
    service_app: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with service_app.client() as client:
        first = await client.get("/docs-assets/swagger-ui-bundle.js")
        looked_up = _looked_up(monkeypatch)
        again = await client.get("/docs-assets/swagger-ui-bundle.js")
    assert len(first.content) > HELD_BYTES
    assert again.content == first.content
    assert looked_up == ["swagger-ui-bundle.js"]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
async def test_a_held_file_answers_only_get_and_head(service_app: InProcess, method: str) -> None:
    # Held, a file's answer came from memory before StaticFiles' method check: once read, the
    # docs' favicon answered a POST or a DELETE with 200 and the file, as if it were a GET.
    async with service_app.client() as client:
        held = await client.get("/docs-assets/favicon.png")
        other = await client.request(method, "/docs-assets/favicon.png")
    assert held.status_code == 200
    assert other.status_code == 405, other.status_code
    assert other.content != held.content


@pytest.mark.parametrize("path", ["/js/..", "/.", "/index.html/.", "/js/../index.html"])
async def test_a_path_with_dot_segments_names_no_file(service_app: InProcess, path: str) -> None:
    # StaticFiles normalised these to the page's folder or index.html: "/" and "/js/.." were one
    # file, and once the page was held by that path it was answered at "/js/.." too (or
    # redirected to "/js/../", where it was), loading its scripts and styles from under /js/.
    # Browsers remove dot segments before sending; a client that sends them gets no file.
    async with service_app.client() as client:
        page = await client.get("/")
    sent = await service_app.raw("GET", path, [], [{"type": "http.request", "body": b""}])
    assert page.status_code == 200
    assert sent[0]["status"] == 404, sent[0]


@pytest.mark.parametrize(
    "path",
    [
        "/no-such-page",
        "/js/no-such.js",
        "/v1/no-such-route",
        "/js/..%2F..%2Fpyproject.toml",
        "/docs-assets/no-such.js",
        "/" + "a" * 300,
        "/js/a%00.js",
    ],
)
async def test_a_path_that_names_no_file_is_answered_404_without_a_look_on_disk(
    service_app: InProcess, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every path no route has reaches the web page's files. StaticFiles looked each up on disk
    # through a thread, and the web page's (html mode) then looked for a 404.html the same way:
    # 1,000 such requests pipelined on one connection cost the API process 0.6-1.4 s of CPU,
    # 1,000 /healthz 0.2-0.4 s. The files are listed once; a path naming none is a 404 at once.
    looked_up = _looked_up(monkeypatch)
    async with service_app.client() as client:
        answer = await client.get(path)
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"
    assert looked_up == []
