"""Option values checked by the parser, as click checks a choice or a range: a bad one is a usage
error (exit 2, naming the flag, the values it takes and the one likely meant) before the command
runs at all.

Checked by the command itself, `faceflow id-photo --spec icaoo photo.jpg` read the settings and
imported OpenCV, numpy and the ONNX stack (≈ 0.45 s of a core) before it said the size was
unknown; a script looping over files paid that for each. The parsers here are the ones the
options models use (:mod:`faceflow.pipeline.idphoto.specs`, ``palette``, ``sheet_plan``,
:func:`faceflow.domain.parse_attributes`), each light, imported only when its flag is given, so
the CLI's start-up stays as it was. What only the whole options model can check (``-O NAME=VALUE``,
a combination such as ``--transparent`` with JPEG) is still checked by the command, before
any file is read or model loaded.
"""

from __future__ import annotations

from collections.abc import Callable

import typer


def _checked(parse: Callable[[str], object], value: str | None) -> str | None:
    """``value`` as given, once ``parse`` takes it; click's usage error with its message if not."""
    from faceflow.errors import InvalidParameter

    if value is None:
        return None
    try:
        parse(value)
    except InvalidParameter as exc:
        raise typer.BadParameter(exc.message) from None
    return value


def _spec(key: str) -> object:
    from faceflow.pipeline.idphoto.specs import get_spec

    return get_spec(key)


def _sheet(key: str) -> object:
    from faceflow.pipeline.idphoto.sheet_plan import get_paper

    return get_paper(key)


def _attributes(value: str) -> object:
    from faceflow.domain import parse_attributes

    return parse_attributes(value)


def _background(colour: str) -> object:
    """The colour's background; its error also names the preset it is likely a typo of (the
    API's message has no such hint: its web page offers the presets as a choice)."""
    from faceflow.errors import InvalidParameter, did_you_mean
    from faceflow.pipeline.idphoto.palette import PRESET_COLOURS, parse_background

    try:
        return parse_background(colour)
    except InvalidParameter as exc:
        hint = did_you_mean(colour.strip(), PRESET_COLOURS)
        raise InvalidParameter(exc.message + hint, exc.details) from None


def spec(value: str | None) -> str | None:
    """``--spec``: a size preset's key."""
    return _checked(_spec, value)


def sheet(value: str | None) -> str | None:
    """``--sheet``: a paper's key."""
    return _checked(_sheet, value)


def attributes(value: str) -> str:
    """``--attributes``: comma-separated attribute names, or none."""
    _checked(_attributes, value)
    return value


def background(value: str) -> str:
    """``--background``: a preset colour's name or ``#rrggbb``."""
    _checked(_background, value)
    return value
