"""faceflow: self-hosted, high-throughput face analysis and ID photos.

As a library::

    from faceflow import FaceFlow

    flow = FaceFlow()                      # loads the pinned models once
    report = flow.analyze(image_bytes)     # faces with box, score, landmarks, age, gender
    photo = flow.id_photo(image_bytes, spec="cn-2inch", background="blue")

The names below are imported on first use, so ``import faceflow`` (and every CLI command that does
not need them) does not pay for numpy, OpenCV and onnxruntime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["FaceFlow", "FaceReport", "FaceflowError", "IdPhotoResult", "__version__"]

if TYPE_CHECKING:
    from faceflow.errors import FaceflowError
    from faceflow.library import FaceFlow, FaceReport, IdPhotoResult

_LAZY = {
    "FaceFlow": "faceflow.library",
    "FaceReport": "faceflow.library",
    "IdPhotoResult": "faceflow.library",
    "FaceflowError": "faceflow.errors",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'faceflow' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_LAZY[name]), name)
