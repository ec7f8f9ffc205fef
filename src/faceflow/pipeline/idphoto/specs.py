"""ID-photo size presets, defined in millimetres as the authorities publish them.

Pixel sizes are derived, never tabulated: ``round(mm / 25.4 × dpi)``. Head height is chin to
crown (top of the hair). The eye line is the distance from the photo's *bottom* edge to the line
through the pupils (the US State Department's convention); rules published from the top edge are
converted here. Where an authority publishes no rule for a quantity, the preset derives one from a
stated proportion and its comment says so.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from faceflow.errors import InvalidParameter, did_you_mean, quoted

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
    ``title_zh`` is the name in Chinese; ``authority`` names who publishes the rules (or says that
    none does and where the proportions come from). ``glasses_allowed`` is False where the
    authority refuses glasses of any kind (the US State Department since November 2016);
    ``closed_mouth`` is True where it asks for a neutral expression with the mouth closed (ICAO
    9303 and the authorities on its rules, China's immigration guidance, Canada's IRCC; the US
    takes "a natural smile", and the studio sizes have no authority): the report's
    ``mouth_closed`` warning says so there.
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
    title_zh: str = ""
    authority: str = ""
    glasses_allowed: bool = True
    closed_mouth: bool = False

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
            "title_zh": self.title_zh,
            "authority": self.authority,
            "width_mm": self.width_mm,
            "height_mm": self.height_mm,
            "dpi": self.dpi,
            "width_px": self.width_px,
            "height_px": self.height_px,
            "head_height_mm": list(self.head_height_mm),
            "eye_line_from_bottom_mm": list(self.eye_line_mm),
            "crown_margin_mm": list(self.crown_margin_mm) if self.crown_margin_mm else None,
            "backgrounds": list(self.backgrounds),
            "glasses_allowed": self.glasses_allowed,
            "closed_mouth": self.closed_mouth,
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


_STUDIO_AUTHORITY = "no issuing authority: Chinese photo-studio size; head about 2/3 (GA 461)"
_ICAO_AUTHORITY = "ICAO Doc 9303 part 3 / ISO/IEC 19794-5"


def _studio(
    key: str,
    title: str,
    title_zh: str,
    width_mm: float,
    height_mm: float,
    *,
    authority: str = _STUDIO_AUTHORITY,
    backgrounds: tuple[str, ...] = ("white", "blue", "red"),
) -> IdPhotoSpec:
    # Chinese photo-studio sizes (寸) have no issuing authority; proportions follow GA 461's
    # "head is about 2/3 of the photo" and common studio practice (see _STUDIO_* above).
    return IdPhotoSpec(
        key=key,
        title=title,
        title_zh=title_zh,
        authority=authority,
        width_mm=width_mm,
        height_mm=height_mm,
        dpi=300,
        head_height_mm=_of(height_mm, _STUDIO_HEAD),
        eye_line_mm=_of(height_mm, _STUDIO_EYES),
        backgrounds=backgrounds,
        crown_margin_mm=_of(height_mm, _STUDIO_CROWN),
    )


def _icao_35x45(
    key: str,
    title: str,
    title_zh: str,
    authority: str,
    backgrounds: tuple[str, ...],
    head_height_mm: Range = (32, 36),
    crown_margin_mm: Range | None = None,
) -> IdPhotoSpec:
    """A 35×45 mm photo on ICAO 9303's rules unless the authority publishes its own."""
    return IdPhotoSpec(
        key=key,
        title=title,
        title_zh=title_zh,
        authority=authority,
        width_mm=35,
        height_mm=45,
        dpi=300,
        head_height_mm=head_height_mm,
        eye_line_mm=_of(45, _ICAO_EYES),
        backgrounds=backgrounds,
        crown_margin_mm=crown_margin_mm,
        closed_mouth=True,  # ICAO 9303 part 3: a neutral expression, the mouth closed
    )


def _us_2x2(
    key: str, title: str, title_zh: str, authority: str, *, glasses_allowed: bool = True
) -> IdPhotoSpec:
    # 2×2 in (50.8 mm, 600×600 px at 300 dpi), head 1–1⅜ in (25.4–34.9 mm) chin to crown, eyes
    # 1⅛–1⅜ in (28.6–34.9 mm) from the bottom, white or off-white background (the light grey
    # preset, #f0f0f0, is an off-white).
    return IdPhotoSpec(
        glasses_allowed=glasses_allowed,
        key=key,
        title=title,
        title_zh=title_zh,
        authority=authority,
        width_mm=50.8,
        height_mm=50.8,
        dpi=300,
        head_height_mm=(25.4, 34.9),
        eye_line_mm=(28.6, 34.9),
        backgrounds=("white", "grey"),
    )


PRESETS: tuple[IdPhotoSpec, ...] = (
    _studio("cn-1inch", "1 inch", "一寸", 25, 35),
    _studio("cn-small-1inch", "Small 1 inch", "小一寸", 22, 32),
    _studio("cn-large-1inch", "Large 1 inch", "大一寸", 33, 48),
    _studio("cn-2inch", "2 inch", "二寸", 35, 49),
    _studio("cn-large-2inch", "Large 2 inch", "大二寸", 35, 53),
    _studio("cn-small-2inch", "Small 2 inch", "小二寸", 35, 45),
    # National civil-service exam (国家公务员考试) registration: a recent bare-headed frontal photo,
    # JPG, at least 295×413 px (1 inch at 300 dpi), blue or white background. No placement rule
    # beyond "the head fills the frame": studio proportions.
    _studio(
        "cn-civil-service",
        "China civil-service exam",
        "公务员考试报名照",
        25,
        35,
        authority="National Civil Service Administration (国家公务员局) exam registration notice",
        backgrounds=("blue", "white"),
    ),
    # China passport / travel documents, National Immigration Administration photo guidance
    # (出入境证件相片照相指引): 33×48 mm, head 28–33 mm chin to crown, crown 3–5 mm below the top
    # edge, chin at least 7 mm above the bottom. No eye-line rule: derived from the crown margin
    # and head height (eyes 42–60 % of the head below the crown) → 25.5–31.5 mm from the bottom.
    IdPhotoSpec(
        key="cn-passport",
        title="China passport",
        title_zh="中国护照 / 出入境证件",
        authority="National Immigration Administration (国家移民管理局) photo guidance",
        width_mm=33,
        height_mm=48,
        dpi=300,
        head_height_mm=(28, 33),
        eye_line_mm=(25.5, 31.5),
        backgrounds=("white",),
        crown_margin_mm=(3, 5),
        closed_mouth=True,  # 不露齿: no teeth showing
    ),
    # China resident identity card, GA 461-2004: 358×441 px at 350 dpi (26×32 mm), head about 2/3
    # of the photo (read as 20–23 mm), crown 7–21 px (0.5–1.5 mm) below the top edge, eyes at
    # least 207 px (15.0 mm) above the bottom; the upper eye bound is derived from the crown rule.
    # GA 461 itself says to keep the eye rule and trim very tall hair when both cannot hold.
    IdPhotoSpec(
        key="cn-id-card",
        title="China resident ID card",
        title_zh="居民身份证",
        authority="GA 461-2004 (Ministry of Public Security)",
        width_mm=26,
        height_mm=32,
        dpi=350,
        head_height_mm=(20, 23),
        eye_line_mm=(15.0, 22.0),
        backgrounds=("white",),
        crown_margin_mm=(0.5, 1.5),
    ),
    # China motor-vehicle driving licence, GA 482-2008: 22×32 mm (260×378 px at 300 dpi), head
    # 14–16 mm wide and 19–22 mm long, crown 10–20 px (0.8–1.7 mm) below the top edge, white
    # background. No eye-line rule: derived like the ID card's (eyes 42–60 % of the head below
    # the crown) → 17.1–23.2 mm from the bottom, read as 17–23 mm.
    IdPhotoSpec(
        key="cn-driving-licence",
        title="China driving licence",
        title_zh="机动车驾驶证",
        authority="GA 482-2008 (Ministry of Public Security)",
        width_mm=22,
        height_mm=32,
        dpi=300,
        head_height_mm=(19, 22),
        eye_line_mm=(17.0, 23.0),
        backgrounds=("white",),
        crown_margin_mm=(0.8, 1.7),
    ),
    # ICAO Doc 9303 part 3 / ISO/IEC 19794-5 printed photo: 35×45 mm, head 70–80 % of the height
    # (32–36 mm chin to crown), eye line 50–70 % of the height from the bottom.
    _icao_35x45(
        "icao", "ICAO passport (35×45 mm)", "ICAO 护照", _ICAO_AUTHORITY, ("white", "grey")
    ),
    # EU member-state passports follow ICAO 9303 (e.g. the German Fotomustertafel: 32–36 mm).
    _icao_35x45(
        "eu-passport",
        "EU passport",
        "欧盟护照",
        "EU member states, on ICAO 9303 (e.g. German Fotomustertafel)",
        ("white", "grey"),
    ),
    # Schengen visa: Regulation (EC) 810/2009 (Visa Code) asks for ICAO 9303 photos: 35×45 mm,
    # head 32–36 mm.
    _icao_35x45(
        "schengen-visa",
        "Schengen visa",
        "申根签证",
        "Regulation (EC) 810/2009 (EU Visa Code), on ICAO 9303",
        ("white", "grey"),
    ),
    # UK passport, HM Passport Office (gov.uk "Photos for passports"): 35×45 mm, head 29–34 mm
    # chin to crown, plain cream or light grey background. Eye line: ICAO's 50–70 %.
    _icao_35x45(
        "uk-passport",
        "UK passport",
        "英国护照",
        "HM Passport Office (gov.uk, Photos for passports)",
        ("grey",),
        head_height_mm=(29, 34),
    ),
    # India passport, Ministry of External Affairs (Passport Seva photo specifications):
    # 35×45 mm, the face (chin to crown) about 80 % of the photo, plain white background. The
    # head range is ICAO's 32–36 mm (71–80 %), as the MEA's sample photos show.
    _icao_35x45(
        "in-passport",
        "India passport",
        "印度护照",
        "Ministry of External Affairs, Passport Seva photo specifications",
        ("white",),
    ),
    # Australian passport, Australian Passport Office (passports.gov.au photo guidelines):
    # 35–40 mm wide × 45–50 mm high (35×45 here), face chin to crown 32–36 mm, plain white or
    # light grey background. Eye line: ICAO's 50–70 %.
    _icao_35x45(
        "au-passport",
        "Australia passport",
        "澳大利亚护照",
        "Australian Passport Office (passports.gov.au photo guidelines)",
        ("white", "grey"),
    ),
    # Korea passport, Ministry of Foreign Affairs passport-photo standard (여권사진 규정):
    # 35×45 mm, head 32–36 mm crown to chin, white background. Eye line: ICAO's 50–70 %.
    _icao_35x45(
        "kr-passport",
        "Korea passport",
        "韩国护照",
        "Ministry of Foreign Affairs of Korea, passport photo standard",
        ("white",),
    ),
    # Korea visa: the same Ministry of Foreign Affairs standard as the passport.
    _icao_35x45(
        "kr-visa",
        "Korea visa",
        "韩国签证",
        "Ministry of Foreign Affairs of Korea, passport photo standard (used for visas)",
        ("white",),
    ),
    # Japan passport, Ministry of Foreign Affairs (外務省 パスポート申請用写真の規格): 35×45 mm,
    # face chin to crown 34 ± 2 mm (32–36), crown 4 ± 2 mm (2–6 mm) below the top edge, plain
    # white or off-white background. Eye line: ICAO's 50–70 %.
    _icao_35x45(
        "jp-passport",
        "Japan passport",
        "日本护照",
        "Ministry of Foreign Affairs of Japan, passport photo standard",
        ("white", "grey"),
        crown_margin_mm=(2, 6),
    ),
    # US passport and visa, State Department (travel.state.gov photo requirements): no glasses
    # since 1 November 2016, short of a medical statement.
    _us_2x2(
        "us-passport",
        "US passport",
        "美国护照",
        "US Department of State (travel.state.gov)",
        glasses_allowed=False,
    ),
    _us_2x2(
        "us-visa",
        "US visa",
        "美国签证",
        "US Department of State (travel.state.gov)",
        glasses_allowed=False,
    ),
    # US green card (permanent residence, e.g. Form I-485): USCIS asks for 2×2 in photos to the
    # State Department's passport rules, glasses included.
    _us_2x2(
        "us-green-card",
        "US green card",
        "美国绿卡",
        "USCIS (form instructions), to the State Department's photo rules",
        glasses_allowed=False,
    ),
    # India visa (Indian Visa Online, Ministry of Home Affairs): 2×2 in, head 1–1⅜ in chin to
    # crown, eyes 1⅛–1⅜ in from the bottom, plain white or light background: the US rules.
    _us_2x2(
        "in-visa",
        "India visa",
        "印度签证",
        "Government of India, Indian Visa Online photo specifications",
    ),
    # Canada passport, IRCC photo specifications: 50×70 mm, face height chin to crown 31–36 mm,
    # plain white or light-coloured background. No eye-line rule: ICAO's 50–70 % is used.
    IdPhotoSpec(
        key="ca-passport",
        title="Canada passport",
        title_zh="加拿大护照",
        authority="IRCC passport photo specifications",
        width_mm=50,
        height_mm=70,
        dpi=300,
        head_height_mm=(31, 36),
        eye_line_mm=_of(70, _ICAO_EYES),
        backgrounds=("white", "grey"),
        closed_mouth=True,  # a neutral expression, mouth closed, no smiling
    ),
    # Japan visa (MOFA application form): 45×45 mm. No published head or eye rule found: the US
    # 2×2 in proportions are used (head 50–69 % of the height, eyes 56–69 % from the bottom).
    IdPhotoSpec(
        key="jp-visa",
        title="Japan visa",
        title_zh="日本签证",
        authority="Ministry of Foreign Affairs of Japan (visa form); US 2×2 in proportions",
        width_mm=45,
        height_mm=45,
        dpi=300,
        head_height_mm=_of(45, (0.50, 0.69)),
        eye_line_mm=_of(45, (0.56, 0.69)),
        backgrounds=("white", "grey"),
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
            f"unknown ID-photo size {quoted(key)}{did_you_mean(key, _BY_KEY)};"
            f" known sizes: {known}",
            {"parameter": "spec"},
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
        raise InvalidParameter(
            f"unit must be 'mm' or 'px', not {quoted(unit)}", {"parameter": "unit"}
        )
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
        title_zh=f"自定义 {label}，{dpi} dpi",
        authority="custom size: studio proportions",
    )


def head_px(spec: IdPhotoSpec) -> float:
    """The tallest head ``spec`` allows, in its output pixels."""
    return spec.head_height_mm[1] * spec.px_per_mm


# The tallest head any preset shows (36 mm at 300 dpi: 425 px). A cut-out with at least this many
# pixels of head serves every preset at one or more matte pixels per output pixel, so another
# preset for the same upload is a render only.
PRESET_HEAD_PX = max(head_px(spec) for spec in PRESETS)
# A custom size whose head needs more gets a cut-out of its own, at the next multiple of this.
MATTE_HEAD_STEP_PX = 100


def matte_head_px(specs: Iterable[IdPhotoSpec]) -> int | None:
    """The head height (output px) the cut-out must give ``specs``, when a preset's is not enough.

    ``None`` when every one of ``specs`` fits in :data:`PRESET_HEAD_PX` (a cut-out made for the
    presets serves them); otherwise the tallest head they need, rounded up to
    :data:`MATTE_HEAD_STEP_PX` so that nearby custom sizes share one cut-out.
    """
    need = max((head_px(spec) for spec in specs), default=0.0)
    if need <= PRESET_HEAD_PX:
        return None
    return math.ceil(need / MATTE_HEAD_STEP_PX) * MATTE_HEAD_STEP_PX
