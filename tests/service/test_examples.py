"""The example photos: read and verified at start-up (service/examples.py) and served by
/v1/examples (service/routes/examples.py), from the files `faceflow models pull` fetched."""

from __future__ import annotations

import hashlib
import io
import shutil
from pathlib import Path

import httpx
import pytest
from PIL import Image

from faceflow.config import ModelSettings
from faceflow.models.catalog import EXAMPLES
from faceflow.service.examples import THUMBNAIL_PX, load_examples
from tests.fixtures.live_server import LiveServer
from tests.fixtures.models import flip_a_byte
from tests.service.support import assert_error


def test_examples_never_pulled_or_tampered_with_are_left_out(
    tmp_path: Path, pulled_examples: ModelSettings
) -> None:
    assert load_examples(ModelSettings(dir=tmp_path)) == ()

    astronaut, camera = EXAMPLES
    (tmp_path / "examples").mkdir()
    for spec in EXAMPLES:
        shutil.copyfile(pulled_examples.dir / spec.relative_path, tmp_path / spec.relative_path)
    flip_a_byte(tmp_path / astronaut.relative_path)

    [kept] = load_examples(ModelSettings(dir=tmp_path))

    assert kept.spec == camera
    assert hashlib.sha256(kept.data).hexdigest() == camera.sha256


@pytest.mark.usefixtures("pulled_examples")
def test_the_pulled_examples_are_listed_and_served_as_pinned(client: httpx.Client) -> None:
    response = client.get("/v1/examples")

    assert response.status_code == 200
    listed = {item["name"]: item for item in response.json()["examples"]}
    assert set(listed) == {spec.name for spec in EXAMPLES}
    for spec in EXAMPLES:
        item = listed[spec.name]
        assert (item["licence"], item["sha256"], item["bytes"]) == (
            spec.licence,
            spec.sha256,
            spec.size_bytes,
        )
        assert item["source"] == "scikit-image==0.26.0"
        photo = client.get("/" + item["url"])
        assert photo.status_code == 200
        assert photo.headers["content-type"] == spec.media_type
        assert hashlib.sha256(photo.content).hexdigest() == spec.sha256
        thumbnail = client.get("/" + item["thumbnail_url"])
        assert thumbnail.headers["content-type"] == "image/jpeg"
        with Image.open(io.BytesIO(thumbnail.content)) as image:
            assert image.format == "JPEG"
            assert max(image.size) == THUMBNAIL_PX
            assert image.size[0] / image.size[1] == pytest.approx(
                item["width_px"] / item["height_px"], abs=0.02
            )


@pytest.mark.parametrize("path", ["/v1/examples/lena", "/v1/examples/lena/thumbnail"])
def test_an_unknown_example_is_a_json_404(client: httpx.Client, path: str) -> None:
    error = assert_error(client.get(path), 404, "not_found")
    assert "GET /v1/examples" in error["message"]


def test_the_examples_are_documented(live_server: LiveServer) -> None:
    paths = httpx.get(f"{live_server.url}/openapi.json", timeout=30.0).json()["paths"]

    assert "/v1/examples" in paths
    assert "404" in paths["/v1/examples/{name}"]["get"]["responses"]
    assert "image/png" in paths["/v1/examples/{name}"]["get"]["responses"]["200"]["content"]


@pytest.mark.usefixtures("pulled_examples")
@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("sent", ['"{tag}"', 'W/"{tag}"', '"other", "{tag}"', "*"])
def test_an_example_revalidated_with_its_etag_is_304_without_the_photo(
    client: httpx.Client, method: str, sent: str
) -> None:
    # A cache past max-age revalidates with the ETag it was given: it got the whole photo
    # again (773 KiB for the astronaut), 200, though the pinned bytes cannot have changed.
    spec = EXAMPLES[0]
    tag = f'"{spec.sha256}"'

    response = client.request(
        method,
        f"/v1/examples/{spec.name}",
        headers={"If-None-Match": sent.format(tag=spec.sha256)},
    )

    assert response.status_code == 304
    assert response.content == b""
    assert (response.headers["etag"], response.headers["cache-control"]) == (
        tag,
        "public, max-age=86400",
    )


@pytest.mark.usefixtures("pulled_examples")
def test_an_example_asked_for_with_another_etag_is_sent_whole(client: httpx.Client) -> None:
    spec = EXAMPLES[0]

    response = client.get(
        f"/v1/examples/{spec.name}", headers={"If-None-Match": f'"{spec.sha256[:-1]}0", "x"'}
    )

    assert response.status_code == 200
    assert hashlib.sha256(response.content).hexdigest() == spec.sha256
