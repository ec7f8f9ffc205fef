"""Whether a Redis writes what it holds to its own disk, in its own words.

faceflow writes no image to disk, but a Redis it stores images or results in may: the queue
Redis's append-only file holds every job's upload and result, and a stock Redis (its default
``save`` rules) snapshots whatever it holds, cache entries included. Said at start by whoever
connects, so an operator who read "never written to disk" learns where it does not hold.
"""

from __future__ import annotations

from collections.abc import Mapping

PARAMETERS = ("appendonly", "save")
"""The ``CONFIG GET`` parameters that say whether (and how) a Redis persists its data."""


def persistence(config: Mapping[object, object]) -> str | None:
    """How a Redis whose ``CONFIG GET`` of :data:`PARAMETERS` answered ``config`` writes its
    data to disk (``appendonly yes``, ``save "3600 1 300 100"``, or both), None when it does
    not. Replies come as ``str`` or ``bytes`` depending on the client; both are read."""
    values = {_text(name): _text(value).strip() for name, value in config.items()}
    said = []
    if values.get("appendonly") == "yes":
        said.append("appendonly yes")
    if save := values.get("save"):
        said.append(f'save "{save}"')
    return ", ".join(said) or None


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return "" if value is None else str(value)
