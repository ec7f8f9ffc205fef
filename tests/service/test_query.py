"""The query-string bound (service/query.py): too many parameters or percent-escapes, or an option
given twice, are refused before any route, the cache-hit path included, parses them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from faceflow.service.query import MAX_QUERY_ESCAPES, MAX_QUERY_PARAMETERS, query_refusal
from tests.service.in_process import InProcess, app_settings, running_app
from tests.service.support import assert_error

session_loop = pytest.mark.asyncio(loop_scope="session")


@pytest.mark.parametrize(
    ("query", "refused"),
    [
        (b"", None),
        (b"&".join(b"a%d=1" % i for i in range(MAX_QUERY_PARAMETERS)), None),
        (b"&".join(b"a%d=1" % i for i in range(MAX_QUERY_PARAMETERS + 1)), "max_parameters"),
        (b"background=" + b"%23" * MAX_QUERY_ESCAPES, None),
        (b"background=" + b"%23" * (MAX_QUERY_ESCAPES + 1), "max_escapes"),
        (b"spec=" + b"a" * 60_000, None),  # long, but cheap to parse: the route refuses it
    ],
)
def test_a_query_string_is_refused_for_its_parameters_and_escapes(
    query: bytes, refused: str | None
) -> None:
    refusal = query_refusal(query)
    if refused is None:
        assert refusal is None
    else:
        assert refusal is not None
        assert refused in refusal.details


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def app() -> AsyncIterator[InProcess]:
    """Nothing here reaches inference."""
    async with running_app(app_settings(), ready=False) as running:
        yield running


@session_loop
@pytest.mark.parametrize(
    ("method", "path", "query"),
    [
        # A valid threshold, all escapes: the cache-hit path parses face operations' options.
        ("POST", "/v1/detect", "threshold=" + "%30" * 20_000 + "%2E5"),
        ("POST", "/v1/id-photo", "spec=" + "%61" * 20_000),
        ("POST", "/v1/jobs", "operation=detect&threshold=" + "%31" * 300),
        ("GET", "/v1/examples", "x=" + "%61" * 300),
    ],
)
async def test_a_query_of_many_escapes_is_refused_before_a_route_parses_it(
    app: InProcess, method: str, path: str, query: str
) -> None:
    # One option of 21,000 escapes (63 KB) cost 3.3 ms each time it was parsed, 11 ms a request
    # on the event loop, and held another client's health checks 66 ms at the median.
    async with app.client() as client:
        answer = await client.request(method, f"{path}?{query}", content=b"\xff\xd8\xff")
    assert_error(answer, 400, "invalid_parameter")
    assert answer.json()["error"]["max_escapes"] == MAX_QUERY_ESCAPES


@pytest.mark.parametrize(
    ("query", "repeated"),
    [
        (b"threshold=0.5", None),
        (b"threshold=0.5&max_faces=2&attributes=age", None),
        (b"a=1&&b=2", None),  # an empty part names nothing
        (b"attributes=age&attributes=gender", "attributes"),
        (b"spec=us-passport&background=blue&spec=cn-1inch", "spec"),
        (b"threshold=0.5&threshold=0.5", "threshold"),  # even the same value: one is enough
        (b"spec=icao&sp%65c=cn-1inch", "spec"),  # the name as the route decodes it
        (b"a+b=1&a%20b=2", "a b"),
        (b"x\xff=1&x\xff=2", "x\xff"),  # not UTF-8: compared, not decoded into an error
    ],
)
def test_an_option_given_twice_is_refused_by_its_decoded_name(
    query: bytes, repeated: str | None
) -> None:
    refusal = query_refusal(query)
    if repeated is None:
        assert refusal is None
    else:
        assert refusal is not None
        assert refusal.details == {"parameter": repeated}


@session_loop
@pytest.mark.parametrize(
    ("method", "path", "query"),
    [
        # The cache-hit path's own parse took the last value: the answer had gender alone.
        ("POST", "/v1/analyze", "attributes=age&attributes=gender"),
        ("POST", "/v1/id-photo", "spec=us-passport&spec=cn-1inch"),
        ("POST", "/v1/jobs", "operation=analyze&operation=detect"),
        ("POST", "/v1/batch", "threshold=0.9&threshold=0.3"),
    ],
)
async def test_an_option_given_twice_is_a_400_naming_it_on_every_route(
    app: InProcess, method: str, path: str, query: str
) -> None:
    async with app.client() as client:
        answer = await client.request(method, f"{path}?{query}", content=b"\xff\xd8\xff")
    assert_error(answer, 400, "invalid_parameter")
    error = answer.json()["error"]
    assert error["parameter"] == query.split("=")[0]
    assert "more than once" in error["message"]
