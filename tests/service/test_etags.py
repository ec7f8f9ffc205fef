"""Entity tags of the fixed documents: stable, a 304 without a body for a match, whole else."""

from __future__ import annotations

import httpx
import pytest

from faceflow.models.catalog import EXAMPLES
from faceflow.service.etags import names_tag, tagged

FIXED = [
    "/openapi.json",
    "/v1/id-photo/specs",
    "/v1/examples",
    f"/v1/examples/{EXAMPLES[0].name}/thumbnail",
]


@pytest.mark.usefixtures("pulled_examples")
@pytest.mark.parametrize("path", FIXED)
def test_a_fixed_document_revalidated_with_its_etag_is_304_without_a_body(
    client: httpx.Client, path: str
) -> None:
    # Swagger UI, ReDoc and the web page fetch these at each load: no ETag, so every load (and
    # every cache past max-age) got the whole document again, 56 KB for the schema.
    first = client.get(path)
    again = client.get(path)

    assert first.status_code == again.status_code == 200
    etag = first.headers["etag"]
    assert etag == again.headers["etag"] == tagged(first.content).etag  # strong, of its bytes
    assert not etag.startswith("W/")

    unchanged = client.get(path, headers={"If-None-Match": f'"other", {etag}'})

    assert unchanged.status_code == 304
    assert unchanged.content == b""
    assert unchanged.headers["etag"] == etag


@pytest.mark.usefixtures("pulled_examples")
@pytest.mark.parametrize("path", FIXED)
def test_a_fixed_document_asked_for_with_another_etag_is_sent_whole(
    client: httpx.Client, path: str
) -> None:
    whole = client.get(path)

    response = client.get(path, headers={"If-None-Match": '"not-its-tag", W/"0"'})

    assert response.status_code == 200
    assert response.content == whole.content


@pytest.mark.parametrize(
    ("sent", "matches"),
    [
        (['"abc"'], True),
        (['W/"abc"'], True),
        (['"x", "abc"'], True),
        (['"x"', ' "abc" '], True),
        (["*"], True),
        (['"abcd"'], False),
        (["abc"], False),
        ([], False),
    ],
)
def test_if_none_match_is_compared_weakly(sent: list[str], matches: bool) -> None:
    assert names_tag(sent, '"abc"') is matches
