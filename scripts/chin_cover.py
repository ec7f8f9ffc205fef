"""The chin's cover: how much of the chin, below the lips, is of another hue than the cheeks'
(not grey), on every real face and on scarves drawn pulled up over the chin (the
``face_occluded`` check's chin trigger, ``features.chin_covered``). Beards made black and white:
scripts/chin_beard.py.

    .venv/bin/python scripts/chin_cover.py

Every face of ``../shared/testdata`` and ``../shared/devset`` (or ``FACEFLOW_TESTDATA`` and the
``devset`` folder beside it) is cut out as the service does it and measured. Then on photos of
one person a scarf of each of ``verdict_cases.SCARF_COLOURS`` is drawn over the chin at two
heights (``verdict_cases.scarf``), the photo's face found again and cut out, and measured. About
two minutes.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.environment import TESTDATA
from tests.pipeline.idphoto.verdict_cases import (
    SCARF_COLOURS,
    SCARF_PHOTOS,
    cut_out,
    levelled_faces,
    no_photo,
    real_faces,
    scarf,
)

from faceflow.config import LimitSettings, Settings
from faceflow.imaging.ingest import decode_image
from faceflow.pipeline.idphoto.compliance.features import CHIN_COVER_WARN, chin_covered
from faceflow.pipeline.idphoto.compliance.regions import eye_distance_px
from faceflow.runtime.context import load_context

TOPS = (0.12, 0.25)


def main() -> None:
    cv2.setNumThreads(1)
    context = load_context(Settings().model_dump_json())
    models = context.models
    real: list[float] = []
    spent: list[float] = []
    print("real faces (eyes 40 px or more apart):")
    for found in real_faces(TESTDATA, models):
        if eye_distance_px(found.face) < 40:
            continue
        start = time.process_time()
        value = chin_covered(found.matte, found.face)
        spent.append(time.process_time() - start)
        if value is None:
            print(f"  {found.path.stem:28s} not judged")
            continue
        real.append(value)
        print(f"  {found.path.stem:28s} {value:.3f}")
    print(
        f"  {len(real)} judged: {min(real):.3f}–{max(real):.3f}, median "
        f"{statistics.median(real):.3f}; over {CHIN_COVER_WARN}: "
        f"{sum(v > CHIN_COVER_WARN for v in real)}"
    )
    print(f"  {1000 * statistics.median(spent):.2f} ms a face (CPU, median)")
    limits = LimitSettings()
    for top in TOPS:
        for colour in SCARF_COLOURS:
            values: list[float] = []
            for name in SCARF_PHOTOS:
                rgb = decode_image((TESTDATA / name).read_bytes(), limits).rgb
                faces = levelled_faces(rgb, models)
                if len(faces) != 1:
                    continue
                edited = scarf(colour, top)(rgb, faces[0], no_photo)
                again = levelled_faces(edited, models)
                if len(again) != 1:
                    print(f"  {colour} {top} {Path(name).stem}: {len(again)} faces")
                    continue
                matte = cut_out(edited, again[0], models.segmenter)
                if matte is None:
                    continue
                value = chin_covered(matte, again[0])
                if value is not None:
                    values.append(value)
            seen = sum(v > CHIN_COVER_WARN for v in values)
            print(
                f"scarf {colour:6s} top {top:.2f}: {min(values):.3f}–{max(values):.3f}, "
                f"seen {seen} of {len(values)}  " + " ".join(f"{v:.2f}" for v in values)
            )


if __name__ == "__main__":
    main()
