"""Options validated into an operation's model, and what a client is told when they are not."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, Field

from faceflow.errors import InvalidParameter
from faceflow.operations.faces import FaceOptions
from faceflow.operations.idphoto import PhotoOptions
from faceflow.operations.parse import MAX_PROBLEMS_SAID, option_names, parse_options


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(0.5, ge=0, le=1)
    max_faces: int = 10
    size: str = Field("a", alias="spec")


def test_valid_options_are_parsed() -> None:
    assert parse_options(Options, {"threshold": "0.7"}, "test").threshold == 0.7


def test_option_names_are_what_a_client_sends_aliases_included() -> None:
    assert option_names(Options) == {"threshold", "max_faces", "spec"}


def test_a_typo_is_named_with_its_likely_option_and_as_the_parameter() -> None:
    with pytest.raises(InvalidParameter) as raised:
        parse_options(Options, {"max_face": "2"}, "test")

    assert raised.value.message == (
        "invalid test options: unknown option 'max_face' (did you mean 'max_faces'?)"
    )
    assert raised.value.details == {"parameter": "max_face"}


def test_several_problems_are_all_named_and_no_single_parameter_is_blamed() -> None:
    with pytest.raises(InvalidParameter) as raised:
        parse_options(Options, {"threshold": "2", "zzz": "1"}, "test")

    message = raised.value.message
    assert message.startswith("invalid test options: threshold: ")
    assert "unknown option 'zzz'" in message
    assert "did you mean" not in message
    assert raised.value.details == {}


def test_a_flood_of_problems_names_the_first_few_and_counts_the_rest() -> None:
    # Each named unknown option costs a did-you-mean search: 5,000 of them took 270 ms.
    unknown = {f"option{i}": "1" for i in range(500)}
    with pytest.raises(InvalidParameter) as raised:
        parse_options(Options, unknown, "test")

    message = raised.value.message
    assert message.count("unknown option") == MAX_PROBLEMS_SAID
    assert message.endswith(f"; and {500 - MAX_PROBLEMS_SAID} more")
    assert len(message) < 1000


def test_a_bool_for_a_number_is_refused_but_strings_and_true_bools_are_not() -> None:
    # pydantic's lax mode took max_faces=True as 1 (the library's typed options); a query's
    # strings, "1" or "true", are read as before.
    assert parse_options(FaceOptions, {"max_faces": "1"}, "detect").max_faces == 1
    assert parse_options(PhotoOptions, {"transparent": "true"}, "id-photo").transparent is True
    assert parse_options(PhotoOptions, {"transparent": True}, "id-photo").transparent is True
    with pytest.raises(InvalidParameter, match="max_faces: a number is wanted, not True"):
        parse_options(FaceOptions, {"max_faces": True}, "detect")
    with pytest.raises(InvalidParameter, match=r"head_mm: a number is wanted, not False"):
        parse_options(PhotoOptions, {"head_mm": False}, "id-photo")
