"""The error tree: stable, unique codes, and a lossless round trip through ``error_from_code``."""

from __future__ import annotations

import difflib
import inspect

import pytest

from faceflow import errors
from faceflow.errors import FaceflowError, RetryableError, did_you_mean, error_from_code


def error_classes() -> list[type[FaceflowError]]:
    """Every error class defined in faceflow.errors, found by walking the module, not the tree."""
    return [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, FaceflowError) and cls.__module__ == errors.__name__
    ]


def coded_classes() -> list[type[FaceflowError]]:
    """The classes that declare their own code: everything but the abstract RetryableError."""
    return [cls for cls in error_classes() if "code" in vars(cls)]


def test_every_class_but_the_retryable_base_declares_its_own_code() -> None:
    assert {cls for cls in error_classes() if cls not in coded_classes()} == {RetryableError}


def test_codes_are_unique() -> None:
    codes = [cls.code for cls in coded_classes()]

    assert len(codes) == len(set(codes))


def test_statuses_are_http_error_statuses() -> None:
    for cls in error_classes():
        assert 400 <= cls.status <= 599, cls


@pytest.mark.parametrize("cls", coded_classes(), ids=lambda cls: cls.__name__)
def test_error_round_trips_through_its_code(cls: type[FaceflowError]) -> None:
    details: dict[str, errors.JsonScalar] = {"faces": 2, "model": "yunet"}
    if issubclass(cls, RetryableError):
        original: FaceflowError = cls("try later", retry_after_s=7, details=details)
        # What crosses a process boundary: the code, the message and the details, with the
        # retry hint among them (as the worker pool sends it).
        sent = {**original.details, "retry_after_s": 7}
    else:
        original = cls("something went wrong", details)
        sent = dict(original.details)

    rebuilt = error_from_code(original.code, original.message, sent)

    assert type(rebuilt) is cls
    assert (rebuilt.code, rebuilt.status, rebuilt.message) == (
        original.code,
        original.status,
        original.message,
    )
    assert rebuilt.details["faces"] == 2
    if isinstance(original, RetryableError):
        assert isinstance(rebuilt, RetryableError)
        assert rebuilt.retry_after_s == 7


def test_unknown_code_becomes_a_plain_internal_error() -> None:
    rebuilt = error_from_code("no_such_code", "odd", {"x": 1})

    assert type(rebuilt) is FaceflowError
    assert (rebuilt.code, rebuilt.status, rebuilt.details) == ("internal", 500, {"x": 1})


@pytest.mark.parametrize(
    ("retry", "expected"), [(None, 1), (2.9, 2), (0, 1), ("soon", 1), (30, 30)]
)
def test_retry_hint_is_read_defensively(retry: errors.JsonScalar, expected: int) -> None:
    details = {} if retry is None else {"retry_after_s": retry}

    rebuilt = error_from_code("overloaded", "busy", details)

    assert isinstance(rebuilt, errors.Overloaded)
    assert rebuilt.retry_after_s == expected


def test_to_dict_is_the_json_error_body() -> None:
    error = errors.TooLarge("too big", {"bytes": 11, "max_bytes": 10})

    assert error.to_dict() == {
        "code": "too_large",
        "message": "too big",
        "bytes": 11,
        "max_bytes": 10,
    }


def test_did_you_mean_names_the_closest_known_name_or_nothing() -> None:
    assert did_you_mean("cn-1-inch", ["cn-1inch", "cn-2inch", "us-passport"]) == (
        " (did you mean 'cn-1inch'?)"
    )
    assert did_you_mean("threshhold", {"threshold", "max_faces"}) == (
        " (did you mean 'threshold'?)"
    )
    assert did_you_mean("colour", ["threshold", "max_faces"]) == ""


def test_did_you_mean_looks_past_the_case_and_names_the_known_spelling() -> None:
    assert did_you_mean("THRESHOLD", ["threshold", "max_faces"]) == (" (did you mean 'threshold'?)")


@pytest.mark.parametrize(
    ("word", "meant"),
    [("agexxxx", "age"), ("agexxxxx", None), ("xxxxage", "age"), ("xxxxxage", None)],
    ids=["7/3 as long", "longer", "7/3, the end", "longer, the end"],
)
def test_did_you_mean_still_names_what_difflib_finds_close_at_the_longest(
    word: str, meant: str | None
) -> None:
    expected = "" if meant is None else f" (did you mean {meant!r}?)"
    assert did_you_mean(word, ["age", "gender"]) == expected


def test_did_you_mean_does_not_index_a_name_too_long_to_be_close(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """difflib indexes the whole word before it compares lengths: a 60 KB attribute or size name
    in a query cost 22 ms of the event loop per look (three looks a request on a face route)."""
    indexed: list[int] = []
    index = difflib.SequenceMatcher.set_seq2

    def recording(matcher: difflib.SequenceMatcher[str], word: str) -> None:
        indexed.append(len(word))
        index(matcher, word)

    monkeypatch.setattr(difflib.SequenceMatcher, "set_seq2", recording)
    assert did_you_mean("x" * 60_000, ["age", "gender"]) == ""
    assert did_you_mean("agee", ["age", "gender"]) == " (did you mean 'age'?)"
    assert max(indexed) == 4  # the typo only (a new matcher indexes an empty word)
