"""A measure tried for a beauty filter's smoothed skin (not a check: it did not separate real
faces from smoothed ones): the cheeks' fine detail over the eyes', on every real face as taken
and with a beauty app's smoothing over it.

    .venv/bin/python scripts/beauty_filter.py

Every face of ``../shared/testdata`` and ``../shared/devset`` (or ``FACEFLOW_TESTDATA`` and the
``devset`` folder beside it) with eyes 40 px or more apart is cut out as the service does it.
Fine detail is the mean absolute difference of the grey from itself softened by σ 0.012 eye
distances, over the two cheek boxes (the checks' own, 0.5 eye distances under each eye) and over
boxes on the eyes (±0.25 × ±0.12 eye distances); the measure is the cheeks' over the eyes': a
beauty filter (edge-keeping) takes the skin's fine texture and leaves the eyes' edges. The
filter is three bilateral passes (σ colour 40, σ space 0.06 eye distances), as
``scripts/counter_edits.py``'s beauty filter, here run on the cut-out's pixels. About two
minutes.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.environment import TESTDATA
from tests.pipeline.idphoto.verdict_cases import real_faces

from faceflow.config import Settings
from faceflow.domain import Face, Point
from faceflow.pipeline.idphoto.compliance.regions import eye_distance_px, matte_box
from faceflow.pipeline.idphoto.matte import Matte
from faceflow.runtime.context import load_context


def detail_ratio(rgb: NDArray[np.uint8], matte: Matte, face: Face) -> tuple[float, float]:
    """The cheeks' fine detail (grey levels) and its ratio to the eyes'."""
    distance = eye_distance_px(face)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    sigma = max(0.7, 0.012 * distance / matte.source_px_per_matte_px)
    fine = np.abs(grey - cv2.GaussianBlur(grey, (0, 0), sigma))
    cheeks, eyes = [], []
    for eye in (face.landmarks.right_eye, face.landmarks.left_eye):
        rows, cols = matte_box(
            matte, Point(eye.x, eye.y + 0.5 * distance), 0.1 * distance, 0.08 * distance
        )
        cheeks.append(fine[rows, cols].ravel())
        rows, cols = matte_box(matte, eye, 0.25 * distance, 0.12 * distance)
        eyes.append(fine[rows, cols].ravel())
    cheek = float(np.concatenate(cheeks).mean())
    return cheek, cheek / max(1e-3, float(np.concatenate(eyes).mean()))


def smoothed(rgb: NDArray[np.uint8], eye_px: float) -> NDArray[np.uint8]:
    out = rgb
    for _pass in range(3):
        out = np.asarray(cv2.bilateralFilter(out, 0, 40, max(2.0, 0.06 * eye_px)), dtype=np.uint8)
    return out


def main() -> None:
    cv2.setNumThreads(1)
    models = load_context(Settings().model_dump_json()).models
    real: list[float] = []
    filtered: list[float] = []
    print(f"{'face':28s} {'cheeks':>7s} {'ratio':>6s}   filtered: {'cheeks':>7s} {'ratio':>6s}")
    for found in real_faces(TESTDATA, models):
        eye_px = eye_distance_px(found.face) / found.matte.source_px_per_matte_px
        if eye_distance_px(found.face) < 40:
            continue
        cheek, ratio = detail_ratio(found.matte.foreground, found.matte, found.face)
        soft = smoothed(found.matte.foreground, eye_px)
        cheek_f, ratio_f = detail_ratio(soft, found.matte, found.face)
        real.append(ratio)
        filtered.append(ratio_f)
        print(
            f"{found.path.stem:28s} {cheek:7.2f} {ratio:6.3f}   "
            f"filtered: {cheek_f:7.2f} {ratio_f:6.3f}"
        )
    low = min(real)
    print(
        f"\nreal {len(real)}: {low:.3f}–{max(real):.3f}, median {statistics.median(real):.3f}; "
        f"filtered {min(filtered):.3f}–{max(filtered):.3f}, "
        f"median {statistics.median(filtered):.3f}; "
        f"filtered under the lowest real face: {sum(v < low for v in filtered)} of {len(filtered)}"
    )


if __name__ == "__main__":
    main()
