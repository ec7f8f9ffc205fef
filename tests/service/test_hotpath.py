"""The face operations' entry (the hot path) answers exactly what the routes would: the same
parse, the same key, the same answer on a hit and on a miss."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
from typing import Any

import httpx
import pytest
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_dependant, request_params_to_args
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.datastructures import QueryParams
from starlette.types import Message, Receive, Scope, Send

from faceflow.config import DetectionSettings
from faceflow.domain import Attribute, Operation
from faceflow.errors import InvalidParameter
from faceflow.imaging.formats import OutputFormat
from faceflow.operations.faces import FaceWork
from faceflow.pipeline.detect_options import DetectOptions
from faceflow.service.hotpath import FACE_PATHS, Entry, HotPath, face_work
from faceflow.service.routes import faces
from faceflow.service.state import Current
from tests.fixtures.images import truncated
from tests.fixtures.live_server import LiveServer, Scrape
from tests.service.conftest import IN_PROCESS_UPLOAD_CAP
from tests.service.hostile_files import multipart as multipart_body
from tests.service.in_process import InProcess, app_settings, running_app
from tests.service.option_queries import DETECT_OPTIONS, face_values, queries
from tests.service.support import assert_error, fresh

QUERIES = {
    Operation.DETECT: queries(face_values(*DETECT_OPTIONS)),
    Operation.ANALYZE: queries(face_values(*DETECT_OPTIONS, "attributes")),
    Operation.ANNOTATE: queries(face_values(*DETECT_OPTIONS, "attributes", "format")),
}
ROUTES = {"/v1/detect": faces.detect, "/v1/analyze": faces.analyze, "/v1/annotate": faces.annotate}


def route_parse(path: str, query: str) -> tuple[dict[str, Any], list[Any]]:
    """What FastAPI makes of ``query`` for the route ``path``: the query parameters its endpoint
    declares, validated (values), or the validation errors it would answer 400 with."""
    return request_params_to_args(_dependant(path).query_params, QueryParams(query))


@functools.cache
def _dependant(path: str) -> Dependant:
    return get_dependant(path=path, call=ROUTES[path])


def current(app: InProcess) -> Current:
    """The running app's services, as its layers see them."""
    now = Current()
    now.services = app.services
    return now


@pytest.mark.parametrize(("path", "operation"), sorted(FACE_PATHS.items()))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fast_path_parses_every_query_as_the_route_does(
    path: str, operation: Operation, data: st.DataObject
) -> None:
    query = data.draw(QUERIES[operation])
    # A query the fast path read differently could serve a wrong cached answer.
    defaults = DetectionSettings()
    fast = face_work(defaults, operation, query.encode("latin-1"))
    values, errors = route_parse(path, query)
    route: FaceWork | None = None
    if not errors:
        with contextlib.suppress(InvalidParameter):  # the route answers 400 for it too
            route = values["options"].work(operation, defaults)
    assert fast == route
    if route is not None:
        assert fast is not None
        assert fast.cache_params() == route.cache_params()


@pytest.mark.parametrize(
    ("operation", "query", "expected"),
    [
        (Operation.DETECT, "", FaceWork(Operation.DETECT, DetectOptions(0.7, 0.3, 20, 100))),
        (
            Operation.ANNOTATE,
            "threshold=0.5&max_faces=3&attributes=gender&format=png",
            FaceWork(
                Operation.ANNOTATE,
                DetectOptions(0.5, 0.3, 20, 3),
                (Attribute.GENDER,),
                OutputFormat.PNG,
            ),
        ),
        (Operation.DETECT, "attributes=age", None),  # not a detect option
        (Operation.ANALYZE, "threshold=5", None),
        (Operation.ANALYZE, "attributes=height", None),
    ],
)
def test_fast_path_work(operation: Operation, query: str, expected: FaceWork | None) -> None:
    assert face_work(DetectionSettings(), operation, query.encode()) == expected


def test_option_strings_are_memoised_only_when_short(service_app: InProcess) -> None:
    """A query string may be as long as the header limit (64 KiB): keeping a thousand of those
    would hold 64 MB of one client's making, so a long one is parsed every time instead."""
    entry = HotPath(service_app.app.api, current(service_app))
    services = service_app.services
    short = b"threshold=0.55"
    long = short + b"0" * 2000  # the same value, written out to 2 KB
    parsed = [entry.parse(services, Operation.DETECT, query) for query in (short, long, long)]
    assert parsed[0] is not None
    assert parsed[1] == parsed[2] == parsed[0]
    assert [query for _, query in entry._parsed] == [short]


@pytest.mark.asyncio(loop_scope="session")
async def test_a_miss_goes_on_from_the_entry_without_the_router(
    service_app: InProcess, face_jpeg: bytes
) -> None:
    """A miss is answered with the upload, key and work the entry already has: it never reaches
    FastAPI, which would read, parse and hash it again. A refused option does, for its error."""
    reached: list[str] = []

    async def router(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(f"{scope['path']}?{scope['query_string'].decode()}")
        await service_app.app.api(scope, receive, send)

    entry = HotPath(router, current(service_app))
    image = fresh(face_jpeg)
    transport = httpx.ASGITransport(app=entry)
    async with httpx.AsyncClient(transport=transport, base_url="http://faceflow.test") as client:
        miss = await client.post("/v1/analyze?threshold=0.55", content=image)
        hit = await client.post("/v1/analyze?threshold=0.55", content=image)
        refused = await client.post("/v1/analyze?threshold=5", content=image)
    assert (miss.headers["x-cache"], hit.headers["x-cache"]) == ("miss", "hit")
    assert miss.status_code == 200
    assert miss.content == hit.content
    assert int(miss.headers["x-face-count"]) >= 1
    assert_error(refused, 400, "invalid_parameter")
    assert reached == ["/v1/analyze?threshold=5"]


@pytest.mark.asyncio(loop_scope="session")
async def test_under_a_root_path_the_entry_still_answers_the_face_operations(
    service_app: InProcess, face_jpeg: bytes
) -> None:
    """Behind a proxy's prefix (``uvicorn --root-path /faces`` writes it in front of the path)
    the face operations are the app's same paths: matched with the prefix, every one of them
    went on to FastAPI, which read, parsed and hashed it again."""
    reached: list[str] = []

    async def router(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(scope["path"])
        await service_app.app.api(scope, receive, send)

    entry = HotPath(router, current(service_app))
    image = fresh(face_jpeg)
    transport = httpx.ASGITransport(app=entry, root_path="/faces")
    async with httpx.AsyncClient(transport=transport, base_url="http://faceflow.test") as client:
        miss = await client.post("/faces/v1/detect", content=image)
        hit = await client.post("/faces/v1/detect", content=image)
        echo = await client.post("/faces/v1/echo-size", content=b"x" * 10)
        elsewhere = await client.post("/facesv1/detect", content=image)  # not under the prefix
    assert (miss.headers["x-cache"], hit.headers["x-cache"]) == ("miss", "hit")
    assert miss.content == hit.content
    assert echo.content == b'{"bytes":10}'
    assert elsewhere.status_code == 404
    assert reached == ["/facesv1/detect"]


@pytest.mark.asyncio(loop_scope="session")
async def test_echo_size_is_answered_by_the_entry_as_the_route_answers_it(
    service_app: InProcess,
) -> None:
    """/v1/echo-size exists once: the entry answers it without the router, with the body the
    route (reached directly) answers."""
    reached: list[str] = []

    async def router(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(scope["path"])
        await service_app.app.api(scope, receive, send)

    answers = []
    for app in (HotPath(router, current(service_app)), router):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://faceflow.test") as c:
            answers.append(await c.post("/v1/echo-size", content=b"x" * 1234))
    entry, route = answers
    assert reached == ["/v1/echo-size"]  # the second request only, sent to the router itself
    for response in (entry, route):
        assert response.status_code == 200
        assert response.content == b'{"bytes":1234}'
        assert response.headers["content-type"] == "application/json"


def test_a_fast_hit_answers_the_routes_body_and_headers(
    live_server: LiveServer, face_jpeg: bytes
) -> None:
    image = fresh(face_jpeg)
    with httpx.Client(base_url=live_server.url, timeout=60) as client:
        computed = client.post("/v1/analyze?threshold=0.6", content=image)
        hit = client.post("/v1/analyze?threshold=0.6", content=image)
        other_options = client.post("/v1/analyze?threshold=0.61", content=image)
    assert computed.headers["x-cache"] == "miss"
    assert hit.headers["x-cache"] == "hit"
    assert hit.content == computed.content
    for header in ("content-type", "x-face-count", "server-timing"):
        assert hit.headers[header] == computed.headers[header]
    assert hit.headers["x-request-id"] != computed.headers["x-request-id"]
    assert other_options.headers["x-cache"] == "miss"
    scrape = live_server.metrics()
    assert (
        scrape.value(
            "faceflow_http_requests_total", route="/v1/analyze", method="POST", status="200"
        )
        >= 3
    )


def test_a_fast_hit_of_a_cached_failure_answers_the_same_error_without_the_pool(
    live_server: LiveServer, face_jpeg: bytes
) -> None:
    """An image that cannot be decoded fails the same way every time: the repeat is the cached
    failure, answered by the hot path with the route's status, code and body."""
    image = truncated(fresh(face_jpeg), 0.5)
    with httpx.Client(base_url=live_server.url, timeout=60) as client:
        computed = client.post("/v1/detect", content=image)
        before = live_server.metrics()
        hit = client.post("/v1/detect", content=image)
        after = live_server.metrics()
    assert_error(computed, 422, "undecodable")
    assert (hit.status_code, hit.content) == (computed.status_code, computed.content)
    assert hit.headers["x-error-code"] == "undecodable"
    assert (computed.headers["x-cache"], hit.headers["x-cache"]) == ("miss", "hit")
    runs = "faceflow_inferences_total"
    assert after.value(runs, task="run_face_request", ok="false") == before.value(
        runs, task="run_face_request", ok="false"
    )


@pytest.mark.asyncio(loop_scope="session")
async def test_fast_path_applies_the_api_key_and_charges_the_rate_limit_once(
    face_jpeg: bytes,
) -> None:
    key = "hot-path-key"
    settings = app_settings(
        server={
            "api_key_hashes": [hashlib.sha256(key.encode()).hexdigest()],
            "rate_limit": "3/minute",
        }
    )
    image = fresh(face_jpeg)
    auth = {"Authorization": f"Bearer {key}"}
    async with running_app(settings) as running, running.client() as client:
        assert (await client.post("/v1/detect", content=image)).status_code == 401
        miss = await client.post("/v1/detect", content=image, headers=auth)
        hit = await client.post("/v1/detect", content=image, headers=auth)
        third = await client.post("/v1/detect", content=image, headers=auth)
        limited = await client.post("/v1/detect", content=image, headers=auth)
    # The miss went through the fast path's checks and then the route: charged once, not twice.
    assert [miss.status_code, hit.status_code, third.status_code] == [200, 200, 200]
    assert miss.headers["x-cache"] == "miss"
    assert hit.headers["x-cache"] == "hit"
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1


def test_echo_size_reads_the_upload_like_the_image_routes(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.url, timeout=60) as client:
        answer = client.post("/v1/echo-size", content=b"x" * 1234)
        empty = client.post("/v1/echo-size")
    assert answer.json() == {"bytes": 1234}
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["x-request-id"]
    assert empty.status_code == 400
    assert empty.json()["error"]["code"] == "empty"


def _answer(sent: list[Message]) -> tuple[int, list[tuple[bytes, bytes]], bytes, bytes]:
    """Status, headers without the request id, body, and the request id of an ASGI answer."""
    start = [m for m in sent if m["type"] == "http.response.start"]
    if not start:
        return 0, [], b"", b""
    headers = [(k.lower(), v) for k, v in start[0]["headers"]]
    ids = [v for k, v in headers if k == b"x-request-id"]
    assert len(ids) == 1, headers
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start[0]["status"], [h for h in headers if h[0] != b"x-request-id"], body, ids[0]


def _request(
    body: bytes, content_type: bytes, *, declared: int | None = None, more: bool = False
) -> tuple[list[tuple[bytes, bytes]], list[Message]]:
    headers = [
        (b"content-type", content_type),
        (b"content-length", b"%d" % (len(body) if declared is None else declared)),
    ]
    return headers, [{"type": "http.request", "body": body, "more_body": more}]


@pytest.mark.asyncio(loop_scope="session")
async def test_the_first_layer_answers_what_the_layers_behind_it_answer(
    service_app: InProcess, face_jpeg: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """Entry serves the face operations' uploads itself: status, headers, body, request id,
    request count and access line are the layered stack's, for hits (raw and form), a client's
    own request id, refusals before and after the body is read, and a client gone mid-upload."""
    entry = service_app.app._app
    assert isinstance(entry, Entry)
    image = fresh(face_jpeg)
    form, form_type = multipart_body([("image", image)])
    empty_form, _ = multipart_body([("other", b"x")])
    cases: dict[str, tuple[list[tuple[bytes, bytes]], list[Message]]] = {
        "hit": _request(image, b"image/jpeg"),
        "hit, form": _request(form, form_type.encode()),
        "too large": _request(b"", b"image/jpeg", declared=IN_PROCESS_UPLOAD_CAP + 1),
        "missing field": _request(empty_form, form_type.encode()),
        "not an image": _request(b"plain text", b"image/jpeg"),
        "client gone": _request(image[:1000], b"image/jpeg", declared=len(image), more=True),
    }
    own_id = (b"x-request-id", b"client-chosen-id-1")
    cases["own id"] = ([*cases["hit"][0], own_id], cases["hit"][1])
    async with service_app.client() as client:  # the miss that caches the answer
        for body, kind in ((image, "image/jpeg"), (form, form_type)):
            computed = await client.post(
                "/v1/analyze", content=body, headers={"content-type": kind}
            )
            assert computed.status_code == 200

    counted = "faceflow_http_requests_total"
    for name, (headers, incoming) in cases.items():
        answers = []
        for app in (entry, entry.layered):
            service_app.app._app = app
            before = Scrape(service_app.metrics.render().decode())
            caplog.clear()
            with caplog.at_level(logging.INFO, logger="faceflow.access"):
                try:
                    sent = await service_app.raw("POST", "/v1/analyze", headers, incoming)
                finally:
                    service_app.app._app = entry
            after = Scrape(service_app.metrics.render().decode())
            status, answer_headers, body, request_id = _answer(sent)
            access = [r for r in caplog.records if r.name == "faceflow.access"]
            assert len(access) == 1, name
            logged = access[0].status  # type: ignore[attr-defined]
            counts = {
                code: after.value(counted, route="/v1/analyze", status=code)
                - before.value(counted, route="/v1/analyze", status=code)
                for code in ("200", "400", "413", "415", "422", "499", "500")
            }
            answers.append((status, answer_headers, body, logged, counts))
            if name == "own id":
                assert request_id == own_id[1]
            if name == "client gone":
                assert status == 0  # nothing sent
        assert answers[0] == answers[1], name
    hit_status, hit_headers, _, _, hit_counts = answers[0]
    assert (hit_status, hit_counts["200"]) == (200, 1)
    assert (b"x-cache", b"hit") in hit_headers


@pytest.mark.asyncio(loop_scope="session")
async def test_under_a_root_path_the_first_layer_still_serves_the_face_operations(
    service_app: InProcess, face_jpeg: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Matched with the proxy's prefix in front, every face operation went through the layers.
    entry = service_app.app._app
    assert isinstance(entry, Entry)
    layered = entry.layered
    reached: list[str] = []

    async def recorded(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(scope["path"])
        await layered(scope, receive, send)

    monkeypatch.setattr(entry, "layered", recorded)
    image = fresh(face_jpeg)
    before = Scrape(service_app.metrics.render().decode())
    async with service_app.client(root_path="/faces") as client:
        answers = [
            await client.post(
                "/faces/v1/detect", content=image, headers={"content-type": "image/jpeg"}
            )
            for _ in range(2)
        ]
    after = Scrape(service_app.metrics.render().decode())
    assert [a.headers["x-cache"] for a in answers] == ["miss", "hit"]
    assert reached == []
    counted = "faceflow_http_requests_total"
    labels = {"route": "/v1/detect", "status": "200"}
    assert after.value(counted, **labels) - before.value(counted, **labels) == 2


@pytest.mark.parametrize("form", [False, True], ids=["raw body", "multipart"])
@pytest.mark.asyncio(loop_scope="session")
async def test_an_upload_is_read_hashed_and_parsed_once_on_a_miss_and_on_a_hit(
    service_app: InProcess, face_jpeg: bytes, monkeypatch: pytest.MonkeyPatch, form: bool
) -> None:
    """Issue 12's count, taken through the real code by wrapping the functions that do the work
    (the hash, the read, the form's split, the options' parse): each happens once per request,
    on a miss as on a hit, and a hit's options come from the memo. A second read, hash or
    parse (the router reading the body again, a key hashed again) shows as a count of 2."""
    counts: dict[str, int] = {"read": 0, "hashed": 0, "split": 0, "options": 0}

    def counted(name: str, fn: Any) -> Any:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            return fn(*args, **kwargs)

        return wrapper

    def counted_async(name: str, fn: Any) -> Any:
        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            return await fn(*args, **kwargs)

        return wrapper

    from faceflow.cache import keys
    from faceflow.service import hotpath
    from faceflow.service import upload as upload_module

    # Every way in: the hot path's reader and the routes' (read_image → read_uploads), a hash
    # taken by the split, by an Upload or by cache_key, and the hot path's options parse.
    read = counted_async("read", upload_module.receive_upload)
    monkeypatch.setattr(hotpath, "receive_upload", read)
    monkeypatch.setattr(
        upload_module, "read_uploads", counted_async("read", upload_module.read_uploads)
    )
    monkeypatch.setattr(upload_module, "content_hash", counted("hashed", keys.content_hash))
    monkeypatch.setattr(keys, "content_hash", counted("hashed", keys.content_hash))
    finish = upload_module._MultipartReader.finish
    monkeypatch.setattr(upload_module._MultipartReader, "finish", counted("split", finish))
    monkeypatch.setattr(hotpath, "face_work", counted("options", hotpath.face_work))

    reached: list[str] = []

    async def router(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(scope["path"])
        await service_app.app.api(scope, receive, send)

    image = fresh(face_jpeg)
    body, content_type = multipart_body([("image", image)]) if form else (image, "image/jpeg")
    entry = HotPath(router, current(service_app))  # its own memo: the first parse is counted
    seen = []
    transport = httpx.ASGITransport(app=entry)
    async with httpx.AsyncClient(transport=transport, base_url="http://faceflow.test") as client:
        for _ in ("miss", "hit"):
            before = dict(counts)
            response = await client.post(
                "/v1/analyze?threshold=0.61", content=body, headers={"content-type": content_type}
            )
            assert response.status_code == 200, response.text
            seen.append((response.headers["x-cache"], {k: counts[k] - before[k] for k in counts}))
    split = 1 if form else 0
    assert seen == [
        ("miss", {"read": 1, "hashed": 1, "split": split, "options": 1}),
        ("hit", {"read": 1, "hashed": 1, "split": split, "options": 0}),
    ]
    assert reached == []  # neither went through FastAPI, which would read and parse again
