"""API keys and per-client rate limits through a real server (service/security.py, guard.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from faceflow.service.security import hash_api_key
from tests.fixtures.live_server import LiveServer, LiveServerFactory, Scrape
from tests.service.conftest import CLIENT_TIMEOUT_S
from tests.service.support import assert_error

# One key per test, so that no test spends another's rate-limit budget.
KEYS = {name: f"ff-test-{name}-key" for name in ("auth", "limited", "other", "probe")}
RATE = "3/minute"


@pytest.fixture(scope="module")
def guarded_server(live_server_factory: LiveServerFactory) -> LiveServer:
    hashes = json.dumps([hash_api_key(key) for key in KEYS.values()])
    return live_server_factory(SERVER__API_KEY_HASHES=hashes, SERVER__RATE_LIMIT=RATE)


@pytest.fixture
def guarded(guarded_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=guarded_server.url, timeout=CLIENT_TIMEOUT_S) as http:
        yield http


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_api_key_is_required_on_v1(guarded: httpx.Client, face_jpeg: bytes) -> None:
    assert_error(guarded.post("/v1/detect", content=face_jpeg), 401, "unauthorized")
    assert_error(guarded.get("/v1/info"), 401, "unauthorized")
    assert_error(
        guarded.post("/v1/detect", content=face_jpeg, headers=bearer("not-a-key")), 403, "forbidden"
    )
    wrong = guarded.post("/v1/detect", content=face_jpeg, headers={"X-API-Key": "nope"})
    assert_error(wrong, 403, "forbidden")
    # A scheme other than Bearer presents no key.
    basic = guarded.post("/v1/detect", content=face_jpeg, headers={"Authorization": "Basic eA=="})
    assert_error(basic, 401, "unauthorized")

    key = KEYS["auth"]
    by_bearer = guarded.post("/v1/detect", content=face_jpeg, headers=bearer(key))
    by_header = guarded.post("/v1/detect", content=face_jpeg, headers={"X-API-Key": key})
    assert (by_bearer.status_code, by_header.status_code) == (200, 200)
    assert by_bearer.json() == by_header.json()
    assert by_bearer.json()["face_count"] == 1


def test_health_and_readiness_are_open_docs_and_metrics_need_a_key(
    guarded: httpx.Client,
) -> None:
    for path in ("/healthz", "/readyz", "/"):
        assert guarded.get(path).status_code == 200, path
    for path in ("/openapi.json", "/docs", "/metrics"):
        assert_error(guarded.get(path), 401, "unauthorized")
        assert guarded.get(path, headers=bearer(KEYS["probe"])).status_code == 200, path


def test_rate_limit_is_per_key(guarded: httpx.Client, face_jpeg: bytes) -> None:
    limited = bearer(KEYS["limited"])
    statuses = [
        guarded.post("/v1/detect", content=face_jpeg, headers=limited).status_code for _ in range(3)
    ]
    assert statuses == [200, 200, 200]
    refused = guarded.post("/v1/detect", content=face_jpeg, headers=limited)
    error = assert_error(refused, 429, "rate_limited")
    assert error["limit"] == "3 per 1 minute"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # Other routes under the same guard share the key's budget.
    assert_error(guarded.get("/v1/info", headers=limited), 429, "rate_limited")

    other = guarded.post("/v1/detect", content=face_jpeg, headers={"X-API-Key": KEYS["other"]})
    assert other.status_code == 200, other.text


def scrape(guarded: httpx.Client) -> Scrape:
    """``/metrics`` of the guarded server, which needs a key like every non-public path."""
    response = guarded.get("/metrics", headers=bearer(KEYS["probe"]))
    response.raise_for_status()
    return Scrape(response.text)


def test_refusals_are_counted(guarded: httpx.Client) -> None:
    before = scrape(guarded)
    probe = bearer(KEYS["probe"])
    for _ in range(4):
        guarded.get("/v1/info", headers=probe)
    guarded.get("/v1/info")
    after = scrape(guarded)
    assert (
        after.value("faceflow_rate_limited_total") - before.value("faceflow_rate_limited_total")
        == 1
    )
    assert (
        after.value("faceflow_errors_total", code="unauthorized")
        - before.value("faceflow_errors_total", code="unauthorized")
        == 1
    )
