"""MediaPipe BlazeFace (legacy ``solutions.face_detection``), short- and full-range models.

Runs in the ``mediapipe`` peer virtualenv (mediapipe==0.10.21, numpy<2); see bench/peers_compare.py.
"""

from __future__ import annotations

from typing import Any

import mediapipe as mp
from runner_common import emit, load_rgb, measure, read_request, result

# model_selection 0: short-range (faces within ~2 m), 1: full-range (within ~5 m); default score.
MODELS = {"blazeface_short": 0, "blazeface_full": 1}


def boxes_and_keypoints(
    detections: Any, width: int, height: int
) -> tuple[list[list[float]], list[int]]:
    boxes, keypoints = [], []
    for detection in detections or []:
        rel = detection.location_data.relative_bounding_box
        x1, y1 = rel.xmin * width, rel.ymin * height
        boxes.append([x1, y1, x1 + rel.width * width, y1 + rel.height * height])
        keypoints.append(len(detection.location_data.relative_keypoints))
    return boxes, keypoints


def main() -> None:
    photos, repeats = read_request()
    results = []
    for work, selection in MODELS.items():
        with mp.solutions.face_detection.FaceDetection(
            model_selection=selection, min_detection_confidence=0.5
        ) as detector:
            for photo in photos:
                rgb = load_rgb(photo)
                height, width = rgb.shape[:2]
                cpu_ms, found = measure(lambda: detector.process(rgb), repeats)  # noqa: B023
                boxes, keypoints = boxes_and_keypoints(found.detections, width, height)
                results.append(result(photo, work, cpu_ms, boxes, keypoints=keypoints))
    emit("mediapipe", ["mediapipe", "numpy"], results)


if __name__ == "__main__":
    main()
