"""ID-photo size presets, defined in millimetres as the authorities publish them.

Pixel sizes are derived, never tabulated: ``round(mm / 25.4 × dpi)``. Head height is chin to
crown (top of the hair). The eye line is the distance from the photo's *bottom* edge to the line
through the pupils (the US State Department's convention); rules published from the top edge are
converted here. Where an authority publishes no rule for a quantity, the preset derives one from a
stated proportion and its comment says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from faceflow.errors import InvalidParameter

MM_PER_INCH = 25.4
MIN_SIDE_MM = 10.0
MAX_SIDE_MM = 300.0
MIN_SIDE_PX = 64
MAX_SIDE_PX = 4000
MIN_DPI = 72
MAX_DPI = 1200

Range = tuple[float, float]


def mm_to_px(mm: float, dpi: int) -> int:
    """Whole pixels for a length in millimetres at ``dpi`` (round half to even, as Python does)."""
    return round(mm / MM_PER_INCH * dpi)


@dataclass(frozen=True, slots=True)
class IdPhotoSpec:
    """One photo format: physical size, print resolution and head-placement rules.

    ``head_height_mm`` and ``eye_line_mm`` are closed ranges (low, high); the eye line is measured
    up from the bottom edge. ``crown_margin_mm`` (top of the hair to the top edge) is set only
    where a rule publishes one. ``backgrounds`` are background preset names the authority accepts.
    """

    key: str
    title: str
    width_mm: float
    height_mm: float
    dpi: int
    head_height_mm: Range
    eye_line_mm: Range
    backgrounds: tuple[str, ...]
    crown_margin_mm: Range | None = None

    @property
    def width_px(self) -> int:
        return mm_to_px(self.width_mm, self.dpi)

    @property
    def height_px(self) -> int:
        return mm_to_px(self.height_mm, self.dpi)

    @property
    def px_per_mm(self) -> float:
        """Output pixels per millimetre, from the pixel size actually produced."""
        return self.height_px / self.height_mm

    def to_dict(self) -> dict[str, Any]:
        """JSON form for ``GET /v1/id-photo/specs``."""
        return {
            "key": self.key,
            "title": self.title,
            "width_mm": self.width_mm,
            "height_mm": self.height_mm,
            "dpi": self.dpi,
            "width_px": self.width_px,
            "height_px": self.height_px,
            "head_height_mm": list(self.head_height_mm),
            "eye_line_from_bottom_mm": list(self.eye_line_mm),
            "crown_margin_mm": list(self.crown_margin_mm) if self.crown_margin_mm else None,
            "backgrounds": list(self.backgrounds),
        }


# Rules of thumb for formats whose authority publishes no placement rule, as fractions of the
# photo height. Studio formats: the head fills about 2/3 of the height and the crown sits 8–12 %
# below the top edge. The eyes sit 42–60 % of the head height below the crown (measured on the
# test portraits: 0.47 for short hair, 0.56–0.58 with volume), which puts them 52–64 % up from
# the bottom.
_STUDIO_HEAD = (0.60, 0.68)
_STUDIO_EYES = (0.52, 0.64)
_STUDIO_CROWN = (0.08, 0.12)
# ISO/IEC 19794-5 (used by ICAO 9303): eye line 50–70 % of the height from the bottom edge.
_ICAO_EYES = (0.50, 0.70)


def _of(height_mm: float, fractions: Range) -> Range:
    return (round(height_mm * fractions[0], 1), round(height_mm * fractions[1], 1))


def _studio(key: str, title: str, width_mm: float, height_mm: float) -> IdPhotoSpec:
    # Chinese photo-studio sizes (寸) have no issuing authority; proportions follow GA 461's
    # "head is about 2/3 of the photo" and common studio practice (see _STUDIO_* above).
    return IdPhotoSpec(
        key=key,
        title=title,
        width_mm=width_mm,
        height_mm=height_mm,
        dpi=300,
        head_height_mm=_of(height_mm, _STUDIO_HEAD),
        eye_line_mm=_of(height_mm, _STUDIO_EYES),
        backgrounds=("white", "blue", "red"),
        crown_margin_mm=_of(height_mm, _STUDIO_CROWN),
    )


PRESETS: tuple[IdPhotoSpec, ...] = (
    _studio("cn-1inch", "1 inch (一寸)", 25, 35),
    _studio("cn-small-1inch", "Small 1 inch (小一寸)", 22, 32),
    _studio("cn-large-1inch", "Large 1 inch (大一寸)", 33, 48),
    _studio("cn-2inch", "2 inch (二寸)", 35, 49),
    _studio("cn-large-2inch", "Large 2 inch (大二寸)", 35, 53),
    _studio("cn-small-2inch", "Small 2 inch (小二寸)", 35, 45),
    # China passport / travel documents, National Immigration Administration photo guidance
    # (出入境证件相片照相指引): 33×48 mm, head 28–33 mm chin to crown, crown 3–5 mm below the top
    # edge, chin at least 7 mm above the bottom. No eye-line rule: derived from the crown margin
    # and head height (eyes 42–60 % of the head below the crown) → 25.5–31.5 mm from the bottom.
    IdPhotoSpec(
        key="cn-passport",
        title="China passport",
        width_mm=33,
        height_mm=48,
        dpi=300,
        head_height_mm=(28, 33),
        eye_line_mm=(25.5, 31.5),
        backgrounds=("white",),
        crown_margin_mm=(3, 5),
    ),
    # China resident identity card, GA 461-2004: 358×441 px at 350 dpi (26×32 mm), head about 2/3
    # of the photo (read as 20–23 mm), crown 7–21 px (0.5–1.5 mm) below the top edge, eyes at
    # least 207 px (15.0 mm) above the bottom; the upper eye bound is derived from the crown rule.
    # GA 461 itself says to keep the eye rule and trim very tall hair when both cannot hold.
    IdPhotoSpec(
        key="cn-id-card",
        title="China resident ID card",
        width_mm=26,
        height_mm=32,
        dpi=350,
        head_height_mm=(20, 23),
        eye_line_mm=(15.0, 22.0),
        backgrounds=("white",),
        crown_margin_mm=(0.5, 1.5),
    ),
    # ICAO Doc 9303 part 3 / ISO/IEC 19794-5 printed photo: 35×45 mm, head 70–80 % of the height
    # (32–36 mm chin to crown), eye line 50–70 % of the height from the bottom.
    IdPhotoSpec(
        key="icao",
        title="ICAO passport (35×45 mm)",
        width_mm=35,
        height_mm=45,
        dpi=300,
        head_height_mm=(32, 36),
        eye_line_mm=_of(45, _ICAO_EYES),
        backgrounds=("white", "grey"),
    ),
    # EU member-state passports follow ICAO 9303 (e.g. the German Fotomustertafel: 32–36 mm).
    IdPhotoSpec(
        key="eu-passport",
        title="EU passport",
        width_mm=35,
        height_mm=45,
        dpi=300,
        head_height_mm=(32, 36),
        eye_line_mm=_of(45, _ICAO_EYES),
        backgrounds=("white", "grey"),
    ),
    # Schengen visa (Regulation (EC) 810/2009 refers to ICAO 9303): 35×45 mm, head 32–36 mm.
    IdPhotoSpec(
        key="schengen-visa",
        title="Schengen visa",
        width_mm=35,
        height_mm=45,
        dpi=300,
        head_height_mm=(32, 36),
        eye_line_mm=_of(45, _ICAO_EYES),
        backgrounds=("white", "grey"),
    ),
    # UK passport, HM Passport Office (gov.uk "Photos for passports"): 35×45 mm, head 29–34 mm
    # chin to crown, plain cream or light grey background. Eye line: ICAO's 50–70 %.
    IdPhotoSpec(
        key="uk-passport",
        title="UK passport",
        width_mm=35,
        height_mm=45,
        dpi=300,
        head_height_mm=(29, 34),
        eye_line_mm=_of(45, _ICAO_EYES),
        backgrounds=("grey",),
    ),
    # US passport and visa, State Department (travel.state.gov photo requirements): 2×2 in
    # (50.8 mm, 600×600 px at 300 dpi), head 1–1⅜ in (25.4–34.9 mm), eyes 1⅛–1⅜ in
    # (28.6–34.9 mm) from the bottom, white or off-white background.
    IdPhotoSpec(
        key="us-passport",
        title="US passport",
        width_mm=50.8,
        height_mm=50.8,
        dpi=300,
        head_height_mm=(25.4, 34.9),
        eye_line_mm=(28.6, 34.9),
        backgrounds=("white",),
    ),
    IdPhotoSpec(
        key="us-visa",
        title="US visa",
        width_mm=50.8,
        height_mm=50.8,
        dpi=300,
        head_height_mm=(25.4, 34.9),
        eye_line_mm=(28.6, 34.9),
        backgrounds=("white",),
    ),
    # Canada passport, IRCC photo specifications: 50×70 mm, face height chin to crown 31–36 mm,
    # plain white or light-coloured background. No eye-line rule: ICAO's 50–70 % is used.
    IdPhotoSpec(
        key="ca-passport",
        title="Canada passport",
        width_mm=50,
        height_mm=70,
        dpi=300,
        head_height_mm=(31, 36),
        eye_line_mm=_of(70, _ICAO_EYES),
        backgrounds=("white", "grey"),
    ),
    # Japan visa (MOFA application form): 45×45 mm. No published head or eye rule found: the US
    # 2×2 in proportions are used (head 50–69 % of the height, eyes 56–69 % from the bottom).
    IdPhotoSpec(
        key="jp-visa",
        title="Japan visa",
        width_mm=45,
        height_mm=45,
        dpi=300,
        head_height_mm=_of(45, (0.50, 0.69)),
        eye_line_mm=_of(45, (0.56, 0.69)),
        backgrounds=("white", "grey"),
    ),
    # Korea visa, Ministry of Foreign Affairs passport-photo standard (also used for visas):
    # 35×45 mm, head 32–36 mm crown to chin, white background. Eye line: ICAO's 50–70 %.
    IdPhotoSpec(
        key="kr-visa",
        title="Korea visa",
        width_mm=35,
        height_mm=45,
        dpi=300,
        head_height_mm=(32, 36),
        eye_line_mm=_of(45, _ICAO_EYES),
        backgrounds=("white",),
    ),
)

_BY_KEY = {spec.key: spec for spec in PRESETS}


def list_specs() -> tuple[IdPhotoSpec, ...]:
    """Every preset, in a stable order."""
    return PRESETS


def get_spec(key: str) -> IdPhotoSpec:
    """The preset called ``key``; :class:`InvalidParameter` naming the known keys otherwise."""
    try:
        return _BY_KEY[key]
    except KeyError:
        known = ", ".join(_BY_KEY)
        raise InvalidParameter(
            f"unknown ID-photo size {key!r}; known sizes: {known}", {"parameter": "spec"}
        ) from None


def custom_spec(
    width: float, height: float, unit: Literal["mm", "px"] = "mm", dpi: int = 300
) -> IdPhotoSpec:
    """A user-sized photo with ICAO-like studio proportions.

    ``unit="px"`` takes whole pixels at ``dpi`` and converts them to millimetres so that the
    derived pixel size is exactly what was asked for. Sizes and DPI outside sane bounds raise
    :class:`InvalidParameter`.
    """
    if unit not in ("mm", "px"):
        raise InvalidParameter(f"unit must be 'mm' or 'px', not {unit!r}", {"parameter": "unit"})
    if not isinstance(dpi, int) or not MIN_DPI <= dpi <= MAX_DPI:
        raise InvalidParameter(
            f"dpi must be a whole number from {MIN_DPI} to {MAX_DPI}", {"parameter": "dpi"}
        )
    if unit == "px":
        for name, value in (("width", width), ("height", height)):
            if value != int(value) or not MIN_SIDE_PX <= value <= MAX_SIDE_PX:
                raise InvalidParameter(
                    f"{name} must be whole pixels from {MIN_SIDE_PX} to {MAX_SIDE_PX}",
                    {"parameter": name},
                )
        width_mm = width / dpi * MM_PER_INCH
        height_mm = height / dpi * MM_PER_INCH
    else:
        for name, value in (("width", width), ("height", height)):
            if not MIN_SIDE_MM <= value <= MAX_SIDE_MM:
                raise InvalidParameter(
                    f"{name} must be from {MIN_SIDE_MM:g} to {MAX_SIDE_MM:g} mm",
                    {"parameter": name},
                )
        width_mm, height_mm = float(width), float(height)
    if not 0.4 <= width_mm / height_mm <= 2.0:
        raise InvalidParameter(
            "width ÷ height must be from 0.4 to 2 for a head-and-shoulders photo",
            {"parameter": "width"},
        )
    for name, side_px in (("width", mm_to_px(width_mm, dpi)), ("height", mm_to_px(height_mm, dpi))):
        if not MIN_SIDE_PX <= side_px <= MAX_SIDE_PX:
            raise InvalidParameter(
                f"{name} at {dpi} dpi is {side_px} px; it must be from {MIN_SIDE_PX} "
                f"to {MAX_SIDE_PX} px",
                {"parameter": name},
            )
    label = f"{width:g}×{height:g} {unit}"
    return IdPhotoSpec(
        key=f"custom-{width:g}x{height:g}{unit}-{dpi}dpi",
        title=f"Custom {label} at {dpi} dpi",
        width_mm=width_mm,
        height_mm=height_mm,
        dpi=dpi,
        head_height_mm=_of(height_mm, _STUDIO_HEAD),
        eye_line_mm=_of(height_mm, _STUDIO_EYES),
        backgrounds=("white", "blue", "red", "grey"),
        crown_margin_mm=_of(height_mm, _STUDIO_CROWN),
    )
