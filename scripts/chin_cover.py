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
from tests.pipeline.idphoto.verdict_cases import SCARF_COLOURS, no_photo, real_faces, scarf

from faceflow.config import LimitSettings, Settings
from faceflow.errors import NoSubject
from faceflow.imaging.ingest import decode_image
from faceflow.pipeline.detect import detect_faces
from faceflow.pipeline.detect_options import DetectOptions
from faceflow.pipeline.idphoto.compliance.features import CHIN_COVER_WARN, chin_covered
from faceflow.pipeline.idphoto.compliance.regions import eye_distance_px
from faceflow.pipeline.idphoto.level import levelled_face
from faceflow.pipeline.idphoto.matte import compute_matte
from faceflow.runtime.context import load_context

PHOTOS = (
    "portrait_1.jpg",
    "portrait_2.jpg",
    "obama.jpg",
    "biden.jpg",
    "rose_leslie.jpg",
    "../devset/df_img7.jpg",
    "../devset/df_img13.jpg",
    "../devset/df_img14.jpg",
    "../devset/df_img15.jpg",
    "../devset/df_img18.jpg",
    "../devset/df_img25.jpg",
    "../devset/df_img33.jpg",
    "../devset/df_img40.jpg",
)
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
            for name in PHOTOS:
                rgb = decode_image((TESTDATA / name).read_bytes(), limits).rgb
                faces = detect_faces(rgb, models.detector, DetectOptions())
                if len(faces) != 1:
                    continue
                face = levelled_face(rgb, faces[0], models.aligner)
                edited = scarf(colour, top)(rgb, face, no_photo)
                again = detect_faces(edited, models.detector, DetectOptions())
                if len(again) != 1:
                    print(f"  {colour} {top} {Path(name).stem}: {len(again)} faces")
                    continue
                face = levelled_face(edited, again[0], models.aligner)
                try:
                    matte = compute_matte(edited, face, models.segmenter)
                except NoSubject:
                    continue
                value = chin_covered(matte, face)
                if value is not None:
                    values.append(value)
            seen = sum(v > CHIN_COVER_WARN for v in values)
            print(
                f"scarf {colour:6s} top {top:.2f}: {min(values):.3f}–{max(values):.3f}, "
                f"seen {seen} of {len(values)}  " + " ".join(f"{v:.2f}" for v in values)
            )


if __name__ == "__main__":
    main()
