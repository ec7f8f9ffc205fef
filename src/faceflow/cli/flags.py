"""Flags without pydantic: typer's coercion of unset boolean flags, made cheap.

typer (0.2x) coerces every parameter it processes through a pydantic ``TypeAdapter``, built the
first time, even a boolean flag that was not given (its ``--help``, ``--install-completion``
and ``--show-completion``, on every command). That imports pydantic and builds four adapters
before any command runs: measured ≈ 0.12 s of the ≈ 0.3 s of CPU ``faceflow id-photo-specs``
took on this VM. A plain ``bool`` flag needs no adapter: typer passes a given flag's ``True`` or
``False`` through without coercing it, and an unset one is ``None``, which its coercion returns
before any adapter is consulted. :func:`install` gives such flags typer's own pass-through
coercion instead, so the adapter (and pydantic) is only built for a parameter that needs one.

Only flags typed exactly ``bool``, without an environment variable (whose value would be a
string to parse), are changed. With a typer that has no such layer (older or newer), nothing is
changed.
"""

from __future__ import annotations

from typing import Any


def install() -> None:
    """Apply the pass-through to typer's parameter class, once; a no-op on other typers."""
    try:
        from typer._coercion import PassThroughRuntimeParam
        from typer.core import _TyperParameter
    except ImportError:
        return
    original = getattr(_TyperParameter, "get_runtime_param", None)
    if original is None or getattr(original, "_faceflow_flags", False):
        return

    def get_runtime_param(self: Any) -> Any:
        if (
            getattr(self, "_runtime_param", True) is None
            and getattr(self, "is_flag", False)
            and not getattr(self, "envvar", None)
            and self.type_descriptor.annotation is bool
        ):
            self._runtime_param = PassThroughRuntimeParam(
                parameter_info=self.type_descriptor.parameter_info, annotation=bool
            )
        return original(self)

    get_runtime_param._faceflow_flags = True  # type: ignore[attr-defined]
    _TyperParameter.get_runtime_param = get_runtime_param  # type: ignore[method-assign]
