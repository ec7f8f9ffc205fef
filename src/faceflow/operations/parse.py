"""Options from a query string or a stored job payload, validated into an operation's model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from faceflow.errors import InvalidParameter, JsonScalar

Model = TypeVar("Model", bound=BaseModel)


def parse_options(model: type[Model], options: Mapping[str, object], what: str) -> Model:
    """A client's ``options`` (query values as strings, or typed values) validated into ``model``;
    InvalidParameter naming every problem, as FastAPI's validation error does for a route."""
    try:
        return model.model_validate(dict(options))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidParameter(f"invalid {what} options: {problems}") from None


def stored_options(model: type[Model], stored: Mapping[str, JsonScalar], what: str) -> Model:
    """Options a job stored (validated when it was submitted) read back in a worker."""
    try:
        return model.model_validate(dict(stored))
    except ValidationError:
        raise InvalidParameter(f"stored {what} options are invalid") from None
