"""The job API over HTTP: the embedded runner of the session's in-process app, and scale-out with
two API nodes (each the real app in this process, tests/service/in_process.py) and two
``faceflow worker`` processes sharing a queue Redis (AOF) and a cache Redis: the nodes share
nothing but the two Redis servers, as separate API processes would."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from redis import Redis
from rq.registry import FinishedJobRegistry
from rq.serializers import JSONSerializer

from faceflow.config import DEFAULT_PUBLIC_PATHS, ModelSettings, Settings
from faceflow.runtime.context import WorkerContext
from tests.fixtures.live_server import Scrape
from tests.fixtures.redis_server import RedisProcess, RedisServerFactory
from tests.jobs.faults import Gate
from tests.jobs.support import QUEUE, WorkerFleet, variant, work_burst, worker_env
from tests.service.in_process import InProcess, app_settings, running_app
from tests.service.support import assert_error

pytestmark = pytest.mark.asyncio(loop_scope="session")

TIMEOUT_S = 60.0
KEY_A, KEY_B = "key-alpha-for-tests", "key-bravo-for-tests"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


Cluster = tuple[InProcess, InProcess, WorkerFleet, RedisProcess]


@pytest_asyncio.fixture(loop_scope="session")
async def client(service_app: InProcess) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the session's in-process app, whose jobs run on its embedded runner (in place
    of tests/service/conftest.py's client of the live server)."""
    async with service_app.client() as http:
        yield http


async def poll(
    client: httpx.AsyncClient, handle: str, headers: dict[str, str] | None = None
) -> Any:
    """GET the job until it is done (503 while a queue restarts is tolerated)."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        response = await client.get(f"/v1/jobs/{handle}", headers=headers)
        if response.status_code == 200 and response.json()["status"] in {
            "finished",
            "failed",
            "canceled",
        }:
            return response.json()
        assert response.status_code in (200, 503), response.text
        await asyncio.sleep(0.05)
    raise TimeoutError(f"job {handle} not done in {TIMEOUT_S} s")


async def submit(
    client: httpx.AsyncClient, data: bytes, operation: str = "analyze", **params: Any
) -> httpx.Response:
    return await client.post(
        "/v1/jobs",
        params={"operation": operation, **params},
        content=data,
        headers={"Content-Type": "image/jpeg", **params.pop("headers", {})},
    )


async def test_embedded_job_result_equals_the_sync_answer(
    client: httpx.AsyncClient, face_jpeg: bytes
) -> None:
    data = variant(face_jpeg)
    accepted = await submit(client, data, attributes="age,gender")
    assert accepted.status_code == 202, accepted.text
    body = accepted.json()
    assert accepted.headers["Location"] == body["status_url"]
    assert len(body["handle"]) == 48
    done = await poll(client, body["handle"])
    assert done["status"] == "finished"
    result = await client.get(f"/v1/jobs/{body['handle']}/result")
    assert result.status_code == 200
    sync = await client.post("/v1/analyze", content=data, headers={"Content-Type": "image/jpeg"})
    assert sync.headers["X-Cache"] == "hit"  # the job's result is the sync endpoint's cache entry
    assert result.content == sync.content
    assert done["result"] == json.loads(sync.content)


async def test_embedded_annotate_job_serves_its_image(
    client: httpx.AsyncClient, face_jpeg: bytes
) -> None:
    handle = (await submit(client, variant(face_jpeg), "annotate", format="png")).json()["handle"]
    done = await poll(client, handle)
    assert done["media_type"] == "image/png"
    assert "result" not in done
    image = await client.get(done["result_url"])
    assert image.headers["content-type"] == "image/png"
    assert image.content.startswith(b"\x89PNG")


async def test_embedded_id_photo_job_equals_the_sync_photo(
    client: httpx.AsyncClient, face_jpeg: bytes
) -> None:
    data = variant(face_jpeg)
    options = {"spec": "us-passport", "background": "blue"}
    handle = (await submit(client, data, "id-photo", **options)).json()["handle"]
    done = await poll(client, handle)
    assert done["status"] == "finished", done
    assert done["media_type"] == "image/jpeg"
    photo = await client.get(done["result_url"])
    sync = await client.post(
        "/v1/id-photo", params=options, content=data, headers={"Content-Type": "image/jpeg"}
    )
    assert sync.status_code == 200
    assert sync.headers["X-Cache"] == "hit"
    assert photo.content == sync.content
    # The image answer's only report is its verdict header: a job's client is owed it too.
    assert photo.headers["X-Compliance"] == sync.headers["X-Compliance"]


async def test_a_json_id_photo_jobs_status_does_not_carry_its_image(
    client: httpx.AsyncClient, face_jpeg: bytes
) -> None:
    # Its answer holds the photo in base64: every poll of the status sent it again (5 MB for a
    # 4000 px PNG), and the status's schema says a face report.
    handle = (await submit(client, variant(face_jpeg), "id-photo", response="json")).json()[
        "handle"
    ]
    done = await poll(client, handle)
    assert done["status"] == "finished", done
    assert done["media_type"] == "application/json"
    assert done.get("result") is None
    answer = (await client.get(done["result_url"])).json()
    assert answer["image_base64"]


async def test_a_failed_jobs_error_has_the_sync_errors_details(
    client: httpx.AsyncClient, face_jpeg: bytes
) -> None:
    """A face past the last: the job's record and result carry what the sync route answers,
    details included (parameter, min, max), not only its code and message."""
    data = variant(face_jpeg)
    handle = (await submit(client, data, "id-photo", face=3)).json()["handle"]
    done = await poll(client, handle)
    sync = await client.post(
        "/v1/id-photo", params={"face": 3}, content=data, headers={"Content-Type": "image/jpeg"}
    )
    expected = assert_error(sync, 400, "out_of_range")
    assert {"parameter": "face", "min": 1, "max": 1}.items() <= expected.items()

    assert done["status"] == "failed"
    assert done["error"] == expected
    result = await client.get(f"/v1/jobs/{handle}/result")
    assert assert_error(result, 400, "out_of_range") == expected


async def test_embedded_sheet_job_equals_the_sync_sheet(
    client: httpx.AsyncClient, face_jpeg: bytes
) -> None:
    data = variant(face_jpeg)
    options = {"layout": "cn-1inch:2,cn-2inch:1", "sheet": "5inch", "background": "red"}
    handle = (await submit(client, data, "id-photo-sheet", **options)).json()["handle"]
    done = await poll(client, handle)
    assert done["status"] == "finished", done
    sheet = await client.get(done["result_url"])
    sync = await client.post(
        "/v1/id-photo/sheet", params=options, content=data, headers={"Content-Type": "image/jpeg"}
    )
    assert sync.status_code == 200
    assert sync.headers["X-Cache"] == "hit"
    assert sheet.content == sync.content
    assert sheet.headers["content-type"] == "image/jpeg"
    assert sheet.headers["X-Compliance"] == sync.headers["X-Compliance"]


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"operation": "resize"}, 400, "invalid_parameter"),
        ({"operation": "detect", "colour": "red"}, 400, "invalid_parameter"),
        ({"operation": "detect", "threshold": "7"}, 400, "invalid_parameter"),
    ],
)
async def test_bad_submissions(
    client: httpx.AsyncClient, face_jpeg: bytes, params: dict[str, str], status: int, code: str
) -> None:
    response = await client.post("/v1/jobs", params=params, content=face_jpeg)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({}, "operation"),
        ({"operation": "resize"}, "operation"),
        ({"operation": "analyze", "threshold": "7"}, "threshold"),
        ({"operation": "id-photo", "source": "a" * 64}, "source"),  # a sync option, not a job's
    ],
)
async def test_a_job_s_options_are_checked_before_its_upload(
    client: httpx.AsyncClient, params: dict[str, str], parameter: str
) -> None:
    # As the sync routes do: without a body, the answer names the option at fault, not the body
    # (it read "the request has no body" for source= sent as to /v1/id-photo).
    response = await client.post("/v1/jobs", params=params)

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["parameter"]) == ("invalid_parameter", parameter)


NOT_AN_IMAGE = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\n"


@pytest.mark.parametrize(
    ("operation", "sync_path", "options"),
    [
        ("detect", "/v1/detect", {}),
        ("analyze", "/v1/analyze", {"attributes": "age"}),
        ("annotate", "/v1/annotate", {"format": "png"}),
        ("id-photo", "/v1/id-photo", {"spec": "us-passport"}),
        ("id-photo-sheet", "/v1/id-photo/sheet", {"layout": "cn-1inch:4"}),
    ],
)
async def test_bytes_no_decoder_takes_are_refused_at_submission_as_the_sync_route_refuses_them(
    client: httpx.AsyncClient,
    service_app: InProcess,
    operation: str,
    sync_path: str,
    options: dict[str, str],
) -> None:
    """The sync route's 415, code and body, and nothing queued: such a job was taken (202), held
    its place in the queue, and failed with that 415 only once a worker sniffed it."""
    runner = service_app.services.jobs
    assert runner is not None
    submitted = runner.stats()["submitted"]
    refused = await submit(client, NOT_AN_IMAGE, operation, **options)
    sync = await client.post(
        sync_path, params=options, content=NOT_AN_IMAGE, headers={"Content-Type": "image/jpeg"}
    )
    error = assert_error(refused, 415, "unsupported_format")
    assert error["detected"] == "PDF"
    assert refused.json() == sync.json()
    assert refused.headers["X-Error-Code"] == sync.headers["X-Error-Code"]
    assert runner.stats()["submitted"] == submitted


@pytest.mark.parametrize("runner", ["embedded", pytest.param("redis", marks=pytest.mark.redis)])
async def test_bytes_no_decoder_takes_take_none_of_their_key_s_share_of_jobs(
    runner: str, redis_server_factory: RedisServerFactory, face_jpeg: bytes
) -> None:
    """With either runner (the submission path is the route's): a key allowed one queued job
    sends bytes no decoder takes, again and again, then a photo, which is still taken."""
    digest = hashlib.sha256(KEY_A.encode()).hexdigest()
    jobs: dict[str, Any] = {"max_queued_per_client": 1}
    if runner == "redis":
        jobs |= {"redis_url": redis_server_factory(appendonly=True).url, "queue_name": QUEUE}
    settings = app_settings(jobs=jobs, server={"api_key_hashes": [digest]})
    # Not waited for: the inference process loads meanwhile; nothing here needs it.
    async with (
        running_app(settings, ready=False) as node,
        node.client(headers=bearer(KEY_A)) as http,
    ):
        jobs_runner = node.services.jobs
        assert jobs_runner is not None
        assert jobs_runner.backend == runner
        for _ in range(3):
            assert_error(await submit(http, NOT_AN_IMAGE, "detect"), 415, "unsupported_format")
        assert await jobs_runner.queue_depth() == 0
        assert (await submit(http, variant(face_jpeg), "detect")).status_code == 202


async def test_unknown_handles_are_404(client: httpx.AsyncClient) -> None:
    for path in ("/v1/jobs/nope", "/v1/jobs/" + "x" * 48, "/v1/jobs/" + "x" * 48 + "/result"):
        response = await client.get(path)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


async def test_openapi_declares_every_job_status(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert set(paths["/v1/jobs"]["post"]["responses"]) >= {"202", "400", "413", "503"}
    assert set(paths["/v1/jobs/{handle}"]["get"]["responses"]) >= {"200", "404", "503"}
    assert set(paths["/v1/jobs/{handle}"]["delete"]["responses"]) >= {"200", "404", "409"}
    assert set(paths["/v1/jobs/{handle}/result"]["get"]["responses"]) >= {"200", "409", "422"}


def node_settings(queue_url: str, cache_url: str) -> Settings:
    """An API node of the cluster: jobs on the queue Redis, results in the cache Redis."""
    digests = [hashlib.sha256(k.encode()).hexdigest() for k in (KEY_A, KEY_B)]
    return app_settings(
        jobs={"redis_url": queue_url, "queue_name": QUEUE, "max_queued": 3},
        # The shared cache is what these tests check, not its timeout: the default 50 ms per
        # call, missed by a node in the suite's own busy process, read as a miss.
        cache={"redis_url": cache_url, "redis_timeout_ms": 5000},
        # /metrics is scraped without a key, as a Prometheus on a private network would.
        server={"api_key_hashes": digests, "public_paths": [*DEFAULT_PUBLIC_PATHS, "/metrics"]},
    )


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def cluster(
    redis_server_factory: RedisServerFactory,
    pulled_model_settings: ModelSettings,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Cluster]:
    """Two API nodes and two worker processes; a queue Redis (AOF) and a cache Redis."""
    queue_redis = redis_server_factory(appendonly=True)
    cache_redis = redis_server_factory()
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
        async with (
            running_app(node_settings(queue_redis.url, cache_redis.url), ready=False) as a,
            running_app(node_settings(queue_redis.url, cache_redis.url), ready=False) as b,
        ):
            # The nodes' inference processes load while the workers' do.
            await asyncio.gather(
                a.wait_ready(), b.wait_ready(), asyncio.to_thread(fleet.wait_workers, 2)
            )
            yield a, b, fleet, queue_redis
    finally:
        fleet.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def clients(cluster: Cluster) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    a, b, fleet, _ = cluster
    await asyncio.to_thread(fleet.wait_workers, 2)
    async with a.client(headers=bearer(KEY_A)) as ca, b.client(headers=bearer(KEY_A)) as cb:
        yield ca, cb


async def started(client: httpx.AsyncClient, handle: str) -> bool:
    """Whether the job ``handle`` has been taken and started by a worker."""
    response = await client.get(f"/v1/jobs/{handle}")
    response.raise_for_status()
    return bool(response.json()["status"] == "started")


async def scrape(node: InProcess) -> Scrape:
    """``/metrics`` of ``node``, asked without a key."""
    async with node.client() as http:
        response = await http.get("/metrics")
    response.raise_for_status()
    return Scrape(response.text)


@pytest.mark.redis
async def test_scale_out_submit_on_one_node_poll_on_another(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient], face_jpeg: bytes
) -> None:
    node_a, node_b = clients
    data = variant(face_jpeg)
    handle = (await submit(node_a, data)).json()["handle"]
    done = await poll(node_b, handle)
    assert done["status"] == "finished"
    assert done["attempts"] == 1
    result = await node_b.get(f"/v1/jobs/{handle}/result")
    sync = await node_a.post("/v1/analyze", content=data, headers={"Content-Type": "image/jpeg"})
    assert sync.headers["X-Cache"] == "hit"  # the worker stored it in the shared cache
    assert result.content == sync.content
    # and the other way round: a sync result (shared cache) finishes a job at submission
    fresh = variant(face_jpeg)
    await node_b.post("/v1/analyze", content=fresh, headers={"Content-Type": "image/jpeg"})
    cached = (await submit(node_a, fresh)).json()
    assert (cached["status"], cached["from_cache"]) == ("finished", True)


@pytest.mark.redis
async def test_scale_out_duplicates_run_once(
    cluster: Cluster,
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
    face_jpeg: bytes,
) -> None:
    node_a, node_b = clients
    queue = Redis.from_url(cluster[3].url)
    finished = FinishedJobRegistry(QUEUE, connection=queue, serializer=JSONSerializer)
    before = finished.count
    data = variant(face_jpeg)
    handles = [
        (await submit(node, data)).json()["handle"] for node in (node_a, node_b, node_a, node_b)
    ]
    assert len(set(handles)) == 4
    records = [await poll(node_a, h) for h in handles]
    assert {r["status"] for r in records} == {"finished"}
    assert finished.count - before == 1
    queue.close()


@pytest.mark.redis
async def test_scale_out_handles_are_private_to_their_key(
    cluster: Cluster, clients: tuple[httpx.AsyncClient, httpx.AsyncClient], face_jpeg: bytes
) -> None:
    node_a, node_b = clients
    handle = (await submit(node_a, variant(face_jpeg))).json()["handle"]
    other = await node_b.get(f"/v1/jobs/{handle}", headers=bearer(KEY_B))
    assert other.status_code == 404
    assert (await node_b.delete(f"/v1/jobs/{handle}", headers=bearer(KEY_B))).status_code == 404
    async with cluster[1].client() as without_key:
        anonymous = await without_key.get(f"/v1/jobs/{handle}")
    assert anonymous.status_code == 401
    assert (await poll(node_b, handle))["status"] == "finished"


@pytest.mark.redis
async def test_scale_out_queue_full_and_cancel(
    cluster: Cluster,
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
    face_jpeg: bytes,
    tmp_path: Path,
) -> None:
    node_a, node_b = clients
    api_a, api_b, _, _ = cluster
    submitted_on_b = (await scrape(api_b)).value("faceflow_jobs", event="submitted")
    gate = Gate(tmp_path / "gate")  # both workers stay busy until the queue was seen full
    try:
        held = [await submit(node_a, variant(face_jpeg, gate.marker), "detect") for _ in range(2)]
        assert all(r.status_code == 202 for r in held)
        # Both held jobs started, so the queue is empty: read from the jobs themselves (a worker's
        # "busy" says only that it runs some job; before a job's end wrote its worker idle, it
        # also read busy after a job's end, and the third job below met a queue still holding a
        # held one).
        deadline = time.monotonic() + TIMEOUT_S
        while not all([await started(node_a, r.json()["handle"]) for r in held]):
            assert time.monotonic() < deadline, "workers never picked up the held jobs"
            await asyncio.sleep(0.05)
        queued = [await submit(node_b, variant(face_jpeg), "detect") for _ in range(3)]
        assert [r.status_code for r in queued] == [202, 202, 202]
        full = await submit(node_a, variant(face_jpeg), "detect")
        assert full.status_code == 503
        assert full.json()["error"]["code"] == "queue_full"
        assert int(full.headers["Retry-After"]) >= 1
        # Both nodes report the one shared queue; each counts what it accepted.
        assert (await scrape(api_a))["faceflow_jobs_queued"] == 3
        on_b = await scrape(api_b)
        assert on_b["faceflow_jobs_queued"] == 3
        assert on_b.value("faceflow_jobs", event="submitted") - submitted_on_b == 3

        victim = queued[0].json()["handle"]
        canceled = await node_a.delete(f"/v1/jobs/{victim}")
        assert canceled.status_code == 200
        assert canceled.json()["status"] == "canceled"
        assert (await node_b.get(f"/v1/jobs/{victim}/result")).status_code == 409
    finally:
        gate.release()
    for response in [*held, *queued[1:]]:
        assert (await poll(node_b, response.json()["handle"]))["status"] == "finished"
    assert (await poll(node_b, victim))["status"] == "canceled"
    finished = held[0].json()["handle"]
    assert (await node_a.delete(f"/v1/jobs/{finished}")).status_code == 409


@pytest.mark.redis
async def test_scale_out_a_key_over_its_share_of_stored_results_is_refused_alone(
    redis_server_factory: RedisServerFactory, worker_context: WorkerContext, face_jpeg: bytes
) -> None:
    """jobs.max_result_bytes_per_client over HTTP: the key whose results hold its share of the
    queue Redis gets 429 with Retry-After for a new job, before anything runs; another key's
    job is taken and finishes."""
    queue_redis = redis_server_factory(appendonly=True)
    digests = [hashlib.sha256(k.encode()).hexdigest() for k in (KEY_A, KEY_B)]
    settings = app_settings(
        jobs={
            "redis_url": queue_redis.url,
            "queue_name": QUEUE,
            "max_result_bytes_per_client": 1024,
        },
        server={"api_key_hashes": digests},
    )
    async with (
        running_app(settings, ready=False) as node,
        node.client(headers=bearer(KEY_A)) as greedy,
        node.client(headers=bearer(KEY_B)) as other,
    ):
        for _ in range(3):
            assert (await submit(greedy, variant(face_jpeg), "detect")).status_code == 202
        work_burst(settings, worker_context)  # in this thread: RQ sets signal handlers
        refused = await submit(greedy, variant(face_jpeg), "detect")
        assert_error(refused, 429, "rate_limited")
        assert 1 <= int(refused.headers["Retry-After"]) <= settings.jobs.result_ttl_s
        taken = await submit(other, variant(face_jpeg), "detect")
        assert taken.status_code == 202
        work_burst(settings, worker_context)  # in this thread: RQ sets signal handlers
        assert (await poll(other, taken.json()["handle"]))["status"] == "finished"
