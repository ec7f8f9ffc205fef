"""ID photos: cut out the head and shoulders once, then render any size, background and format.

Typical use (one face already detected by :func:`faceflow.pipeline.detect.detect_faces`)::

    face = single_face(faces)                          # NoFace / MultipleFaces
    matte = compute_matte(rgb, face, segmenter)        # the only model call (u2netp)
    cached = matte_to_bytes(matte)                     # cache by content hash
    ...
    matte = matte_from_bytes(cached)                   # ValueError → treat as a miss
    result = render_id_photo(matte, matte.face, IdPhotoOptions(get_spec("icao")))
    result.data, result.media_type, result.report.to_dict()

Print sheets take rendered pixels: ``render_pixels(...).pixels`` into :func:`compose_sheet`.

The names below load their module on first use (PEP 562), so importing one submodule (the
``faceflow id-photo-specs`` command needs only :mod:`.specs`) does not import OpenCV.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from faceflow.lazy import lazy_attributes

if TYPE_CHECKING:
    from faceflow.pipeline.idphoto.compliance import Check, CheckStatus, ComplianceReport
    from faceflow.pipeline.idphoto.layout import Layout, plan_layout
    from faceflow.pipeline.idphoto.matte import (
        Matte,
        Segmenter,
        compute_matte,
        matte_from_bytes,
        matte_to_bytes,
    )
    from faceflow.pipeline.idphoto.options import IdPhotoOptions
    from faceflow.pipeline.idphoto.palette import (
        Background,
        BackgroundStyle,
        parse_background,
    )
    from faceflow.pipeline.idphoto.render import (
        IdPhotoOutcome,
        IdPhotoResult,
        RenderedPhoto,
        make_id_photo,
        render_id_photo,
        render_pixels,
        single_face,
    )
    from faceflow.pipeline.idphoto.sheet import Sheet, SheetItem, compose_sheet, tile_sheet
    from faceflow.pipeline.idphoto.sheet_plan import PAPERS, Paper, get_paper
    from faceflow.pipeline.idphoto.specs import IdPhotoSpec, custom_spec, get_spec, list_specs

_MODULE_OF = {
    "Background": "palette",
    "BackgroundStyle": "palette",
    "parse_background": "palette",
    "Check": "compliance",
    "CheckStatus": "compliance",
    "ComplianceReport": "compliance",
    "Layout": "layout",
    "plan_layout": "layout",
    "Matte": "matte",
    "Segmenter": "matte",
    "compute_matte": "matte",
    "matte_from_bytes": "matte",
    "matte_to_bytes": "matte",
    "IdPhotoOptions": "options",
    "IdPhotoOutcome": "render",
    "IdPhotoResult": "render",
    "RenderedPhoto": "render",
    "make_id_photo": "render",
    "render_id_photo": "render",
    "render_pixels": "render",
    "single_face": "render",
    "PAPERS": "sheet_plan",
    "Paper": "sheet_plan",
    "Sheet": "sheet",
    "SheetItem": "sheet",
    "compose_sheet": "sheet",
    "get_paper": "sheet_plan",
    "tile_sheet": "sheet",
    "IdPhotoSpec": "specs",
    "custom_spec": "specs",
    "get_spec": "specs",
    "list_specs": "specs",
}

__getattr__ = lazy_attributes(__name__, _MODULE_OF)


__all__ = [
    "PAPERS",
    "Background",
    "BackgroundStyle",
    "Check",
    "CheckStatus",
    "ComplianceReport",
    "IdPhotoOptions",
    "IdPhotoOutcome",
    "IdPhotoResult",
    "IdPhotoSpec",
    "Layout",
    "Matte",
    "Paper",
    "RenderedPhoto",
    "Segmenter",
    "Sheet",
    "SheetItem",
    "compose_sheet",
    "compute_matte",
    "custom_spec",
    "get_paper",
    "get_spec",
    "list_specs",
    "make_id_photo",
    "matte_from_bytes",
    "matte_to_bytes",
    "parse_background",
    "plan_layout",
    "render_id_photo",
    "render_pixels",
    "single_face",
    "tile_sheet",
]
