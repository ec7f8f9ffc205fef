"""A bound on a request's query-string parameters and escapes, and one value per option, before
any route parses them.

No operation takes more than a couple of dozen options, but a query string may be as long as the
header limit (64 KiB): 5,000 unknown options were parsed, validated and described on the event
loop (30 ms a request after the description was bounded, 300 ms before: a cache hit costs 0.1).
Its percent-escapes are decoded one by one in Python, each time the query is parsed: one option
of 21,000 escapes (63 KB) cost 3.3 ms a parse and 11 ms a request, and held another client's
health checks 66 ms at the median.
"""

from __future__ import annotations

from urllib.parse import unquote_plus

from starlette.types import ASGIApp, Receive, Scope, Send

from faceflow.errors import InvalidParameter, quoted
from faceflow.service.errors import faceflow_error_response

MAX_QUERY_PARAMETERS = 64
"""Parameters a query string may have; more: ``400 invalid_parameter``."""


MAX_QUERY_ESCAPES = 256
"""Percent-escapes a query string may have (a colour's ``%23``, a layout's ``%2C``: a few);
more: ``400 invalid_parameter``."""


def query_refusal(query: bytes) -> InvalidParameter | None:
    """The refusal of ``query`` (a raw query string) with more than
    :data:`MAX_QUERY_PARAMETERS` parameters, counted by their ``&`` separators, or more than
    :data:`MAX_QUERY_ESCAPES` percent-escapes (one pass in C each, whatever the length), or with
    an option given twice (:func:`repeated_option`); None for any other."""
    if (count := query.count(b"&") + 1) > MAX_QUERY_PARAMETERS:
        return InvalidParameter(
            f"the query string has {count} parameters; at most {MAX_QUERY_PARAMETERS} are "
            "read (no operation takes more than a few dozen options)",
            {"max_parameters": MAX_QUERY_PARAMETERS},
        )
    if (escapes := query.count(b"%")) > MAX_QUERY_ESCAPES:
        return InvalidParameter(
            f"the query string has {escapes} percent-escapes; at most {MAX_QUERY_ESCAPES} are "
            "read (no option's value needs more than a few)",
            {"max_escapes": MAX_QUERY_ESCAPES},
        )
    if (name := repeated_option(query)) is not None:
        return InvalidParameter(
            f"option {quoted(name)} is given more than once; give each option once (a list is "
            "one comma-separated value, as in attributes=age,gender)",
            {"parameter": name},
        )
    return None


def repeated_option(query: bytes) -> str | None:
    """The first option name ``query`` (a raw query string) gives twice, as the routes decode
    names; None if each is given once.

    The routes read the last of repeated values: before this refusal,
    ``attributes=age&attributes=gender`` (a list as many clients send one) answered gender
    alone, and ``spec=us-passport&spec=cn-1inch`` a cn-1inch photo, each with a 200. Names are
    compared raw unless one has an escape or a ``+`` (``sp%65c`` is ``spec``).
    """
    if b"&" not in query:
        return None
    seen: set[str] = set()
    for part in query.split(b"&"):
        if not part:  # "a=1&&b=2": no parameter, as the routes read it
            continue
        name = part.partition(b"=")[0].decode("latin-1")
        if "%" in name or "+" in name:
            name = unquote_plus(name)
        if name in seen:
            return name
        seen.add(name)
    return None


class QueryLimit:
    """``400 invalid_parameter`` for a request whose query string has too many parameters or
    escapes, or an option given twice (:func:`query_refusal`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (error := query_refusal(scope["query_string"])):
            await faceflow_error_response(error)(scope, receive, send)
            return
        await self.app(scope, receive, send)
