"""A bound on a request's query-string parameters, before any route parses them.

No operation takes more than a couple of dozen options, but a query string may be as long as the
header limit (64 KiB): 5,000 unknown options were parsed, validated and described on the event
loop (30 ms a request after the description was bounded, 300 ms before: a cache hit costs 0.1).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from faceflow.errors import InvalidParameter
from faceflow.service.errors import faceflow_error_response

MAX_QUERY_PARAMETERS = 64
"""Parameters a query string may have; more: ``400 invalid_parameter``."""


def too_many_parameters(query: bytes) -> bool:
    """Whether ``query`` (a raw query string) has more than :data:`MAX_QUERY_PARAMETERS`
    parameters, counted by their ``&`` separators (one pass in C, whatever the length)."""
    return query.count(b"&") >= MAX_QUERY_PARAMETERS


class QueryLimit:
    """``400 invalid_parameter`` for a request whose query string has too many parameters."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and too_many_parameters(scope["query_string"]):
            count = scope["query_string"].count(b"&") + 1
            error = InvalidParameter(
                f"the query string has {count} parameters; at most {MAX_QUERY_PARAMETERS} are "
                "read (no operation takes more than a few dozen options)",
                {"max_parameters": MAX_QUERY_PARAMETERS},
            )
            await faceflow_error_response(error)(scope, receive, send)
            return
        await self.app(scope, receive, send)
