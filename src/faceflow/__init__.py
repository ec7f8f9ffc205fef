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

import os
from typing import TYPE_CHECKING

from faceflow.lazy import lazy_attributes

# onnxruntime (1.2x and later, Linux builds too) records usage telemetry at its first session in
# every process: a device id and a SQLite queue of events under ~/.cache/Microsoft/DeveloperTools
# (the interpreter's path, the OS, the CPU, whether it runs in a container; 821 events, 3 MB after
# a day of test runs here), posted to Microsoft's collector where the network reaches it. A
# self-hosted service writes nothing of the sort and calls no one; ort.disable_telemetry_events()
# is too late once onnxruntime is imported, its environment variable read at import is not. Every
# entry point (the CLI, the server, its inference processes, `faceflow worker`, the library)
# imports this package before onnxruntime. An operator who wants the telemetry sets it to 0.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

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
