"""The job API over HTTP: the embedded runner on the default server, and scale-out with two API
processes and two ``faceflow worker`` processes sharing a queue Redis (AOF) and a cache Redis."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from redis import Redis
from rq.registry import FinishedJobRegistry
from rq.serializers import JSONSerializer

from faceflow.config import ModelSettings
from tests.fixtures.live_server import LiveServer, LiveServerFactory
from tests.fixtures.redis_server import RedisProcess, RedisServerFactory
from tests.jobs.support import QUEUE, WorkerFleet, variant, worker_env

TIMEOUT_S = 60.0
KEY_A, KEY_B = "key-alpha-for-tests", "key-bravo-for-tests"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def poll(client: httpx.Client, handle: str, headers: dict[str, str] | None = None) -> Any:
    """GET the job until it is done (503 while a queue restarts is tolerated)."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        response = client.get(f"/v1/jobs/{handle}", headers=headers)
        if response.status_code == 200 and response.json()["status"] in {
            "finished",
            "failed",
            "canceled",
        }:
            return response.json()
        assert response.status_code in (200, 503), response.text
        time.sleep(0.05)
    raise TimeoutError(f"job {handle} not done in {TIMEOUT_S} s")


def submit(
    client: httpx.Client, data: bytes, operation: str = "analyze", **params: Any
) -> httpx.Response:
    return client.post(
        "/v1/jobs",
        params={"operation": operation, **params},
        content=data,
        headers={"Content-Type": "image/jpeg", **params.pop("headers", {})},
    )


def test_embedded_job_result_equals_the_sync_answer(client: httpx.Client, face_jpeg: bytes) -> None:
    data = variant(face_jpeg)
    accepted = submit(client, data, attributes="age,gender")
    assert accepted.status_code == 202, accepted.text
    body = accepted.json()
    assert accepted.headers["Location"] == body["status_url"]
    assert len(body["handle"]) == 32
    done = poll(client, body["handle"])
    assert done["status"] == "finished"
    result = client.get(f"/v1/jobs/{body['handle']}/result")
    assert result.status_code == 200
    sync = client.post("/v1/analyze", content=data, headers={"Content-Type": "image/jpeg"})
    assert sync.headers["X-Cache"] == "hit"  # the job's result is the sync endpoint's cache entry
    assert result.content == sync.content
    assert done["result"] == json.loads(sync.content)


def test_embedded_annotate_job_serves_its_image(client: httpx.Client, face_jpeg: bytes) -> None:
    handle = submit(client, variant(face_jpeg), "annotate", format="png").json()["handle"]
    done = poll(client, handle)
    assert done["media_type"] == "image/png"
    assert "result" not in done
    image = client.get(done["result_url"])
    assert image.headers["content-type"] == "image/png"
    assert image.content.startswith(b"\x89PNG")


def test_embedded_id_photo_job_equals_the_sync_photo(
    client: httpx.Client, face_jpeg: bytes
) -> None:
    data = variant(face_jpeg)
    options = {"spec": "us-passport", "background": "blue"}
    handle = submit(client, data, "id-photo", **options).json()["handle"]
    done = poll(client, handle)
    assert done["status"] == "finished", done
    assert done["media_type"] == "image/jpeg"
    photo = client.get(done["result_url"])
    sync = client.post(
        "/v1/id-photo", params=options, content=data, headers={"Content-Type": "image/jpeg"}
    )
    assert sync.status_code == 200
    assert sync.headers["X-Cache"] == "hit"
    assert photo.content == sync.content


def test_embedded_sheet_job_equals_the_sync_sheet(client: httpx.Client, face_jpeg: bytes) -> None:
    data = variant(face_jpeg)
    options = {"layout": "cn-1inch:2,cn-2inch:1", "sheet": "5inch", "background": "red"}
    handle = submit(client, data, "id-photo-sheet", **options).json()["handle"]
    done = poll(client, handle)
    assert done["status"] == "finished", done
    sheet = client.get(done["result_url"])
    sync = client.post(
        "/v1/id-photo/sheet", params=options, content=data, headers={"Content-Type": "image/jpeg"}
    )
    assert sync.status_code == 200
    assert sync.headers["X-Cache"] == "hit"
    assert sheet.content == sync.content
    assert sheet.headers["content-type"] == "image/jpeg"


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"operation": "resize"}, 400, "invalid_parameter"),
        ({"operation": "detect", "colour": "red"}, 400, "invalid_parameter"),
        ({"operation": "detect", "threshold": "7"}, 400, "invalid_parameter"),
    ],
)
def test_bad_submissions(
    client: httpx.Client, face_jpeg: bytes, params: dict[str, str], status: int, code: str
) -> None:
    response = client.post("/v1/jobs", params=params, content=face_jpeg)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_unknown_handles_are_404(client: httpx.Client) -> None:
    for path in ("/v1/jobs/nope", "/v1/jobs/" + "x" * 32, "/v1/jobs/" + "x" * 32 + "/result"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


def test_openapi_declares_every_job_status(client: httpx.Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths["/v1/jobs"]["post"]["responses"]) >= {"202", "400", "413", "503"}
    assert set(paths["/v1/jobs/{handle}"]["get"]["responses"]) >= {"200", "404", "503"}
    assert set(paths["/v1/jobs/{handle}"]["delete"]["responses"]) >= {"200", "404", "409"}
    assert set(paths["/v1/jobs/{handle}/result"]["get"]["responses"]) >= {"200", "409", "422"}


@pytest.fixture(scope="module")
def cluster(
    redis_server_factory: RedisServerFactory,
    live_server_factory: LiveServerFactory,
    pulled_model_settings: ModelSettings,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LiveServer, LiveServer, WorkerFleet, RedisProcess]]:
    """Two API processes and two worker processes; a queue Redis (AOF) and a cache Redis."""
    queue_redis = redis_server_factory(appendonly=True)
    cache_redis = redis_server_factory()
    digests = json.dumps([hashlib.sha256(k.encode()).hexdigest() for k in (KEY_A, KEY_B)])
    env = {
        "JOBS__REDIS_URL": queue_redis.url,
        "JOBS__QUEUE_NAME": QUEUE,
        "JOBS__MAX_QUEUED": 3,
        "CACHE__REDIS_URL": cache_redis.url,
        "SERVER__API_KEY_HASHES": digests,
    }
    apis = [live_server_factory(wait=False, **env) for _ in range(2)]
    fleet = WorkerFleet(
        worker_env(
            pulled_model_settings.dir,
            queue_redis.url,
            CACHE__REDIS_URL=cache_redis.url,
        ),
        2,
        tmp_path_factory.mktemp("cluster") / "workers.log",
    ).start(wait=False)
    try:
        for api in apis:
            api.wait_ready()
        fleet.wait_workers(2)
        yield apis[0], apis[1], fleet, queue_redis
    finally:
        fleet.stop()
        for api in apis:
            api.stop()


@pytest.fixture
def clients(
    cluster: tuple[LiveServer, LiveServer, WorkerFleet, RedisProcess],
) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    a, b, fleet, _ = cluster
    fleet.wait_workers(2)
    with (
        httpx.Client(base_url=a.url, timeout=TIMEOUT_S, headers=bearer(KEY_A)) as ca,
        httpx.Client(base_url=b.url, timeout=TIMEOUT_S, headers=bearer(KEY_A)) as cb,
    ):
        yield ca, cb


@pytest.mark.redis
def test_scale_out_submit_on_one_node_poll_on_another(
    clients: tuple[httpx.Client, httpx.Client], face_jpeg: bytes
) -> None:
    node_a, node_b = clients
    data = variant(face_jpeg)
    handle = submit(node_a, data).json()["handle"]
    done = poll(node_b, handle)
    assert done["status"] == "finished"
    assert done["attempts"] == 1
    result = node_b.get(f"/v1/jobs/{handle}/result")
    sync = node_a.post("/v1/analyze", content=data, headers={"Content-Type": "image/jpeg"})
    assert sync.headers["X-Cache"] == "hit"  # the worker stored it in the shared cache
    assert result.content == sync.content
    # and the other way round: a sync result (shared cache) finishes a job at submission
    fresh = variant(face_jpeg)
    node_b.post("/v1/analyze", content=fresh, headers={"Content-Type": "image/jpeg"})
    cached = submit(node_a, fresh).json()
    assert (cached["status"], cached["from_cache"]) == ("finished", True)


@pytest.mark.redis
def test_scale_out_duplicates_run_once(
    cluster: tuple[LiveServer, LiveServer, WorkerFleet, RedisProcess],
    clients: tuple[httpx.Client, httpx.Client],
    face_jpeg: bytes,
) -> None:
    node_a, node_b = clients
    queue = Redis.from_url(cluster[3].url)
    finished = FinishedJobRegistry(QUEUE, connection=queue, serializer=JSONSerializer)
    before = finished.count
    data = variant(face_jpeg)
    handles = [submit(node, data).json()["handle"] for node in (node_a, node_b, node_a, node_b)]
    assert len(set(handles)) == 4
    records = [poll(node_a, h) for h in handles]
    assert {r["status"] for r in records} == {"finished"}
    assert finished.count - before == 1
    queue.close()


@pytest.mark.redis
def test_scale_out_handles_are_private_to_their_key(
    clients: tuple[httpx.Client, httpx.Client], face_jpeg: bytes
) -> None:
    node_a, node_b = clients
    handle = submit(node_a, variant(face_jpeg)).json()["handle"]
    other = node_b.get(f"/v1/jobs/{handle}", headers=bearer(KEY_B))
    assert other.status_code == 404
    assert node_b.delete(f"/v1/jobs/{handle}", headers=bearer(KEY_B)).status_code == 404
    anonymous = httpx.get(f"{node_b.base_url}/v1/jobs/{handle}", timeout=TIMEOUT_S)
    assert anonymous.status_code == 401
    assert poll(node_b, handle)["status"] == "finished"


@pytest.mark.redis
def test_scale_out_queue_full_and_cancel(
    cluster: tuple[LiveServer, LiveServer, WorkerFleet, RedisProcess],
    clients: tuple[httpx.Client, httpx.Client],
    face_jpeg: bytes,
) -> None:
    node_a, node_b = clients
    api_a, api_b, fleet, _ = cluster
    submitted_on_b = api_b.metrics().value("faceflow_jobs", event="submitted")
    held = [submit(node_a, variant(face_jpeg, "FF-HOLD"), "detect") for _ in range(2)]
    assert all(r.status_code == 202 for r in held)
    deadline = time.monotonic() + TIMEOUT_S
    while len([w for w in fleet.live_workers() if w.get_state() == "busy"]) < 2:
        assert time.monotonic() < deadline, "workers never picked up the held jobs"
        time.sleep(0.05)
    queued = [submit(node_b, variant(face_jpeg), "detect") for _ in range(3)]
    assert [r.status_code for r in queued] == [202, 202, 202]
    full = submit(node_a, variant(face_jpeg), "detect")
    assert full.status_code == 503
    assert full.json()["error"]["code"] == "queue_full"
    assert int(full.headers["Retry-After"]) >= 1
    # Both nodes report the one shared queue; each counts what it accepted.
    assert api_a.metrics()["faceflow_jobs_queued"] == 3
    assert api_b.metrics()["faceflow_jobs_queued"] == 3
    assert api_b.metrics().value("faceflow_jobs", event="submitted") - submitted_on_b == 3

    victim = queued[0].json()["handle"]
    canceled = node_a.delete(f"/v1/jobs/{victim}")
    assert canceled.status_code == 200
    assert canceled.json()["status"] == "canceled"
    assert node_b.get(f"/v1/jobs/{victim}/result").status_code == 409
    for response in [*held, *queued[1:]]:
        assert poll(node_b, response.json()["handle"])["status"] == "finished"
    assert poll(node_b, victim)["status"] == "canceled"
    finished = held[0].json()["handle"]
    assert node_a.delete(f"/v1/jobs/{finished}").status_code == 409
