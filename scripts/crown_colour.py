"""What `forehead_visible`'s second measure reads: the top of the head's colour against the hair
beside the face and the forehead (ΔE to the nearest), on every real face and under a cap worn high.

    .venv/bin/python scripts/crown_colour.py

Every face of ``../shared/testdata`` and ``../shared/devset`` (or ``FACEFLOW_TESTDATA`` and the
``devset`` folder beside it) is cut out and measured as taken (with the ICAO photo's verdict on
it), then, with eyes 40 px or more apart, with a cap of each colour of
``verdict_cases.CAP_COLOURS`` drawn on its head (its top 0.1 eye distances over the head's own,
which the cut-out of the photo as taken gives) and cut out again, the face as found on the photo
as taken (a cap over the hair moves no landmark). A face without 0.15 eye distances of photo
above its head is left out of the caps; a cap the cut-out drops with the hair under it (the
head's top then 0.2 eye distances or more below its own) is counted apart: what is left is a head
cut flat, not a cap. A few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.environment import TESTDATA
from tests.pipeline.idphoto.verdict_cases import CAP_COLOURS, capped_mattes, real_faces

from faceflow.config import Settings
from faceflow.domain import Face
from faceflow.pipeline.idphoto.compliance.features import (
    CROWN_DE_WARN,
    crown_colour,
    forehead_colour,
    head_top,
)
from faceflow.pipeline.idphoto.compliance.regions import eye_distance_px
from faceflow.pipeline.idphoto.matte import Matte
from faceflow.pipeline.idphoto.options import IdPhotoOptions
from faceflow.pipeline.idphoto.render import render_id_photo
from faceflow.pipeline.idphoto.specs import get_spec
from faceflow.runtime.context import load_context


def measured(matte: Matte, face: Face) -> tuple[float | None, float | None]:
    """The head's top (eye distances above the eye line) and the crown's ΔE, as the check reads
    them."""
    distance = eye_distance_px(face)
    lab = cv2.cvtColor(matte.foreground, cv2.COLOR_RGB2LAB).astype(np.float32)
    forehead = forehead_colour(lab, matte, face, distance)
    top = head_top(matte, face, distance)
    if forehead is None:
        return top, None
    return top, crown_colour(matte, face, distance, forehead)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    cv2.setNumThreads(1)
    context = load_context(Settings().model_dump_json())
    icao = IdPhotoOptions(get_spec("icao"))

    real: list[tuple[float, str, str]] = []
    unmeasured: list[str] = []
    caps: dict[str, list[tuple[float, str]]] = {colour: [] for colour in CAP_COLOURS}
    dropped: Counter[str] = Counter()
    no_room = 0
    for real_face in real_faces(TESTDATA, context.models):
        path, face, matte = real_face.path, real_face.face, real_face.matte
        distance = eye_distance_px(face)
        top, crown = measured(matte, face)
        if crown is None or top is None:
            unmeasured.append(path.name)
            continue
        status = render_id_photo(matte, face, icao).report.status.value
        real.append((crown, path.name, status))
        eyes_y = (face.landmarks.right_eye.y + face.landmarks.left_eye.y) / 2
        if distance < 40:
            continue  # a crowd face: too small to draw a cap on
        if eyes_y - (top + 0.15) * distance < 0:
            no_room += 1
            continue
        for colour, capped_matte in capped_mattes(real_face, top + 0.1, context.models.segmenter):
            if capped_matte is None:
                dropped[colour] += 1
                continue
            capped_top, capped_crown = measured(capped_matte, face)
            if capped_top is None or capped_top < top - 0.2 or capped_crown is None:
                dropped[colour] += 1
                continue
            caps[colour].append((capped_crown, path.name))

    real.sort()
    over = [
        f"{value:.1f} {name} ({status})" for value, name, status in real if value > CROWN_DE_WARN
    ]
    print(
        f"real faces, the top of the head's ΔE from the hair beside the face or the forehead: "
        f"{real[0][0]:.1f}–{real[-1][0]:.1f} over {len(real)} faces, median "
        f"{real[len(real) // 2][0]:.1f}; over {CROWN_DE_WARN:g}: {', '.join(over) or 'none'}"
    )
    print("  highest: " + ", ".join(f"{v:.1f} {n} ({s})" for v, n, s in real[-6:]))
    passing = [value for value, _, status in real if status == "pass"]
    if passing:
        print(f"  faces whose ICAO photo passes: {', '.join(f'{v:.1f}' for v in passing)}")
    print(f"  not measured (no crown above the forehead in the cut-out): {', '.join(unmeasured)}")
    print(f"caps worn high ({no_room} faces without room above the head left out):")
    for colour, found in caps.items():
        values = sorted(value for value, _ in found)
        seen = sum(value > CROWN_DE_WARN for value in values)
        print(
            f"  {colour:6s} seen on {seen} of {len(values)} "
            f"({values[0]:.1f}–{values[-1]:.1f}, median {values[len(values) // 2]:.1f}); "
            f"the cut-out dropped it with the hair under it on {dropped[colour]}"
        )


if __name__ == "__main__":
    main()
