"""CPU per face of the compliance measures added for toned photos, enlarged sources, objects
kept beside the head, stickers over the face and black scarves over the chin.

    .venv/bin/python bench/compliance_cost.py [--every 4]

Every ``--every``-th photo of ``../shared/testdata`` and ``../shared/devset`` (sorted) is cut
out for each face it has; ``tone_spread`` (``colour``) and ``enlargement`` (``resolution``) are
timed on the central face the report reads (``face_region`` of the matte, the size the checks
see), ``head_notch`` (``leftover_backdrop``), ``colour_patch`` and ``chin_dark_detail``
(``face_occluded``) on the matte, one thread, the best of 5 repeats of
5 passes, in ms a face. Prints the load average with it: on the shared box the figures move with
the load.
"""

from __future__ import annotations

import argparse
import os
import sys
import timeit
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.environment import TESTDATA
from tests.pipeline.idphoto.verdict_cases import real_photos

from faceflow.config import LimitSettings, Settings
from faceflow.domain import Face
from faceflow.errors import NoSubject
from faceflow.imaging.ingest import decode_image
from faceflow.pipeline.detect import detect_faces
from faceflow.pipeline.detect_options import DetectOptions
from faceflow.pipeline.idphoto.compliance.background import head_notch
from faceflow.pipeline.idphoto.compliance.colour import tone_spread
from faceflow.pipeline.idphoto.compliance.features import chin_dark_detail
from faceflow.pipeline.idphoto.compliance.overlays import colour_patch
from faceflow.pipeline.idphoto.compliance.quality import enlargement
from faceflow.pipeline.idphoto.compliance.regions import face_region
from faceflow.pipeline.idphoto.matte import Matte, compute_matte
from faceflow.runtime.context import load_context

Region = tuple[NDArray[np.uint8], float]
Item = TypeVar("Item")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=4, help="take every N-th photo")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    models = load_context(Settings().model_dump_json()).models
    regions: list[Region] = []
    cut_outs: list[tuple[Matte, Face]] = []
    for path in real_photos(TESTDATA)[:: args.every]:
        rgb = decode_image(path.read_bytes(), LimitSettings()).rgb
        for face in detect_faces(rgb, models.detector, DetectOptions()):
            try:
                matte = compute_matte(rgb, face, models.segmenter)
            except NoSubject:
                continue
            regions.append((face_region(matte, face), matte.source_px_per_matte_px))
            cut_outs.append((matte, face))

    def tone(region: Region) -> None:
        tone_spread(region[0])

    def enlarged(region: Region) -> None:
        enlargement(*region)

    measures: tuple[tuple[str, Callable[[Region], None]], ...] = (
        ("tone_spread", tone),
        ("enlargement", enlarged),
    )
    print(f"load average {os.getloadavg()[0]:.1f}; {len(regions)} faces")
    for name, measure in measures:
        print(f"  {name}: {best_ms(measure, regions):.2f} ms a face")

    def notch(cut_out: tuple[Matte, Face]) -> None:
        head_notch(*cut_out)

    print(f"  head_notch: {best_ms(notch, cut_outs):.2f} ms a face")

    def patch(cut_out: tuple[Matte, Face]) -> None:
        colour_patch(*cut_out)

    print(f"  colour_patch: {best_ms(patch, cut_outs):.2f} ms a face")

    def chin(cut_out: tuple[Matte, Face]) -> None:
        chin_dark_detail(*cut_out)

    print(f"  chin_dark_detail: {best_ms(chin, cut_outs):.2f} ms a face")


def best_ms(measure: Callable[[Item], None], items: Sequence[Item]) -> float:
    """The best of 5 repeats of 5 passes over ``items``, in ms a face."""

    def run() -> None:
        for item in items:
            measure(item)

    return min(timeit.repeat(run, number=5, repeat=5)) / (5 * len(items)) * 1000


if __name__ == "__main__":
    main()
