"""What every peer runner shares; runs inside a peer's own virtualenv (no faceflow import).

A runner reads one JSON request on stdin, ``{"photos": [path, ...], "repeats": N}``, and prints
one JSON answer on stdout, ``{"peer": ..., "versions": {...}, "results": [...]}``, where each
result is ``{"photo", "work", "cpu_ms": [per call], "faces", "boxes", ...}``. CPU time is this
process's (``time.process_time``: every thread's), so a library's helper threads are counted.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from importlib import metadata
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps

T = TypeVar("T")


def read_request() -> tuple[list[str], int]:
    request = json.load(sys.stdin)
    return [str(p) for p in request["photos"]], int(request["repeats"])


def load_rgb(path: str) -> NDArray[np.uint8]:
    """The photo upright (EXIF orientation applied), as an RGB ``uint8`` array."""
    with Image.open(path) as opened:
        upright = ImageOps.exif_transpose(opened)
        if "A" in upright.getbands() or "transparency" in upright.info:
            # Transparency over white, as faceflow decodes it, so both see the same pixels.
            rgba = upright.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            upright = Image.alpha_composite(white, rgba)
        return np.ascontiguousarray(np.asarray(upright.convert("RGB"), dtype=np.uint8))


def measure(call: Callable[[], T], repeats: int) -> tuple[list[float], T]:
    """CPU milliseconds of ``repeats`` calls after one untimed warm-up call, and the last result."""
    result = call()
    cpu_ms = []
    for _ in range(repeats):
        start = time.process_time()
        result = call()
        cpu_ms.append((time.process_time() - start) * 1000)
    return cpu_ms, result


def result(
    photo: str, work: str, cpu_ms: list[float], boxes: list[list[float]], **extra: Any
) -> dict[str, Any]:
    """One measured (photo, work) pair; ``boxes`` are ``[x1, y1, x2, y2]`` in source pixels."""
    return {
        "photo": photo,
        "work": work,
        "cpu_ms": [round(ms, 3) for ms in cpu_ms],
        "faces": len(boxes),
        "boxes": [[round(float(v), 1) for v in box] for box in boxes],
        **extra,
    }


def emit(peer: str, packages: list[str], results: list[dict[str, Any]]) -> None:
    versions = {name: metadata.version(name) for name in packages}
    json.dump({"peer": peer, "versions": versions, "results": results}, sys.stdout)
    sys.stdout.write("\n")
