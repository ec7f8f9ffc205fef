"""Face quality: how well a face can be read, from its upright age chip and its landmarks.

The thresholds below mark where the age model stops being trustworthy. Every face of the labelled
photos (``../shared/testdata`` and ``../shared/devset``: sharp, well-lit, frontal-ish faces of at
least 90 px) scores 1; the limits sit below the weakest of them (Laplacian variance 444, mean
luminance 0.33, 91 px, yaw within 35°) with room to spare.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from numpy.typing import NDArray

from faceflow.domain import FaceQuality, Landmarks

# Variance of the Laplacian of the 64 px grey chip: at or above SHARP_LAPLACIAN a face is sharp
# (score 1), it falls linearly to 0 at 0. Blurred faces read as smooth skin, so years too young.
SHARP_LAPLACIAN = 250.0
# Mean luminance of the chip's centre (0–1): below DARK or above BRIGHT the score falls
# linearly to 0 at black or white.
DARK = 0.25
BRIGHT = 0.85
# Side of the face box in source pixels: at or above SHARP_SIZE_PX the chip is cut from real
# detail; below it the score falls linearly to 0 at 0 px.
SHARP_SIZE_PX = 48.0
# Yaw: full score up to FRONTAL_YAW_DEG, falling linearly to 0 at PROFILE_YAW_DEG.
FRONTAL_YAW_DEG = 35.0
PROFILE_YAW_DEG = 70.0
# Below this score the face's attributes are reported as unreliable.
RELIABLE_SCORE = 0.5


def yaw_degrees(landmarks: Landmarks) -> float:
    """Left–right turn estimated from the nose's offset from the eye midpoint along the eye
    line, relative to the eye distance: 0 frontal, ±90 profile (sign: towards the image's right
    for an upright face). Rough, but monotonic, which is all the quality score needs."""
    right, left, nose = landmarks.right_eye, landmarks.left_eye, landmarks.nose
    ex, ey = left.x - right.x, left.y - right.y
    eye_distance = math.hypot(ex, ey)
    if eye_distance < 1e-6:
        return 90.0
    mid_x, mid_y = (left.x + right.x) / 2, (left.y + right.y) / 2
    offset = ((nose.x - mid_x) * ex + (nose.y - mid_y) * ey) / (eye_distance * eye_distance)
    # On a frontal face the nose tip projects onto the eye midpoint; at a full profile it lies
    # about half an eye distance beyond the nearer eye (offset ≈ 1 with the eyes foreshortened).
    return math.degrees(math.asin(max(-1.0, min(1.0, 2.0 * offset))))


def face_quality(chip: NDArray[np.uint8], landmarks: Landmarks, size_px: float) -> FaceQuality:
    """Quality of one face from its aligned RGB chip (any size; the 64 px age chip in practice),
    its landmarks and its side in source pixels."""
    grey = cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY)
    laplacian = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    sharpness = min(1.0, laplacian / SHARP_LAPLACIAN)
    side = grey.shape[0]
    centre = grey[side // 4 : side - side // 4, side // 4 : side - side // 4]
    luminance = float(centre.mean()) / 255.0
    exposure = min(1.0, luminance / DARK, (1.0 - luminance) / (1.0 - BRIGHT))
    size = min(1.0, size_px / SHARP_SIZE_PX)
    yaw = yaw_degrees(landmarks)
    turned = (abs(yaw) - FRONTAL_YAW_DEG) / (PROFILE_YAW_DEG - FRONTAL_YAW_DEG)
    frontal = min(1.0, max(0.0, 1.0 - turned))
    score = max(0.0, min(sharpness, exposure, size, frontal))
    return FaceQuality(
        score=score, sharpness=sharpness, exposure=max(0.0, exposure), size_px=size_px, yaw_deg=yaw
    )
