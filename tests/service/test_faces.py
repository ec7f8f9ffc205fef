"""/v1/detect, /v1/analyze, /v1/annotate and /v1/batch through a real server (routes/faces.py)."""

from __future__ import annotations

import asyncio
import base64
import io
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from faceflow.config import LimitSettings
from faceflow.errors import error_from_code
from tests.fixtures.images import HostileInput, hostile_inputs
from tests.fixtures.live_server import LiveServer
from tests.service.conftest import CLIENT_TIMEOUT_S
from tests.service.support import assert_error, fresh, multipart_image

LANDMARKS = {"right_eye", "left_eye", "nose", "mouth_right", "mouth_left"}


def check_face(face: dict[str, Any], width: int, height: int, *, attributes: bool) -> None:
    x1, y1, x2, y2 = face["box"]
    assert 0 <= x1 < x2 <= width + 1, face["box"]
    assert 0 <= y1 < y2 <= height + 1, face["box"]
    assert 0.0 < face["score"] <= 1.0
    assert set(face["landmarks"]) == LANDMARKS
    for x, y in face["landmarks"].values():
        assert x1 <= x <= x2, face
        assert y1 <= y <= y2, face
    if attributes:
        age = face["age"]
        assert 0 <= age["low"] <= age["years"] <= age["high"] <= 100, age
        assert face["gender"]["label"] in {"female", "male"}
        assert 0.5 <= face["gender"]["probability"] <= 1.0
    else:
        assert face.get("age") is None, face
        assert face.get("gender") is None, face


def test_second_identical_request_is_a_hit(client: httpx.Client, face_jpeg: bytes) -> None:
    image = fresh(face_jpeg)
    first = client.post("/v1/analyze", content=image)
    second = client.post("/v1/analyze", content=image)
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.headers["X-Cache"] == "miss"
    assert second.headers["X-Cache"] == "hit"
    assert second.headers["X-Cache-Detail"] == "hit_memory"
    assert second.content == first.content

    # Anything that changes the answer changes the key.
    other_params = client.post("/v1/analyze", content=image, params={"threshold": 0.5})
    other_attributes = client.post("/v1/analyze", content=image, params={"attributes": "age"})
    other_operation = client.post("/v1/detect", content=image)
    for response in (other_params, other_attributes, other_operation):
        assert response.status_code == 200, response.text
        assert response.headers["X-Cache"] == "miss"
    assert other_attributes.json()["faces"][0].get("gender") is None


@pytest.mark.parametrize("route", ["/v1/detect", "/v1/analyze"])
def test_multipart_field_and_raw_body_give_the_same_json(
    client: httpx.Client, face_jpeg: bytes, route: str
) -> None:
    image = fresh(face_jpeg)
    raw = client.post(route, content=image, headers={"Content-Type": "image/jpeg"})
    form = client.post(route, files=multipart_image(image, filename="face.png"))
    assert (raw.status_code, form.status_code) == (200, 200), (raw.text, form.text)
    assert form.json() == raw.json()
    # The form's part carried exactly the raw bytes: the same cache key.
    assert (raw.headers["X-Cache"], form.headers["X-Cache"]) == ("miss", "hit")


def test_detect_finds_every_face_without_attributes(client: httpx.Client, testdata: Path) -> None:
    response = client.post("/v1/detect", content=(testdata / "two_people.jpg").read_bytes())
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    report = response.json()
    assert set(report) == {"width", "height", "face_count", "faces"}
    assert (report["width"], report["height"]) == Image.open(testdata / "two_people.jpg").size
    assert report["face_count"] == len(report["faces"]) == 2
    assert response.headers["X-Face-Count"] == "2"
    for face in report["faces"]:
        check_face(face, report["width"], report["height"], attributes=False)


def test_analyze_adds_age_and_gender(client: httpx.Client, face_jpeg: bytes) -> None:
    response = client.post("/v1/analyze", content=face_jpeg)
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["width"], report["height"]) == (320, 240)
    assert report["face_count"] == len(report["faces"]) == 1
    check_face(report["faces"][0], 320, 240, attributes=True)
    assert report["faces"][0]["gender"]["label"] == "male"


def test_analyze_of_a_photo_without_faces_is_an_empty_report(
    client: httpx.Client, testdata: Path
) -> None:
    response = client.post("/v1/analyze", content=(testdata / "coffee.jpg").read_bytes())
    assert response.status_code == 200, response.text
    assert response.json()["face_count"] == 0
    assert response.json()["faces"] == []


@pytest.mark.parametrize(("fmt", "media_type"), [("jpeg", "image/jpeg"), ("png", "image/png")])
def test_annotate_returns_an_image_of_the_input_size(
    client: httpx.Client, testdata: Path, fmt: str, media_type: str
) -> None:
    photo = (testdata / "astronaut.jpg").read_bytes()
    response = client.post("/v1/annotate", content=photo, params={"format": fmt})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == media_type
    with Image.open(io.BytesIO(response.content)) as annotated:
        annotated.load()
        assert annotated.format == fmt.upper()
        assert annotated.size == Image.open(io.BytesIO(photo)).size
    assert response.headers["X-Face-Count"] == "1"


def test_batch_items_succeed_or_fail_on_their_own(client: httpx.Client, face_jpeg: bytes) -> None:
    image = fresh(face_jpeg)
    files = [
        ("images", ("face.jpg", image, "image/jpeg")),
        ("images", ("notes.txt", b"not an image, just some text\n", "text/plain")),
        ("images", ("empty.jpg", b"", "image/jpeg")),
    ]
    response = client.post("/v1/batch", files=files, params={"operation": "analyze"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["operation"] == "analyze"
    items = body["items"]
    assert [item["index"] for item in items] == [0, 1, 2]
    assert [item["filename"] for item in items] == ["face.jpg", "notes.txt", "empty.jpg"]
    assert [item["status"] for item in items] == [200, 415, 400]
    assert items[1]["error"]["code"] == "unsupported_format"
    assert items[2]["error"]["code"] == "empty"
    for failed in items[1:]:
        assert "result" not in failed
        assert isinstance(failed["error"]["message"], str)

    single = client.post("/v1/analyze", content=image)
    assert single.headers["X-Cache"] == "hit"  # the batch cached it under the same key
    assert items[0]["result"] == single.json()
    assert items[0]["result"]["face_count"] == 1


def test_batch_annotate_returns_base64_images(client: httpx.Client, face_jpeg: bytes) -> None:
    response = client.post(
        "/v1/batch",
        files=[("images", ("a.jpg", face_jpeg, "image/jpeg"))],
        params={"operation": "annotate", "format": "png"},
    )
    assert response.status_code == 200, response.text
    (item,) = response.json()["items"]
    assert item["status"] == 200
    assert item["media_type"] == "image/png"
    with Image.open(io.BytesIO(base64.b64decode(item["image_base64"]))) as annotated:
        assert annotated.format == "PNG"
        assert annotated.size == (320, 240)


@pytest.mark.parametrize("how", ["raw", "multipart"])
@pytest.mark.parametrize("case", hostile_inputs(), ids=lambda case: case.name)
def test_hostile_input_is_refused_with_its_code(
    client: httpx.Client, testdata: Path, case: HostileInput, how: str
) -> None:
    # The default server runs with the default limits, which the table's builders read.
    data = case.make(testdata, LimitSettings())
    if how == "raw":
        response = client.post(
            "/v1/analyze", content=data, headers={"Content-Type": "application/octet-stream"}
        )
    else:
        response = client.post("/v1/analyze", files=multipart_image(data))
    assert_error(response, case.status, case.code)
    if not error_from_code(case.code, "").deterministic:
        assert response.headers.get("X-Cache") is None  # never cached: a repeat asks again
        return
    # Corrupt bytes fail the same way every time: cached as a result would be, and a repeat
    # (the raw and the multipart case send the same bytes) is answered it from the cache.
    again = client.post("/v1/analyze", content=data)
    assert (again.status_code, again.content) == (response.status_code, response.content)
    assert again.headers["X-Cache"] == "hit"


async def test_concurrent_identical_new_uploads_run_one_inference(
    live_server: LiveServer, face_jpeg: bytes
) -> None:
    clients = 50
    image = fresh(face_jpeg)
    before = live_server.metrics()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=live_server.url, timeout=CLIENT_TIMEOUT_S, limits=limits
    ) as http:
        responses = await asyncio.gather(
            *(http.post("/v1/analyze", content=image) for _ in range(clients))
        )
    after = live_server.metrics()

    assert [r.status_code for r in responses] == [200] * clients
    assert len({r.content for r in responses}) == 1
    details = Counter(r.headers["X-Cache-Detail"] for r in responses)
    assert details["miss"] == 1, details
    # Only the request that ran the inference is a miss; those that joined it ran nothing.
    assert Counter(r.headers["X-Cache"] for r in responses) == {"miss": 1, "hit": clients - 1}
    assert details["miss"] + details["joined"] + details["hit_memory"] == clients, details

    def delta(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert delta("faceflow_inferences_total") == 1
    assert delta("faceflow_cache_misses_total") == 1
    joins = delta("faceflow_singleflight_joins_total")
    hits = delta("faceflow_cache_hits_total", level="memory")
    assert joins == details["joined"]
    assert hits == details["hit_memory"]
    assert joins + hits == clients - 1


def test_invalid_query_parameter_is_400(client: httpx.Client, face_jpeg: bytes) -> None:
    cases: list[tuple[str, dict[str, str | int]]] = [
        ("/v1/detect", {"threshold": 5}),
        ("/v1/detect", {"threshold": "high"}),
        ("/v1/analyze", {"max_faces": 0}),
        ("/v1/analyze", {"attributes": "age,shoe_size"}),
        ("/v1/annotate", {"format": "bmp"}),
    ]
    for route, params in cases:
        response = client.post(route, content=face_jpeg, params=params)
        assert_error(response, 400, "invalid_parameter")
    batch = client.post("/v1/batch", files=multipart_image(face_jpeg), params={"operation": "x"})
    assert_error(batch, 400, "invalid_parameter")
