"""A compliance check's result, its limit and the report they make up."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from faceflow.pipeline.idphoto.compliance.hints import HINTS


class CheckStatus(StrEnum):
    PASS = "pass"  # noqa: S105 - a verdict, not a password
    WARN = "warn"
    FAIL = "fail"

    @property
    def rank(self) -> int:
        return {"pass": 0, "warn": 1, "fail": 2}[self.value]


_UNIT_TEXT = {"mm": " mm", "deg": "°", "fraction": " %", "": ""}

# What a limit's number measures, by its stable ``of`` key: the English sentence around it.
_OF_TEXT = {
    "": "{}",
    "from_bottom": "{} from the bottom",
    "height_share": "{} (5 % of the height)",
    "hair_zone": "{} of the hair zone",
    "shoulder_edge": "{} of the shoulders' edge",
    "shoulder_width": "{} eye distances wide below the chin",
    "source_px": "{} source px per output px",
    "std": "std {}",
    "teeth_of_mouth": "teeth {} of the mouth area",
    "eye_distances": "{} eye distances",
    "lips_gap": "a gap of {} eye distances between the lips",
    "smear": "{} (detail along the smear over across it)",
    "saturation": "a saturation of {} (colour per unit of lightness)",
    "eye_covered": "{} of an eye covered from the brow to below it",
    "tone_spread": "{} of the face's colour independent of its lightness",
    "crown_colour": "the top of the head ΔE {} from the hair beside the face or the forehead",
    "crown_detail": "the top of the head's fine detail {} of the hair's beside the face",
    "head_notch": "a notch {} eye distances deep in the outline of the head",
    "chin_covered": "{} of the chin covered (no skin colour)",
    "chin_detail": "the dark chin's fine detail {} of its lightness",
    "colour_patch": "{} of the face under a patch of a colour no skin has",
    "double_image": "{} (the face's detail repeated aside, of itself)",
}

_RULE_TEXT = {
    "frame_inside_photo": "the whole frame inside the photo",
    "nothing": "none",
    "no_glasses": "no glasses",
    "glasses_allowed": "glasses allowed",
}


def _number(value: float, unit: str) -> str:
    shown = value * 100 if unit == "fraction" else value
    return f"{round(shown, 3):g}{_UNIT_TEXT[unit]}"


@dataclass(frozen=True, slots=True)
class Limit:
    """What a check allows, as data, so a page can say it in its own language; :attr:`text` is
    the same in English for API clients that show it as it is.

    ``min``/``max`` bound the value (either may be open; equal means exactly; ``min == -max`` is
    ±max), in ``unit`` (``mm``, ``deg``, ``fraction`` shown as a percentage, or a plain number).
    ``of`` says what the number measures (a stable key, e.g. ``from_bottom``); ``one_of`` lists
    accepted values (background preset names); ``rule`` names a rule with no number
    (``frame_inside_photo``, ``nothing``); ``also`` is the same limit in other units.
    """

    min: float | None = None
    max: float | None = None
    unit: str = ""
    of: str = ""
    one_of: tuple[str, ...] = ()
    rule: str = ""
    also: Limit | None = None

    @property
    def text(self) -> str:
        if self.rule:
            return _RULE_TEXT[self.rule]
        if self.one_of:
            return " or ".join(self.one_of)
        low, high, unit = self.min, self.max, self.unit
        if low is not None and high is not None:
            if low == high:
                bound = f"exactly {_number(low, unit)}"
            elif low == -high:
                bound = f"±{_number(high, unit)}"
            else:
                bound = f"{_number(low, '')}–{_number(high, unit)}"
        elif low is not None:
            bound = f"≥ {_number(low, unit)}"
        elif high is not None:
            bound = f"≤ {_number(high, unit)}"
        else:
            bound = "any"
        text = _OF_TEXT[self.of].format(bound)
        return f"{text} ({self.also.text})" if self.also is not None else text

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in ("min", "max"):
            value = getattr(self, name)
            if value is not None:
                out[name] = round(value, 4)
        if self.unit:
            out["unit"] = self.unit
        if self.of:
            out["of"] = self.of
        if self.one_of:
            out["one_of"] = list(self.one_of)
        if self.rule:
            out["rule"] = self.rule
        if self.also is not None:
            out["also"] = self.also.to_dict()
        return out


@dataclass(frozen=True, slots=True)
class Check:
    """One rule: the measured ``value``, what its ``limit`` allows, and the verdict."""

    name: str
    value: float | int | str | None
    limit: Limit
    status: CheckStatus
    unit: str = ""
    note: str = ""
    hint: str = ""
    hint_zh: str = ""

    def hints(self) -> tuple[str, str]:
        """The hint in English and Chinese: this check's own, else the one for its name."""
        default = HINTS.get(self.name, ("", ""))
        return self.hint or default[0], self.hint_zh or default[1]

    def to_dict(self) -> dict[str, Any]:
        value = round(self.value, 3) if isinstance(self.value, float) else self.value
        hint, hint_zh = self.hints()
        out: dict[str, Any] = {
            "name": self.name,
            "value": value,
            "allowed": self.limit.text,
            "limit": self.limit.to_dict(),
            "status": self.status.value,
            "hint": hint,
            "hint_zh": hint_zh,
        }
        if self.unit:
            out["unit"] = self.unit
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True, slots=True)
class ComplianceReport:
    checks: tuple[Check, ...]
    extended_edges: tuple[str, ...]

    @property
    def status(self) -> CheckStatus:
        return max((c.status for c in self.checks), key=lambda s: s.rank, default=CheckStatus.PASS)

    def with_check(self, check: Check) -> ComplianceReport:
        return ComplianceReport((*self.checks, check), self.extended_edges)

    def check(self, name: str) -> Check:
        for item in self.checks:
            if item.name == name:
                return item
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "extended_edges": list(self.extended_edges),
            "checks": [c.to_dict() for c in self.checks],
        }


def at_most(value: float, pass_at: float, warn_at: float) -> CheckStatus:
    """Pass up to ``pass_at``, warn up to ``warn_at``, fail beyond."""
    if value <= pass_at:
        return CheckStatus.PASS
    return CheckStatus.WARN if value <= warn_at else CheckStatus.FAIL


def at_least(value: float, pass_at: float, warn_at: float) -> CheckStatus:
    """Pass from ``pass_at`` up, warn from ``warn_at`` up, fail below."""
    if value >= pass_at:
        return CheckStatus.PASS
    return CheckStatus.WARN if value >= warn_at else CheckStatus.FAIL


def within(value: float, low: float, high: float) -> bool:
    return low <= value <= high


def sentence(text: str) -> str:
    """``text`` with a capital first letter, as every other hint starts."""
    return text[:1].upper() + text[1:]
