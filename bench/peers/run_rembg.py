"""rembg's ``remove`` with the u2netp session, reading faceflow's own u2netp file.

``U2NET_HOME`` points at the directory holding faceflow's verified ``u2netp.onnx`` (the same
file rembg would download: its MD5 is checked here first), so rembg downloads nothing. Runs in
the ``rembg`` peer virtualenv.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from PIL import Image
from rembg import new_session, remove
from runner_common import emit, load_rgb, measure, read_request, result

# rembg's own checksum for u2netp.onnx (rembg/sessions/u2netp.py).
U2NETP_MD5 = "8e83ca70e441ab06c318d82300c84806"


def main() -> None:
    photos, repeats = read_request()
    model = Path(os.environ["U2NET_HOME"]) / "u2netp.onnx"
    digest = hashlib.md5(model.read_bytes(), usedforsecurity=False).hexdigest()
    if digest != U2NETP_MD5:
        raise SystemExit(f"{model} is not rembg's u2netp (md5 {digest}); refusing to download")
    session = new_session("u2netp")
    results = []
    for photo in photos:
        image = Image.fromarray(load_rgb(photo))
        cpu_ms, _ = measure(lambda: remove(image, session=session), repeats)  # noqa: B023
        results.append(result(photo, "remove", cpu_ms, []))
    emit("rembg", ["rembg", "onnxruntime"], results)


if __name__ == "__main__":
    main()
