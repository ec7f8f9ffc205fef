"""Where the cut-out's CPU goes beyond the u2netp call: CPU ms per refinement step, per photo.

    .venv/bin/python bench/refine_steps.py [--rounds 3] [--photos PATH ...]

Runs :func:`faceflow.pipeline.idphoto.matte.compute_matte` on each photo's detected face (the
cut-out row of ``bench/peers_compare.py``: the photos with one face in ``../shared/testdata`` by
default), one thread, and times every step it calls by name (the u2netp call, the guided filter,
``solidify``, ``keep_connected``, the backdrop fit and re-keying, hole filling, foreground
colours, …) with process CPU time; a step not listed is in "other". Medians over ``--rounds``
runs after one untimed run. Re-runs itself under the inference processes' glibc malloc tunables
(as ``bench/idphoto.py`` does), so the steps cost what they cost in the service's processes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

import faceflow.pipeline.idphoto.matte as matte_module
from faceflow.config import load_settings
from faceflow.imaging.ingest import decode_image
from faceflow.pipeline.detect import detect_faces
from faceflow.runtime.context import load_context
from idphoto import run_like_inference_processes  # the re-exec under the tunables

TESTDATA = Path(__file__).resolve().parents[2] / "shared" / "testdata"
ONE_FACE = (
    "astronaut.jpg",
    "biden.jpg",
    "obama.jpg",
    "obama_small.jpg",
    "portrait_1.jpg",
    "portrait_2.jpg",
    "rose_leslie.jpg",
)
STEPS = (
    "guided_filter",
    "solidify",
    "keep_connected",
    "face_ellipse",
    "fit_backdrop",
    "colour_distance2",
    "rekey_alpha",
    "drop_smudges",
    "fill_holes",
    "quantise_alpha",
    "foreground_u8",
    "leftover_share",
    "background_std",
    "_sure_background",
)

spent: dict[str, float] = defaultdict(float)


def timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.process_time()
        try:
            return function(*args, **kwargs)
        finally:
            spent[name] += (time.process_time() - start) * 1000

    return wrapper


class TimedSegmenter:
    def __init__(self, inner: Any) -> None:
        self._predict = timed("u2netp", inner.predict)

    def predict(self, rgb_crop: NDArray[np.uint8]) -> NDArray[np.float32]:
        result: NDArray[np.float32] = self._predict(rgb_crop)
        return result


def main() -> None:
    run_like_inference_processes()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="timed runs per photo after an untimed one, the median kept (default: %(default)s)",
    )
    parser.add_argument(
        "--photos",
        nargs="+",
        type=Path,
        default=[TESTDATA / p for p in ONE_FACE],
        help="photos, one or more, the first face detected cut out "
        "(default: the one-face photos of ../shared/testdata)",
    )
    args = parser.parse_args()
    for name in STEPS:
        setattr(matte_module, name, timed(name, getattr(matte_module, name)))
    cv2.setNumThreads(1)
    settings = load_settings(models={"intra_op_threads": 1})
    context = load_context(settings.model_dump_json())
    segmenter = TimedSegmenter(context.models.segmenter)
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"load average before {load}; GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES')}")
    print("| photo | matte px | cut-out | u2netp | beyond | " + " | ".join(STEPS) + " | other |")
    print("|---" * (len(STEPS) + 6) + "|")
    for path in args.photos:
        image = decode_image(path.read_bytes(), settings.limits)
        faces = detect_faces(
            image.rgb, context.models.detector, context.detect_defaults, source_scale=image.scale
        )
        face = faces[0]
        samples: dict[str, list[float]] = defaultdict(list)
        for round_number in range(args.rounds + 1):
            spent.clear()
            start = time.process_time()
            matte = matte_module.compute_matte(image.rgb, face, segmenter, source_scale=image.scale)
            total = (time.process_time() - start) * 1000
            if round_number == 0:
                continue
            samples["total"].append(total)
            samples["other"].append(total - sum(spent.values()))
            for name in ("u2netp", *STEPS):
                samples[name].append(spent.get(name, 0.0))
        median = {name: statistics.median(values) for name, values in samples.items()}
        beyond = median["total"] - median["u2netp"]
        height, width = matte.alpha.shape
        cells = " | ".join(f"{median[name]:.1f}" for name in (*STEPS, "other"))
        print(
            f"| {path.name} | {width}×{height} | {median['total']:.0f} | {median['u2netp']:.0f}"
            f" | {beyond:.0f} ({beyond / median['total']:.0%}) | {cells} |"
        )
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"load average after {load}")


if __name__ == "__main__":
    main()
