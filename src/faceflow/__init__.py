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

from typing import TYPE_CHECKING

from faceflow.lazy import lazy_attributes

__version__ = "0.1.0"
__all__ = ["FaceFlow", "FaceReport", "FaceflowError", "IdPhotoResult", "__version__"]

if TYPE_CHECKING:
    from faceflow.errors import FaceflowError
    from faceflow.library import FaceFlow, FaceReport, IdPhotoResult

__getattr__ = lazy_attributes(
    __name__,
    {
        "FaceFlow": "library",
        "FaceReport": "library",
        "IdPhotoResult": "library",
        "FaceflowError": "errors",
    },
)


def __dir__() -> list[str]:
    """The public names, which a shell's completion and ``dir(faceflow)`` offer before their
    modules are imported (the module's own globals are only the lazy machinery)."""
    return sorted(__all__)
