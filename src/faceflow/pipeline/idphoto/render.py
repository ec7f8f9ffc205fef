"""ID-photo entry points: options in, an encoded photo and its compliance report out.

Two stages, so the expensive one runs once per upload:

1. :func:`compute_matte` (segmentation, ~0.2–1 s) → a :class:`Matte`, cacheable as
   :func:`matte_to_bytes`;
2. :func:`render_id_photo` (layout, warp, composite, encode, tens of ms) for any size preset,
   background or format, from the matte alone.

:func:`make_id_photo` runs both for one detected face.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from faceflow.domain import Face
from faceflow.errors import MultipleFaces, NoFace, OutOfRange
from faceflow.imaging.encode import decoded_jpeg, encode_image, encode_jpeg_max_kb
from faceflow.imaging.formats import OutputFormat
from faceflow.pipeline.idphoto.background import background_pixels, composite
from faceflow.pipeline.idphoto.compliance import ComplianceReport, assess, file_compression
from faceflow.pipeline.idphoto.layout import Layout, plan_layout
from faceflow.pipeline.idphoto.matte import Matte, Segmenter, compute_matte
from faceflow.pipeline.idphoto.options import IdPhotoOptions
from faceflow.pipeline.idphoto.upright import upright
from faceflow.pipeline.idphoto.warp import warp_matte


@dataclass(frozen=True, slots=True, eq=False)
class RenderedPhoto:
    """The photo's pixels before encoding: (H, W, 3) RGB, or (H, W, 4) RGBA when transparent."""

    pixels: NDArray[np.uint8]
    layout: Layout


@dataclass(frozen=True, slots=True)
class IdPhotoResult:
    """The encoded photo and its compliance report.

    ``data``: the image file's bytes; ``media_type``: its MIME type (``image/jpeg`` or
    ``image/png``); ``width_px`` and ``height_px``: its size in pixels (the size preset's);
    ``dpi``: the print resolution it was made for, also written in the file; ``quality``: the
    JPEG quality used, the one ``max_kb`` chose when given (``None`` for PNG); ``report``: the
    compliance report (``report.status``: pass, warn or fail; ``report.to_dict()``: the checks
    as the API's JSON).
    """

    data: bytes
    media_type: str
    width_px: int
    height_px: int
    dpi: int
    quality: int | None
    report: ComplianceReport

    def __repr__(self) -> str:
        # The generated repr printed the whole file (139 KB for a 61 KB JPEG, as escapes) and
        # the report's every field (9.5 KB) wherever a shell, a notebook or a log showed one.
        return (
            f"IdPhotoResult(data=<{len(self.data):,} bytes>, media_type={self.media_type!r}, "
            f"width_px={self.width_px}, height_px={self.height_px}, dpi={self.dpi}, "
            f"quality={self.quality}, report=<{self.report.status.value}: "
            f"{len(self.report.checks)} checks>)"
        )

    def to_dict(self) -> dict[str, Any]:
        """Everything but the bytes, for a JSON response next to the image."""
        return {
            "media_type": self.media_type,
            "width": self.width_px,
            "height": self.height_px,
            "dpi": self.dpi,
            "quality": self.quality,
            "bytes": len(self.data),
            "report": self.report.to_dict(),
        }


@dataclass(frozen=True, slots=True, eq=False)
class IdPhotoOutcome:
    """:func:`make_id_photo`'s answer: the matte (to cache) and the photo."""

    matte: Matte
    result: IdPhotoResult


def render_pixels(matte: Matte, face: Face, options: IdPhotoOptions) -> RenderedPhoto:
    """Lay out, warp and composite; exactly ``spec.width_px × spec.height_px`` pixels."""
    layout = plan_layout(matte, face, options.spec, options.nudge)
    foreground, alpha = warp_matte(matte, layout)
    if options.transparent:
        alpha_u8 = np.clip(np.round(alpha * 255.0), 0, 255).astype(np.uint8)
        # Fully transparent pixels carry no colour; zero them so the file compresses well and no
        # stray source colour is hidden in it.
        rgb = np.where(alpha_u8[..., None] > 0, foreground, 0).astype(np.uint8)
        return RenderedPhoto(np.dstack([rgb, alpha_u8]), layout)
    backdrop = background_pixels(options.background, layout.width_px, layout.height_px)
    return RenderedPhoto(composite(foreground, alpha, backdrop), layout)


def render_id_photo(matte: Matte, face: Face, options: IdPhotoOptions) -> IdPhotoResult:
    """The encoded ID photo for ``face`` (normally ``matte.face``), with DPI metadata.

    A JPEG keeps full colour resolution (4:4:4): 4:2:0 smeared the cut-out's edge into a
    fringe on red and blue backgrounds. With ``max_kb`` the JPEG quality is searched downwards
    until the file fits (never padded, never resized; colour is halved only when 4:4:4 would
    need a quality under 50);
    :class:`InvalidParameter` if even the lowest quality does not fit. A JPEG's report also
    judges the file as written (``file_compression``): a quality low enough to fit shows blocks.
    """
    rendered = render_pixels(matte, face, options)
    spec = options.spec
    quality: int | None
    if options.output_format is OutputFormat.JPEG and options.max_kb is not None:
        data, quality = encode_jpeg_max_kb(
            rendered.pixels, options.max_kb, dpi=spec.dpi, full_chroma=True
        )
    elif options.output_format is OutputFormat.JPEG:
        quality = options.quality
        data = encode_image(
            rendered.pixels, OutputFormat.JPEG, quality=quality, dpi=spec.dpi, full_chroma=True
        )
    else:
        quality = None
        data = encode_image(rendered.pixels, OutputFormat.PNG, dpi=spec.dpi)
    backdrop = None if options.transparent else options.background
    report = assess(rendered.layout, matte, face, backdrop)
    if quality is not None:
        report = report.with_check(file_compression(decoded_jpeg(data)))
    return IdPhotoResult(
        data=data,
        media_type=options.output_format.mime_type,
        width_px=rendered.layout.width_px,
        height_px=rendered.layout.height_px,
        dpi=spec.dpi,
        quality=quality,
        report=report,
    )


def single_face(faces: Sequence[Face]) -> Face:
    """The one face of an ID photo; :class:`NoFace` or :class:`MultipleFaces` otherwise."""
    if not faces:
        raise NoFace("no face found; an ID photo needs one face looking at the camera")
    if len(faces) > 1:
        raise MultipleFaces(
            f"{len(faces)} faces found; an ID photo needs exactly one: choose one with the face "
            f"option, 1 to {len(faces)} counted from the left",
            {"face_count": len(faces)},
        )
    return faces[0]


def chosen_face(faces: Sequence[Face], number: int | None, *, max_faces: int | None = None) -> Face:
    """Face ``number`` counted from 1, left to right (as the page lists them), of a photo with
    several; without a number, :func:`single_face`. :class:`OutOfRange` past the last face.
    ``max_faces``: the most faces the detection that found ``faces`` keeps (the largest), so
    that a photo of more is not said to hold only that many."""
    if number is None:
        return single_face(faces)
    if not faces:
        raise NoFace("no face found; an ID photo needs one face looking at the camera")
    if not 1 <= number <= len(faces):
        count = len(faces)
        held = (
            f"only the {count} largest faces of the photo are numbered (detection.max_faces)"
            if max_faces is not None and count >= max_faces
            else f"the photo has {count}"
        )
        raise OutOfRange(
            f"face must be from 1 to {count}: {held}",
            {"parameter": "face", "min": 1, "max": count, "face_count": count},
        )
    return sorted(faces, key=lambda face: face.box.x1)[number - 1]


def make_id_photo(
    rgb: NDArray[np.uint8],
    faces: Sequence[Face],
    segmenter: Segmenter,
    options: IdPhotoOptions,
    *,
    source_scale: float = 1.0,
) -> IdPhotoOutcome:
    """Matte and render the only face in ``faces`` (from :func:`detect_faces` on ``rgb``); a
    photo saved on its side or upside down is turned upright first (:mod:`.upright`)."""
    turned = upright(rgb, single_face(faces), (), source_scale)
    face = turned.face
    matte = compute_matte(turned.rgb, face, segmenter, source_scale=source_scale)
    return IdPhotoOutcome(matte, render_id_photo(matte, face, options))
