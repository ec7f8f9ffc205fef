"""The choices of options that are a fixed set of words, apart from their models' pydantic.

The options models (:mod:`faceflow.operations.idphoto`) type their fields with these, and the CLI
builds its flags from the same types when it starts (it must not import pydantic for
``faceflow --help``), so a choice added here is the API's, the CLI's ``--help`` and its
validation at once.
"""

from __future__ import annotations

from typing import Literal

from faceflow.imaging.formats import OutputFormat

Gradient = Literal["none", "vertical", "radial"]
"""A background's fade to white (``gradient``)."""

__all__ = ["Gradient", "OutputFormat"]
