"""The background an ID photo asks for: a colour (a preset name or any ``#rrggbb``) and a style.

The option alone, no pixels (:mod:`.background` paints it): options are parsed and keyed where
the request arrives, the API process, which does not import numpy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from faceflow.errors import InvalidParameter, quoted

Rgb = tuple[int, int, int]

PRESET_COLOURS: dict[str, Rgb] = {
    "white": (0xFF, 0xFF, 0xFF),
    # The blue of Chinese ID and visa photos (证件照蓝).
    "blue": (0x43, 0x8E, 0xDB),
    "red": (0xD9, 0x00, 0x1B),
    "grey": (0xF0, 0xF0, 0xF0),
}
_ALIASES = {"gray": "grey", "light-grey": "grey", "light-gray": "grey", "lightgrey": "grey"}
_HEX = re.compile(r"^#?([0-9a-fA-F]{6})$")


class BackgroundStyle(StrEnum):
    SOLID = "solid"
    VERTICAL = "vertical"
    RADIAL = "radial"


@dataclass(frozen=True, slots=True)
class Background:
    """A background colour (sRGB 0–255) and style; ``name`` is the preset name, if any."""

    colour: Rgb
    style: BackgroundStyle = BackgroundStyle.SOLID
    name: str | None = None

    @property
    def hex(self) -> str:
        return "#{:02x}{:02x}{:02x}".format(*self.colour)

    def to_dict(self) -> dict[str, str]:
        return {"colour": self.hex, "style": self.style.value, "name": self.name or self.hex}


WHITE = Background(PRESET_COLOURS["white"], name="white")


def parse_background(colour: str, style: str = "solid") -> Background:
    """A preset name (white, blue, red, grey) or ``#rrggbb``, and a style name.

    Raises :class:`InvalidParameter` for anything else.
    """
    try:
        parsed_style = BackgroundStyle(style.lower())
    except ValueError:
        known = ", ".join(s.value for s in BackgroundStyle)
        raise InvalidParameter(
            f"unknown background style {quoted(style)}; use one of {known}", {"parameter": "style"}
        ) from None
    key = colour.strip().lower()
    key = _ALIASES.get(key, key)
    if key in PRESET_COLOURS:
        return Background(PRESET_COLOURS[key], parsed_style, key)
    match = _HEX.match(key)
    if match is None:
        known = ", ".join(PRESET_COLOURS)
        raise InvalidParameter(
            f"background must be one of {known} or #rrggbb, not {quoted(colour)}",
            {"parameter": "background"},
        )
    value = int(match.group(1), 16)
    rgb = ((value >> 16) & 0xFF, (value >> 8) & 0xFF, value & 0xFF)
    return Background(rgb, parsed_style, None)


def matches_any(background: Background, names: tuple[str, ...], tolerance: int = 8) -> bool:
    """Whether ``background`` is (close to) one of the named presets and solid."""
    if background.style is not BackgroundStyle.SOLID:
        return False
    for name in names:
        preset = PRESET_COLOURS.get(_ALIASES.get(name, name))
        if preset and max(abs(a - b) for a, b in zip(preset, background.colour, strict=True)) <= (
            tolerance
        ):
            return True
    return False
