"""face_recognition's HOG detector (dlib), with 0 upsamplings and with its default of 1.

Runs in the ``face_recognition`` peer virtualenv (dlib-bin wheel, face_recognition_models,
face_recognition installed without its dlib source dependency).
"""

from __future__ import annotations

from typing import Any

import face_recognition
import numpy as np
from numpy.typing import NDArray
from runner_common import emit, load_rgb, measure, read_request, result

UPSAMPLES = {"hog_upsample0": 0, "hog_default": 1}


def main() -> None:
    photos, repeats = read_request()
    results = []
    for photo in photos:
        rgb = load_rgb(photo)
        for work, upsample in UPSAMPLES.items():

            def locate(rgb: NDArray[np.uint8] = rgb, upsample: int = upsample) -> Any:
                return face_recognition.face_locations(
                    rgb, number_of_times_to_upsample=upsample, model="hog"
                )

            cpu_ms, found = measure(locate, repeats)
            boxes = [[left, top, right, bottom] for top, right, bottom, left in found]
            results.append(result(photo, work, cpu_ms, boxes))
    emit("face_recognition", ["face_recognition", "dlib-bin", "face_recognition_models"], results)


if __name__ == "__main__":
    main()
