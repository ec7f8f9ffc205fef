"""Options from a query string or a stored job payload, validated into an operation's model."""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from faceflow.config import takes_a_number
from faceflow.errors import QUOTED_CHARS, InvalidParameter, JsonScalar, did_you_mean, quoted

Model = TypeVar("Model", bound=BaseModel)

# Every operation's options model: an unknown option is an error (a typo must not pass unseen),
# a parsed model is immutable (memoised per query string), and nan or inf is refused as "not a
# finite number" rather than failing a bound with a message about the bound.
OPTIONS_CONFIG = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


MAX_PROBLEMS_SAID = 10
"""Problems an error message names before it counts the rest: a query string of 5,000 unknown
options (64 KB) took 270 ms of the event loop to describe (a did-you-mean for each) and 144 KB to
send."""


def parse_options(
    model: type[Model],
    options: Mapping[str, object],
    what: str,
    called: Mapping[str, str] | None = None,
) -> Model:
    """A client's ``options`` (query values as strings, or typed values) validated into ``model``;
    InvalidParameter naming every problem, as FastAPI's validation error does for a route.
    ``called``: the caller's own names of some options (the library's argument
    ``output_format`` is the option ``format``), which the error names them by."""
    if booleans := _booleans_for_numbers(model, options):
        raise option_error(
            _renamed_all(booleans, called), option_names(model), f"invalid {what} options: "
        )
    try:
        return model.model_validate(dict(options))
    except ValidationError as exc:
        errors = _renamed_all(exc.errors(), called)
        raise option_error(errors, option_names(model), f"invalid {what} options: ") from None


def _booleans_for_numbers(model: type[BaseModel], options: Mapping[str, object]) -> list[Any]:
    """An error for each option of a number given as True or False (only a caller's typed value
    can be one: a query's values are strings). pydantic's lax mode takes a bool as 1 or 0, so
    ``max_faces=True`` in the library kept one face and ``max_kb=False`` asked for 0 KB; a
    field that takes a bool (``transparent``) is left to the model."""
    numbers = _number_fields(model)
    return [
        {"loc": (name,), "msg": f"a number is wanted, not {value}", "type": "bool_for_number"}
        for name, value in options.items()
        if isinstance(value, bool) and name in numbers
    ]


@functools.cache
def _number_fields(model: type[BaseModel]) -> frozenset[str]:
    """The options of ``model`` (by the name a client gives) whose type is a number and not a
    bool, ``X | None`` included (:func:`faceflow.config.takes_a_number`)."""
    return frozenset(
        field.alias or name
        for name, field in model.model_fields.items()
        if takes_a_number(field.annotation)
    )


def _renamed_all(errors: list[Any], called: Mapping[str, str] | None) -> list[Any]:
    if not called:
        return errors
    return [{**error, "loc": _renamed(error["loc"], called)} for error in errors]


def _renamed(loc: tuple[int | str, ...], called: Mapping[str, str]) -> tuple[int | str, ...]:
    if not loc or not isinstance(loc[0], str):
        return loc
    return (called.get(loc[0], loc[0]), *loc[1:])


def option_bounds(model: type[BaseModel]) -> dict[str, list[int | float]]:
    """``[min, max]`` of each option of ``model`` that has both (inclusive), by its name, as its
    field declares them: what a client (the web page) checks before sending. Read from the
    model's JSON schema, which holds a ``X | None`` field's bounds in its ``anyOf``."""
    bounds: dict[str, list[int | float]] = {}
    for name, schema in model.model_json_schema(by_alias=True)["properties"].items():
        for choice in [schema, *schema.get("anyOf", ())]:
            if "minimum" in choice and "maximum" in choice:
                bounds[name] = [choice["minimum"], choice["maximum"]]
    return bounds


def option_names(model: type[BaseModel]) -> set[str]:
    """The names ``model`` takes its options by (a field's alias where it has one)."""
    return {field.alias or name for name, field in model.model_fields.items()}


def option_error(
    errors: Iterable[Mapping[str, Any]], known: Collection[str], prefix: str = ""
) -> InvalidParameter:
    """pydantic's (or FastAPI's) validation ``errors`` as one InvalidParameter: every problem in
    its message, the parameter in its details when there is one. An option ``known`` does not
    have is named as unknown, with the known one it is likely a typo of (``threshhold``)."""
    problems: list[str] = []
    parameters = set()
    unsaid = 0
    for error in errors:
        where = [str(part) for part in error.get("loc", ()) if part not in ("query", "body")]
        name = ".".join(where)
        if where:
            parameters.add(where[0][:QUOTED_CHARS])  # an unknown one is what the client sent
        if len(problems) == MAX_PROBLEMS_SAID:
            unsaid += 1
        elif error.get("type") == "extra_forbidden":
            problems.append(f"unknown option {quoted(name)}{did_you_mean(name, known)}")
        else:
            problems.append(f"{name}: {error.get('msg', 'invalid')}" if name else "invalid")
    if unsaid:
        problems.append(f"and {unsaid} more")
    details: dict[str, JsonScalar] = {}
    if len(parameters) == 1:
        details["parameter"] = parameters.pop()
    return InvalidParameter(prefix + ("; ".join(problems) or "invalid request"), details)


def stored_options(model: type[Model], stored: Mapping[str, JsonScalar], what: str) -> Model:
    """Options a job stored (validated when it was submitted) read back in a worker."""
    try:
        return model.model_validate(dict(stored))
    except ValidationError:
        raise InvalidParameter(f"stored {what} options are invalid") from None
