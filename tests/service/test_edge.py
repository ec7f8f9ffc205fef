"""What the service believes about a request (service/edge.py, jobs' URLs): forwarding headers
only from trusted proxies, no URL built from the Host header, API keys on every non-public path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from faceflow.config import DEFAULT_PUBLIC_PATHS, ServerSettings
from faceflow.service.edge import MAX_FORWARDED_HOPS, KeyGate, NearestHops
from faceflow.service.security import address_identity, hash_api_key
from faceflow.service.state import Current
from tests.fixtures.live_server import LiveServerFactory
from tests.service.in_process import InProcess, app_settings, running_app
from tests.service.support import assert_error

session_loop = pytest.mark.asyncio(loop_scope="session")

KEY = "ff-edge-key"
PROXY = "10.1.2.3"
PUBLIC_URL = "https://faces.example.com"
RATE = "3/minute"
RATE_COUNT = 3


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def edge_app() -> AsyncIterator[InProcess]:
    """Keys on, a per-client rate limit, one trusted proxy network and a public URL. Nothing
    here needs inference, so the tests do not wait for the models."""
    settings = app_settings(
        server={
            "api_key_hashes": [hash_api_key(KEY)],
            "rate_limit": RATE,
            "trusted_proxies": ["10.0.0.0/8"],
            "public_url": PUBLIC_URL + "/",
        }
    )
    async with running_app(settings, ready=False) as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def open_app() -> AsyncIterator[InProcess]:
    """No keys, no public URL; a per-client rate limit and one trusted proxy."""
    settings = app_settings(server={"rate_limit": RATE, "trusted_proxies": [PROXY]})
    async with running_app(settings, ready=False) as running:
        yield running


def _key(**headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY}", **headers}


@session_loop
async def test_forwarded_for_from_an_untrusted_peer_is_ignored(open_app: InProcess) -> None:
    async with open_app.client(peer="192.0.2.10") as client:
        statuses = [
            (
                await client.get("/v1/info", headers={"X-Forwarded-For": f"198.51.100.{i}"})
            ).status_code
            for i in range(RATE_COUNT + 2)
        ]
    # One client, whatever it claims to forward for: its budget, then 429s.
    assert statuses == [200] * RATE_COUNT + [429, 429]


@session_loop
async def test_forwarded_for_from_a_trusted_proxy_names_the_client(
    edge_app: InProcess, caplog: pytest.LogCaptureFixture
) -> None:
    # Keys on: the limit is per key, so the key's identity is what the proxy cannot change;
    # what the proxy forwards is the client address the access log records.
    with caplog.at_level(logging.INFO, logger="faceflow.access"):
        async with edge_app.client(peer=PROXY) as client:
            answer = await client.get(
                "/healthz",
                headers={"X-Forwarded-For": "203.0.113.7, 10.9.9.9", "X-Forwarded-Proto": "https"},
            )
        async with edge_app.client(peer="192.0.2.20") as client:
            spoofed = await client.get("/healthz", headers={"X-Forwarded-For": "203.0.113.8"})
    assert (answer.status_code, spoofed.status_code) == (200, 200)
    clients = [getattr(r, "client", None) for r in caplog.records if r.name == "faceflow.access"]
    # The proxy's own hop (10.9.9.9, trusted) is skipped; an untrusted peer's header is not read.
    assert clients == ["203.0.113.7", "192.0.2.20"]


@session_loop
async def test_only_the_nearest_forwarded_hops_are_read(
    edge_app: InProcess, caplog: pytest.LogCaptureFixture
) -> None:
    def trusted(hops: int) -> str:
        return ", ".join(["10.9.9.9"] * hops)

    # A client's own hops, ahead of its address as a proxy appends it, are not all split.
    written = ", ".join(["198.51.100.1"] * 6_000)
    with caplog.at_level(logging.INFO, logger="faceflow.access"):
        async with edge_app.client(peer=PROXY) as client:
            near = await client.get(
                "/healthz",
                headers={"X-Forwarded-For": f"203.0.113.7, {trusted(MAX_FORWARDED_HOPS - 1)}"},
            )
            far = await client.get(
                "/healthz",
                headers={"X-Forwarded-For": f"203.0.113.7, {trusted(MAX_FORWARDED_HOPS)}"},
            )
            long = await client.get(
                "/healthz", headers={"X-Forwarded-For": f"{written}, 203.0.113.9, 10.9.9.9"}
            )
    assert (near.status_code, far.status_code, long.status_code) == (200, 200, 200)
    clients = [getattr(r, "client", None) for r in caplog.records if r.name == "faceflow.access"]
    # 16 trusted hops end what is read: the client is the furthest of them, itself trusted.
    assert clients == ["203.0.113.7", "10.9.9.9", "203.0.113.9"]


@session_loop
async def test_nearest_hops_hands_on_the_last_hops_of_every_line() -> None:
    seen: list[list[tuple[bytes, bytes]]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["headers"])

    hops = [f"192.0.2.{i % 250}".encode() for i in range(40)]
    few = [(b"x-forwarded-for", b", ".join(hops[:3])), (b"host", b"x")]
    many = [
        (b"x-forwarded-for", b", ".join(hops[:30])),
        (b"host", b"x"),
        (b"x-forwarded-for", b",".join(hops[30:])),
    ]
    for headers in (few, many):
        await NearestHops(app)({"type": "http", "headers": headers}, _receive, _send)

    assert seen[0] is few
    assert seen[1][0] == (b"host", b"x")
    [(name, value)] = seen[1][1:]
    assert name == b"x-forwarded-for"
    assert [hop.strip() for hop in value.split(b",")] == hops[-MAX_FORWARDED_HOPS:]


async def _receive() -> dict[str, object]:
    raise AssertionError("not called")


async def _send(message: object) -> None:
    raise AssertionError("not called")


@session_loop
async def test_trusted_proxy_clients_have_their_own_rate_limits(open_app: InProcess) -> None:
    async with open_app.client(peer=PROXY) as client:
        first = [
            (await client.get("/v1/info", headers={"X-Forwarded-For": "203.0.113.1"})).status_code
            for _ in range(RATE_COUNT + 1)
        ]
        other = await client.get("/v1/info", headers={"X-Forwarded-For": "203.0.113.2"})
    assert first == [200] * RATE_COUNT + [429]
    assert other.status_code == 200


@session_loop
async def test_an_ipv6_client_is_limited_by_its_64_not_by_each_address(
    open_app: InProcess,
) -> None:
    # A client holding a /64 may take a new address for every request: one budget for all.
    statuses = []
    for i in range(RATE_COUNT + 1):
        async with open_app.client(peer=f"2001:db8:7:7::{i + 1:x}") as client:
            statuses.append((await client.get("/v1/info")).status_code)
    async with open_app.client(peer="2001:db8:7:8::1") as client:
        next_network = (await client.get("/v1/info")).status_code
    assert statuses == [200] * RATE_COUNT + [429]
    assert next_network == 200


@pytest.mark.parametrize(
    ("host", "identity"),
    [
        ("192.0.2.7", "ip:192.0.2.7"),
        ("::ffff:192.0.2.7", "ip:192.0.2.7"),  # IPv4 arriving on a dual-stack socket
        ("2001:db8:1:2::1", "ip:2001:db8:1:2::/64"),
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "ip:2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "ip:2001:db8:1:3::/64"),
        ("unknown", "ip:unknown"),
    ],
)
def test_a_client_address_is_limited_as_its_owner_holds_it(host: str, identity: str) -> None:
    assert address_identity(host) == identity


@session_loop
async def test_job_urls_never_echo_the_host_header(
    open_app: InProcess, edge_app: InProcess, face_jpeg: bytes
) -> None:
    evil = {"Host": "evil.example", "X-Forwarded-Host": "evil.example"}
    async with open_app.client() as client:
        relative = await client.post("/v1/jobs?operation=detect", content=face_jpeg, headers=evil)
    async with edge_app.client(peer=PROXY) as client:
        absolute = await client.post(
            "/v1/jobs?operation=detect",
            content=face_jpeg,
            headers=_key(**evil, **{"X-Forwarded-Proto": "http"}),
        )
    assert (relative.status_code, absolute.status_code) == (202, 202)
    handle = relative.json()["handle"]
    assert relative.headers["Location"] == f"/v1/jobs/{handle}"
    assert relative.json()["status_url"] == f"/v1/jobs/{handle}"
    assert relative.json()["result_url"] == f"/v1/jobs/{handle}/result"
    handle = absolute.json()["handle"]
    assert absolute.headers["Location"] == f"{PUBLIC_URL}/v1/jobs/{handle}"
    assert absolute.json()["status_url"] == f"{PUBLIC_URL}/v1/jobs/{handle}"
    assert absolute.json()["result_url"] == f"{PUBLIC_URL}/v1/jobs/{handle}/result"
    assert "evil" not in relative.text + absolute.text


@session_loop
async def test_under_a_root_path_job_urls_start_with_it_unless_the_public_url_is_set(
    open_app: InProcess, edge_app: InProcess, face_jpeg: bytes
) -> None:
    # Behind a proxy serving faceflow at /faces (server.root_path), a bare /v1/jobs/... is a
    # path outside faceflow on the proxy's host. public_url, where set, already includes the
    # prefix: it is the base a client reaches faceflow at.
    async with open_app.client(root_path="/faces") as client:
        relative = await client.post("/faces/v1/jobs?operation=detect", content=face_jpeg)
        handle = relative.json()["handle"]
        followed = await client.get(relative.headers["Location"])
    async with edge_app.client(peer=PROXY, root_path="/faces") as client:
        absolute = await client.post(
            "/faces/v1/jobs?operation=detect", content=face_jpeg, headers=_key()
        )
    assert (relative.status_code, absolute.status_code) == (202, 202)
    assert relative.headers["Location"] == f"/faces/v1/jobs/{handle}"
    assert relative.json()["status_url"] == f"/faces/v1/jobs/{handle}"
    assert relative.json()["result_url"] == f"/faces/v1/jobs/{handle}/result"
    assert followed.status_code == 200, followed.text
    assert followed.json()["handle"] == handle
    handle = absolute.json()["handle"]
    assert absolute.headers["Location"] == f"{PUBLIC_URL}/v1/jobs/{handle}"
    assert absolute.json()["result_url"] == f"{PUBLIC_URL}/v1/jobs/{handle}/result"


# Under a proxy's prefix (uvicorn --root-path) the server writes it in front of the path too;
# public paths are the app's own: with it in front, the probes and the page asked for a key.
ROOT_PATHS = ["", "/faces"]


@session_loop
@pytest.mark.parametrize("root_path", ROOT_PATHS)
@pytest.mark.parametrize("path", ["/metrics", "/docs", "/openapi.json", "/redoc", "/nowhere"])
async def test_with_keys_on_only_public_paths_are_open(
    edge_app: InProcess, path: str, root_path: str
) -> None:
    async with edge_app.client(root_path=root_path) as client:
        anonymous = await client.get(root_path + path)
        wrong = await client.get(root_path + path, headers={"X-API-Key": "not-it"})
        keyed = await client.get(root_path + path, headers=_key())
    assert_error(anonymous, 401, "unauthorized")
    assert_error(wrong, 403, "forbidden")
    assert keyed.status_code == (404 if path == "/nowhere" else 200)


@session_loop
@pytest.mark.parametrize("root_path", ROOT_PATHS)
@pytest.mark.parametrize("path", ["/healthz", "/", "/index.html", "/favicon.svg", "/css/app.css"])
async def test_probes_and_the_web_page_stay_open(
    edge_app: InProcess, path: str, root_path: str
) -> None:
    async with edge_app.client(root_path=root_path) as client:
        response = await client.get(root_path + path)
    assert response.status_code == 200, (path, response.text)


@session_loop
async def test_readyz_is_public(edge_app: InProcess) -> None:
    async with edge_app.client() as client:
        response = await client.get("/readyz")
    # Public (no 401) whether or not the models have loaded yet.
    assert response.status_code in (200, 503)
    assert response.json()["workers"] == 1


@session_loop
async def test_listed_paths_are_opened() -> None:
    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("inner")(scope, receive, send)

    settings = ServerSettings(
        api_key_hashes=[hash_api_key(KEY)], public_paths=[*DEFAULT_PUBLIC_PATHS, "/metrics"]
    )
    transport = httpx.ASGITransport(app=KeyGate(inner, settings, Current()))
    async with httpx.AsyncClient(transport=transport, base_url="http://faceflow.test") as client:
        metrics = await client.get("/metrics")
        below = await client.get("/js/deep/er.js")
        docs = await client.get("/docs")
        guarded = await client.get("/v1/info")
    assert (metrics.text, below.text, guarded.text) == ("inner", "inner", "inner")
    assert_error(docs, 401, "unauthorized")


def test_serve_ignores_forwarded_for_from_loopback(
    live_server_factory: LiveServerFactory,
) -> None:
    """`faceflow serve` itself (uvicorn) must not believe a local client's X-Forwarded-For:
    uvicorn's default would, and each spoofed address would get its own rate limit."""
    server = live_server_factory(wait=False, SERVER__RATE_LIMIT=RATE, RUNTIME__WARMUP="false")
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            deadline = time.monotonic() + 90
            while True:
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, server.log_tail()
                time.sleep(0.05)
            statuses = [
                client.post(
                    "/v1/echo-size", content=b"x", headers={"X-Forwarded-For": f"198.51.100.{i}"}
                ).status_code
                for i in range(RATE_COUNT + 2)
            ]
    finally:
        server.stop()
    assert statuses == [200] * RATE_COUNT + [429, 429]
