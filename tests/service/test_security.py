"""API keys and per-client rate limits through the real app (service/security.py, guard.py)."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from limits.aio.storage import MemoryStorage
from starlette.requests import Request

from faceflow.config import ServerSettings
from faceflow.errors import RateLimited
from faceflow.service import security
from faceflow.service.security import (
    STORAGE_FAILURES,
    STORAGE_RETRY_S,
    KeyFailures,
    RateLimit,
    hash_api_key,
)
from tests.fixtures.live_server import Scrape
from tests.fixtures.redis_server import RedisProcess
from tests.service.in_process import app_settings, running_app
from tests.service.support import assert_error

pytestmark = pytest.mark.asyncio(loop_scope="session")

# One key per test, so that no test spends another's rate-limit budget.
KEYS = {
    name: f"ff-test-{name}-key"
    for name in ("auth", "limited", "other", "probe", "uploader", "log-reader")
}
RATE = "3/minute"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def guarded() -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app that wants a key and limits each key to ``RATE``."""
    hashes = [hash_api_key(key) for key in KEYS.values()]
    settings = app_settings(server={"api_key_hashes": hashes, "rate_limit": RATE})
    async with running_app(settings) as running, running.client() as http:
        yield http


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_api_key_is_required_on_v1(guarded: httpx.AsyncClient, face_jpeg: bytes) -> None:
    assert_error(await guarded.post("/v1/detect", content=face_jpeg), 401, "unauthorized")
    assert_error(await guarded.get("/v1/info"), 401, "unauthorized")
    assert_error(
        await guarded.post("/v1/detect", content=face_jpeg, headers=bearer("not-a-key")),
        403,
        "forbidden",
    )
    wrong = await guarded.post("/v1/detect", content=face_jpeg, headers={"X-API-Key": "nope"})
    assert_error(wrong, 403, "forbidden")
    # A scheme other than Bearer presents no key.
    basic = await guarded.post(
        "/v1/detect", content=face_jpeg, headers={"Authorization": "Basic eA=="}
    )
    assert_error(basic, 401, "unauthorized")

    key = KEYS["auth"]
    by_bearer = await guarded.post("/v1/detect", content=face_jpeg, headers=bearer(key))
    by_header = await guarded.post("/v1/detect", content=face_jpeg, headers={"X-API-Key": key})
    assert (by_bearer.status_code, by_header.status_code) == (200, 200)
    assert by_bearer.json() == by_header.json()
    assert by_bearer.json()["face_count"] == 1


async def test_health_and_readiness_are_open_docs_and_metrics_need_a_key(
    guarded: httpx.AsyncClient,
) -> None:
    for path in ("/healthz", "/readyz", "/"):
        assert (await guarded.get(path)).status_code == 200, path
    for path in ("/openapi.json", "/docs", "/metrics"):
        assert_error(await guarded.get(path), 401, "unauthorized")
        assert (await guarded.get(path, headers=bearer(KEYS["probe"]))).status_code == 200, path


async def test_an_id_photo_s_source_renders_only_for_the_key_that_uploaded_it(
    guarded: httpx.AsyncClient, face_jpeg: bytes
) -> None:
    # source=<X-Source> renders the person's photo without the photo, and it travels in URLs
    # that proxies log: under another key it must be of no use, and say nothing more than an
    # expired one would.
    uploader, reader = bearer(KEYS["uploader"]), bearer(KEYS["log-reader"])
    upload = await guarded.post("/v1/id-photo", content=face_jpeg, headers=uploader)
    assert upload.status_code == 200, upload.text
    name = upload.headers["x-source"]
    digest, _, mac = name.partition(".")
    assert (len(digest), len(mac)) == (64, 32)

    again = await guarded.post(f"/v1/id-photo?background=blue&source={name}", headers=uploader)
    assert again.status_code == 200, again.text
    assert again.headers["x-source"] == name
    for query, headers in ((f"source={name}", reader), (f"source={digest}", uploader)):
        assert_error(
            await guarded.post(f"/v1/id-photo?{query}", headers=headers), 404, "source_expired"
        )


async def test_rate_limit_is_per_key(guarded: httpx.AsyncClient, face_jpeg: bytes) -> None:
    limited = bearer(KEYS["limited"])
    statuses = [
        (await guarded.post("/v1/detect", content=face_jpeg, headers=limited)).status_code
        for _ in range(3)
    ]
    assert statuses == [200, 200, 200]
    refused = await guarded.post("/v1/detect", content=face_jpeg, headers=limited)
    error = assert_error(refused, 429, "rate_limited")
    assert error["limit"] == "3 per 1 minute"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # Other routes under the same guard share the key's budget.
    assert_error(await guarded.get("/v1/info", headers=limited), 429, "rate_limited")

    other = await guarded.post(
        "/v1/detect", content=face_jpeg, headers={"X-API-Key": KEYS["other"]}
    )
    assert other.status_code == 200, other.text


async def scrape(guarded: httpx.AsyncClient) -> Scrape:
    """``/metrics`` of the guarded server, which needs a key like every non-public path."""
    response = await guarded.get("/metrics", headers=bearer(KEYS["probe"]))
    response.raise_for_status()
    return Scrape(response.text)


async def test_refusals_are_counted(guarded: httpx.AsyncClient) -> None:
    before = await scrape(guarded)
    probe = bearer(KEYS["probe"])
    for _ in range(4):
        await guarded.get("/v1/info", headers=probe)
    await guarded.get("/v1/info")
    after = await scrape(guarded)
    assert (
        after.value("faceflow_rate_limited_total") - before.value("faceflow_rate_limited_total")
        == 1
    )
    assert (
        after.value("faceflow_errors_total", code="unauthorized")
        - before.value("faceflow_errors_total", code="unauthorized")
        == 1
    )


async def test_an_address_guessing_keys_is_locked_out_past_the_key_failure_limit(
    face_jpeg: bytes,
) -> None:
    # Guessing keys cost a sha256 and a 403 each, at line rate; counting the failures alone,
    # the right key guessed at the 2,993rd try of 3,000 in 6 s was still let in. Past the limit
    # the address is locked out, the right key too; another address is served.
    key = "ff-test-guessed-key"
    settings = app_settings(
        server={"api_key_hashes": [hash_api_key(key)], "key_failure_limit": "3/minute"}
    )
    async with running_app(settings) as running, running.client() as http:
        refused = [
            (await http.post("/v1/detect", content=face_jpeg, headers=bearer(f"guess-{i}")))
            for i in range(3)
        ]
        assert [r.status_code for r in refused] == [403, 403, 403]
        for past in (
            await http.post("/v1/detect", content=face_jpeg, headers=bearer("guess-3")),
            await http.get("/v1/info"),  # no key at all counts too
            await http.get("/metrics", headers=bearer("guess-4")),  # outside /v1 as well
            await http.post("/v1/detect", content=face_jpeg, headers=bearer(key)),
            await http.get("/metrics", headers=bearer(key)),
        ):
            error = assert_error(past, 429, "rate_limited")
            assert error["limit"] == "3 per 1 minute"
            assert 1 <= int(past.headers["Retry-After"]) <= 60
        async with running.client(peer="192.0.2.7") as elsewhere:
            served = await elsewhere.post("/v1/detect", content=face_jpeg, headers=bearer(key))
        assert served.status_code == 200, served.text


async def test_a_locked_out_address_is_let_in_again_once_its_window_has_room() -> None:
    clock = FakeClock()
    server = ServerSettings(
        api_key_hashes=[hash_api_key("k")],
        key_failure_limit="1/minute",
        rate_limit_storage="memory://",
    )
    failures = KeyFailures.from_settings(server)
    assert failures is not None
    failures._clock = clock
    request = Request({"type": "http", "headers": [], "client": ("198.51.100.4", 1)})
    await failures.count(request)
    with pytest.raises(RateLimited):
        await failures.count(request)
    with pytest.raises(RateLimited) as locked:
        failures.check_locked(request)
    clock.now += locked.value.retry_after_s
    failures.check_locked(request)  # the lockout is over


async def test_a_key_failure_storage_that_cannot_answer_counts_in_the_process() -> None:
    # With the storage Redis paused, 399 of 400 guesses were checked and the right one let in:
    # the rate limit's let-through-on-failure is no rule for key guessing.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there once closed
    server = ServerSettings(
        api_key_hashes=[hash_api_key("k")],
        key_failure_limit="2/minute",
        rate_limit_storage=f"redis://127.0.0.1:{port}/0",
    )
    failures = KeyFailures.from_settings(server)
    assert failures is not None
    request = Request({"type": "http", "headers": [], "client": ("198.51.100.9", 1)})
    for _ in range(2):
        await failures.count(request)
    with pytest.raises(RateLimited) as refused:
        await failures.count(request)
    with pytest.raises(RateLimited) as locked:
        failures.check_locked(request)
    assert f"retry in {locked.value.retry_after_s} s" in locked.value.message
    assert refused.value.details["limit"] == "2 per 1 minute"


async def test_the_key_failure_limit_applies_only_with_api_keys_on() -> None:
    assert KeyFailures.from_settings(ServerSettings()) is None
    keyed = ServerSettings(api_key_hashes=[hash_api_key("k")])
    assert KeyFailures.from_settings(keyed) is not None
    unlimited = keyed.model_copy(update={"key_failure_limit": None})
    assert KeyFailures.from_settings(unlimited) is None


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_a_rate_limit_storage_that_stops_answering_lets_requests_through_and_says_so_once(
    redis_process: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    clock, errors = FakeClock(), []
    server = ServerSettings(rate_limit="2/minute", rate_limit_storage=redis_process.url)
    limit = RateLimit.from_settings(server, on_error=lambda: errors.append(1), clock=clock)
    assert limit is not None
    caplog.set_level(logging.INFO, logger="faceflow.service.security")

    redis_process.pause()
    try:
        for _ in range(10):  # a silent Redis: each waits STORAGE_TIMEOUT_S at most, then passes
            await limit.check("ip:10.0.0.1")
    finally:
        redis_process.resume()

    # Asked until the breaker opened, then not at all: no connection attempt per request.
    assert len(errors) == STORAGE_FAILURES
    outage = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage()[:37] for r in outage] == ["rate-limit storage does not answer: r"]

    clock.now += STORAGE_RETRY_S  # the next request is the breaker's trial, and it answers
    await limit.check("ip:10.0.0.1")
    await limit.check("ip:10.0.0.1")
    with pytest.raises(RateLimited):
        await limit.check("ip:10.0.0.1")
    assert len(errors) == STORAGE_FAILURES
    assert "rate-limit storage answers again: rate limits apply" in caplog.messages


async def test_a_request_counted_as_several_is_charged_at_most_a_rules_allowance() -> None:
    # A batch of 16 images against "5/minute": counted as 5 (its whole allowance, so an idle
    # client's batch goes through), then nothing more fits; against "100/minute" as all 16.
    server = ServerSettings(rate_limit="5/minute;100/minute", rate_limit_storage="memory://")
    limit = RateLimit.from_settings(server)
    assert limit is not None

    await limit.check("ip:10.0.0.2")  # the guard: the request itself
    await limit.check("ip:10.0.0.2", 15, counted=1)  # its 15 further images

    with pytest.raises(RateLimited) as refused:
        await limit.check("ip:10.0.0.2")
    assert refused.value.details["limit"] == "5 per 1 minute"
    other = RateLimit.from_settings(ServerSettings(rate_limit="20/minute"))
    assert other is not None
    await other.check("ip:10.0.0.3")
    await other.check("ip:10.0.0.3", 15, counted=1)
    for _ in range(4):
        await other.check("ip:10.0.0.3")
    with pytest.raises(RateLimited):
        await other.check("ip:10.0.0.3")  # 16 + 4 = 20 used: the 21st is refused


async def test_passed_windows_are_freed_on_the_event_loop_not_one_thread_hop_per_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # limits' own sweep handed every client's window to a thread in turn, and began again as
    # soon as it ended: 5,000 clients counted kept the event loop's thread half busy for good.
    limit = RateLimit.from_settings(ServerSettings(rate_limit="5/minute"))
    assert limit is not None
    storage = limit._limiter.storage
    assert isinstance(storage, security.SweptMemoryStorage)
    # The method replaced is still limits' own (its name mangled), so limits' scheduler calls
    # this one: renamed in another release, the replacement would never run.
    assert "_MemoryStorage__expire_events" in vars(MemoryStorage)
    for client in range(3):
        await storage.acquire_entry(f"passed-{client}", 5, -1)  # its window already over
    await storage.acquire_entry("current", 5, 60)
    hops: list[object] = []

    async def hop(func: object, *args: object) -> object:
        hops.append(func)
        return func(*args)  # type: ignore[operator]

    monkeypatch.setattr(asyncio, "to_thread", hop)
    monkeypatch.setattr(security, "SWEEP_EVERY_S", 0)
    await storage._MemoryStorage__expire_events()

    assert hops == []
    assert set(storage.events) == {"current"}
    assert set(storage.locks) <= {"current"}


@pytest.mark.redis
async def test_a_tls_rate_limit_storage_builds_its_ssl_context_off_the_event_loop(
    tls_url: str, ssl_builds: list[int]
) -> None:
    # limits' Redis storage connected with redis-py's own pool, which builds the SSL context
    # (the default context and the CA certificates loaded) as it connects, on the event loop:
    # every request of the node waited for the first one checked against a rediss:// storage.
    server = ServerSettings(rate_limit="2/minute", rate_limit_storage=tls_url)
    limit = RateLimit.from_settings(server)
    assert limit is not None
    await limit.prepare()  # as the app's start-up does
    assert await limit.check("ip:10.0.0.2"), "the storage did not count: nothing was proven"
    assert ssl_builds, "no SSL context was built: the test would prove nothing"
    assert threading.get_ident() not in ssl_builds


@pytest.mark.redis
async def test_a_tls_rate_limit_storage_not_prepared_builds_its_ssl_context_off_the_loop(
    tls_url: str, ssl_builds: list[int]
) -> None:
    # Without the start-up's build (or with one that failed), the storage's
    # first connection builds it, in a thread too.
    clock = FakeClock()
    server = ServerSettings(rate_limit="2/minute", rate_limit_storage=tls_url)
    limit = RateLimit.from_settings(server, clock=clock)
    assert limit is not None
    for _ in range(50):  # the first checks may be let through while the context is built
        if await limit.check("ip:10.0.0.3"):
            break
        clock.now += STORAGE_RETRY_S  # past the breaker those let-throughs may have opened
    else:
        pytest.fail("the storage never counted a request")
    assert ssl_builds
    assert threading.get_ident() not in ssl_builds


@pytest.mark.redis
async def test_the_app_builds_a_tls_rate_limit_storages_ssl_context_as_it_starts(
    tls_url: str, ssl_builds: list[int]
) -> None:
    # Before its first request, in a thread: the first request is counted, not let through
    # for want of a context, and waits for no build.
    settings = app_settings(server={"rate_limit": RATE, "rate_limit_storage": tls_url})
    async with running_app(settings, ready=False):
        assert ssl_builds, "the app started without building the storage's SSL context"
        assert threading.get_ident() not in ssl_builds
