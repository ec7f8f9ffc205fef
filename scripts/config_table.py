"""Print the README's configuration table from the Settings model (run after adding a setting)."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel

from faceflow.config import Settings

SHOWN_DEFAULTS = {
    ("models", "dir"): "~/.cache/faceflow/models",
    ("runtime", "processes"): "cores",
    ("jobs", "worker_processes"): "cores",
}
"""Defaults made on the machine that runs this (its home, its cores), as the README states them
for every machine: printed as found, the table said `2` for ``jobs.worker_processes``, the
cores of the machine it was last made on."""


def shown(value: object) -> object:
    """A default as a user writes it: enum members (``runtime.operations``) as their values, an
    empty string as ``""``."""
    if isinstance(value, list):
        return [shown(item) for item in value]
    if value == "":
        return '""'
    return value.value if isinstance(value, Enum) else value


def rows() -> list[str]:
    """The table's rows, one per setting, as the README gives them."""
    settings = Settings()
    lines = []
    for group in Settings.model_fields:
        values = getattr(settings, group)
        assert isinstance(values, BaseModel)
        for name, field in type(values).model_fields.items():
            default = SHOWN_DEFAULTS.get((group, name), shown(getattr(values, name)))
            env = f"FACEFLOW_{group.upper()}__{name.upper()}"
            meaning = (field.description or "").replace("|", "\\|")
            lines.append(f"| `{group}.{name}` | `{env}` | `{default}` | {meaning} |")
    return lines


def main() -> None:
    print("| setting | environment variable | default | meaning |")
    print("|---|---|---|---|")
    for row in rows():
        print(row)


if __name__ == "__main__":
    main()
