"""What `file_compression` reads on the ID photos of real faces at each JPEG quality and under
the file-size caps portals set: the figures behind its threshold (docs/id-photos.md).

    .venv/bin/python scripts/file_compression.py

Every face of ``../shared/testdata`` and ``../shared/devset`` (or ``FACEFLOW_TESTDATA`` and the
``devset`` folder beside it) is cut out and made a China 1-inch, US passport and ICAO photo, saved
at qualities 95 down to 15 and under caps of 10-40 KB as `max_kb` saves it; for each the range of
the measure and how many photos read over 1.8 and over 1.9 are printed. A few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.environment import TESTDATA
from tests.pipeline.idphoto.verdict_cases import real_faces

from faceflow.config import Settings
from faceflow.errors import InvalidParameter
from faceflow.imaging.encode import decoded_jpeg, encode_image, encode_jpeg_max_kb
from faceflow.imaging.formats import OutputFormat
from faceflow.pipeline.idphoto.compliance.quality import blockiness
from faceflow.pipeline.idphoto.options import IdPhotoOptions
from faceflow.pipeline.idphoto.render import render_pixels
from faceflow.pipeline.idphoto.specs import get_spec
from faceflow.runtime.context import load_context

SPECS = ("cn-1inch", "us-passport", "icao")
QUALITIES = (95, 60, 50, 40, 35, 30, 25, 20, 15)
CAPS_KB = (10, 12, 15, 20, 30, 40)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    cv2.setNumThreads(1)
    context = load_context(Settings().model_dump_json())
    at_quality: dict[tuple[str, int], list[float]] = {}
    at_cap: dict[tuple[str, int], list[tuple[float, int]]] = {}
    for real in real_faces(TESTDATA, context.models):
        for spec in SPECS:
            options = IdPhotoOptions(get_spec(spec))
            pixels = render_pixels(real.matte, real.face, options).pixels
            for quality in QUALITIES:
                data = encode_image(pixels, OutputFormat.JPEG, quality=quality, dpi=300)
                at_quality.setdefault((spec, quality), []).append(blockiness(decoded_jpeg(data)))
            for cap in CAPS_KB:
                try:
                    data, quality = encode_jpeg_max_kb(pixels, cap, dpi=300)
                except InvalidParameter:
                    continue  # no quality fits
                at_cap.setdefault((spec, cap), []).append((blockiness(decoded_jpeg(data)), quality))
    for spec in SPECS:
        print(spec)
        for quality in QUALITIES:
            values = np.array(at_quality[spec, quality])
            print(
                f"  quality {quality}: {values.min():.2f}-{values.max():.2f}, median"
                f" {np.median(values):.2f}; over 1.8 {int((values > 1.8).sum())}, over 1.9"
                f" {int((values > 1.9).sum())} of {values.size}"
            )
        for cap in CAPS_KB:
            found = at_cap.get((spec, cap), [])
            if not found:
                continue
            values = np.array([value for value, _ in found])
            qualities = [quality for _, quality in found]
            print(
                f"  max_kb {cap}: quality {min(qualities)}-{max(qualities)},"
                f" {values.min():.2f}-{values.max():.2f}; over 1.8 {int((values > 1.8).sum())},"
                f" over 1.9 {int((values > 1.9).sum())} of {values.size}"
            )


if __name__ == "__main__":
    main()
