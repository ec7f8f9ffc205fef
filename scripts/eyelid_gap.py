"""The lid gap over the iris, from the vertical lightness profile: tried against eyes half shut
and not adopted (docs/id-photos.md, "Eyes half shut, the lid gap").

    .venv/bin/python scripts/eyelid_gap.py

Every face of ``../shared/testdata`` and ``../shared/devset`` with eyes at least
``EYES_OPEN_MIN_PX`` apart is cut out and measured as taken and with both upper lids let down
(``verdict_cases.half_shut_eyes`` at the lids of ``half_shut_eyes.LIDS``), each edit laid into the
face's own matte (``half_shut_eyes.measured``'s way). Faces in ``half_shut_eyes.MISSED`` (the
edit's lid off an iris) are measured as taken but left out of the half-shut counts.

Each eye's box (±GAP_BOX eye distances) is resampled to ``EYES_OPEN_SCALE_PX`` between the eyes,
catchlights opened away; the iris is the darkest disc against its sides near YuNet's point (as
``verdict_cases._iris_centre`` finds it, in production-available terms). Down the columns through
it (median of 7), smoothed by σ 1 px, the lid gap is the strongest light-to-dark step above the
iris's centre (the upper lid's lash line) to the strongest dark-to-light step below it (the lower
lid); also printed: the dark band's height there (rows darker than halfway from the iris to the
box's 90th-percentile light) and how far the upper step lies above the centre. The smaller
eye's, in eye distances. A few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
from half_shut_eyes import LIDS, MISSED, laid_into_matte
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.environment import TESTDATA
from tests.pipeline.idphoto.verdict_cases import RealFace, half_shut_eyes, no_photo, real_faces

from faceflow.config import Settings
from faceflow.pipeline.idphoto.compliance.eyes import EYES_OPEN_MIN_PX, EYES_OPEN_SCALE_PX
from faceflow.pipeline.idphoto.compliance.regions import eye_distance_px, matte_box
from faceflow.runtime.context import load_context

GAP_BOX = 0.35
# Where the iris is searched (px at EYES_OPEN_SCALE_PX): ±6 across, 6 above to 20 below the point.
IRIS_SEARCH = (6, 6, 20)
MEASURES = ("gap", "band", "above")


def measures(real: RealFace, rgb: NDArray[np.uint8] | None = None) -> dict[str, float] | None:
    """The smaller eye's lid gap, dark band and upper step above the centre (eye distances) of
    ``real``'s face, or of ``rgb`` laid into its matte; None when the eyes are too close."""
    matte = real.matte if rgb is None else laid_into_matte(real, rgb)
    distance = eye_distance_px(real.face)
    per_eye = distance / matte.source_px_per_matte_px
    if per_eye < EYES_OPEN_MIN_PX:
        return None
    lab = cv2.cvtColor(matte.foreground, cv2.COLOR_RGB2LAB)
    scale = EYES_OPEN_SCALE_PX / per_eye
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    eyes = []
    for eye in (real.face.landmarks.right_eye, real.face.landmarks.left_eye):
        rows, cols = matte_box(matte, eye, GAP_BOX * distance, GAP_BOX * distance)
        if rows.stop - rows.start < 2 or cols.stop - cols.start < 2:
            return None
        light = np.ascontiguousarray(lab[rows, cols, 0]).astype(np.float32)
        box = np.asarray(
            cv2.resize(light, None, fx=scale, fy=scale, interpolation=interpolation), np.float32
        )
        at = matte.to_matte_px(eye)
        one = _eye((at.y - rows.start) * scale, (at.x - cols.start) * scale, box)
        if one is None:
            return None
        eyes.append(one)
    return {name: min(one[name] for one in eyes) for name in MEASURES}


def _eye(y: float, x: float, box: NDArray[np.float32]) -> dict[str, float] | None:
    """One eye's readings (see the module's docstring); ``y``, ``x`` its point in ``box``."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    opened = cv2.morphologyEx(box, cv2.MORPH_OPEN, kernel)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9)).astype(np.float32)
    mean = cv2.filter2D(opened, -1, disc / disc.sum(), borderType=cv2.BORDER_REPLICATE)
    score = (np.roll(mean, 13, axis=1) + np.roll(mean, -13, axis=1)) / 2 - mean
    height, width = opened.shape
    across, above, below = IRIS_SEARCH
    y1, y2 = max(0, int(y) - above), min(height, int(y) + below + 1)
    x1, x2 = max(13, int(x) - across), min(width - 13, int(x) + across + 1)
    if y2 <= y1 or x2 <= x1:
        return None
    at = np.unravel_index(int(np.argmax(score[y1:y2, x1:x2])), (y2 - y1, x2 - x1))
    y0, x0 = int(at[0]) + y1, int(at[1]) + x1
    smooth = cv2.GaussianBlur(opened, (0, 0), 1.0)
    profile = np.median(smooth[:, max(0, x0 - 3) : x0 + 4], axis=1)
    step = np.diff(profile)
    low = max(0, y0 - 22)
    upper = low + int(np.argmin(step[low : min(height - 1, y0 + 3)]))
    low = max(0, y0 - 2)
    lower = low + int(np.argmax(step[low : min(height - 1, y0 + 22)]))
    middle = (float(np.percentile(smooth, 90)) + float(profile[max(0, y0 - 2) : y0 + 3].min())) / 2
    top = bottom = y0
    while top > 0 and profile[top - 1] < middle:
        top -= 1
    while bottom < height - 1 and profile[bottom + 1] < middle:
        bottom += 1
    return {
        "gap": (lower - upper) / EYES_OPEN_SCALE_PX,
        "band": (bottom - top + 1) / EYES_OPEN_SCALE_PX,
        "above": (y0 - upper) / EYES_OPEN_SCALE_PX,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.parse_args()
    cv2.setNumThreads(1)
    context = load_context(Settings().model_dump_json())
    seen: Counter[str] = Counter()
    reals: list[tuple[str, dict[str, float]]] = []
    shut: list[list[dict[str, float]]] = [[] for _ in LIDS]
    for real in real_faces(TESTDATA, context.models):
        key = f"{real.path.name}#{seen[real.path.name]}"
        seen[real.path.name] += 1
        before = measures(real)
        if before is None:
            continue
        reals.append((key, before))
        after = [measures(real, half_shut_eyes(lid)(real.rgb, real.face, no_photo)) for lid in LIDS]
        print(
            f"{key:30s} "
            + " ".join(f"{before[m]:.2f}" for m in MEASURES)
            + "  |  "
            + "  ".join(" ".join(f"{a[m]:.2f}" for m in MEASURES) if a else "-" for a in after)
            + (" (edit missed)" if key in MISSED else ""),
            flush=True,
        )
        if key not in MISSED:
            for i, reading in enumerate(after):
                if reading is not None:
                    shut[i].append(reading)
    for name in MEASURES:
        real_values = np.array([reading[name] for _, reading in reals])
        lowest = sorted(reals, key=lambda item: item[1][name])[:6]
        print(
            f"{name}: real faces ({len(real_values)}) {real_values.min():.2f}-"
            f"{real_values.max():.2f}, median {np.median(real_values):.2f}; lowest "
            + ", ".join(f"{key} {reading[name]:.2f}" for key, reading in lowest)
        )
        for lid, readings in zip(LIDS, shut, strict=True):
            values = np.array([reading[name] for reading in readings])
            under = int((values < real_values.min()).sum())
            print(
                f"  lid {lid:+.2f}: {values.min():.2f}-{values.max():.2f}, median"
                f" {np.median(values):.2f}; under every real face {under} of {len(values)}"
            )


if __name__ == "__main__":
    main()
