"""Print the README's configuration table from the Settings model (run after adding a setting)."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel

from faceflow.config import Settings

SHOWN_DEFAULTS = {("models", "dir"): "~/.cache/faceflow/models", ("runtime", "processes"): "cores"}


def shown(value: object) -> object:
    """A default as a user writes it: enum members (``runtime.operations``) as their values."""
    if isinstance(value, list):
        return [shown(item) for item in value]
    return value.value if isinstance(value, Enum) else value


def main() -> None:
    settings = Settings()
    print("| setting | environment variable | default | meaning |")
    print("|---|---|---|---|")
    for group in Settings.model_fields:
        values = getattr(settings, group)
        assert isinstance(values, BaseModel)
        for name, field in type(values).model_fields.items():
            default = SHOWN_DEFAULTS.get((group, name), shown(getattr(values, name)))
            env = f"FACEFLOW_{group.upper()}__{name.upper()}"
            meaning = (field.description or "").replace("|", "\\|")
            print(f"| `{group}.{name}` | `{env}` | `{default}` | {meaning} |")


if __name__ == "__main__":
    main()
