"""Package attributes imported on first use (PEP 562).

A package's public names are listed once, but the modules behind them are imported only when a
name is first read, so a process that needs a package's light half does not pay for the other:
``import faceflow`` and the CLI's quick commands without numpy, OpenCV and onnxruntime; the API
process without the decoders and the ID-photo pipeline, which only the inference processes run.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(package: str, module_of: Mapping[str, str]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` for ``package``: the attribute ``name`` is read from the
    submodule ``package.<module_of[name]>``, imported when the name is first asked for."""

    def attribute(name: str) -> Any:
        module = module_of.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    return attribute
