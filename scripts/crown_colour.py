"""What `forehead_visible`'s measures of the top of the head read, on every real face and under a
cap worn high: its colour against the hair beside the face and the forehead (ΔE to the nearest)
and its fine detail against the hair's beside the face.

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
import time
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
    CROWN_DETAIL_MIN,
    crown_colour,
    crown_detail,
    forehead_colour,
    head_top,
)
from faceflow.pipeline.idphoto.compliance.regions import eye_distance_px
from faceflow.pipeline.idphoto.matte import Matte
from faceflow.pipeline.idphoto.options import IdPhotoOptions
from faceflow.pipeline.idphoto.render import render_id_photo
from faceflow.pipeline.idphoto.specs import get_spec
from faceflow.runtime.context import load_context


def measured(matte: Matte, face: Face) -> tuple[float | None, float | None, float | None]:
    """The head's top (eye distances above the eye line), the crown's ΔE and its detail, as the
    check reads them."""
    distance = eye_distance_px(face)
    lab = cv2.cvtColor(matte.foreground, cv2.COLOR_RGB2LAB).astype(np.float32)
    forehead = forehead_colour(lab, matte, face, distance)
    top = head_top(matte, face, distance)
    if forehead is None:
        return top, None, None
    return top, crown_colour(matte, face, distance, forehead), crown_detail(matte, face, distance)


def warned(crown: float, detail: float | None, *, with_detail: bool) -> bool:
    """Whether `forehead_visible` warns for the top of the head (its forehead bare)."""
    return crown > CROWN_DE_WARN or (
        with_detail and detail is not None and detail < CROWN_DETAIL_MIN
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    cv2.setNumThreads(1)
    context = load_context(Settings().model_dump_json())
    icao = IdPhotoOptions(get_spec("icao"))

    real: list[tuple[float, float | None, str, str]] = []
    unmeasured: list[str] = []
    caps: dict[str, list[tuple[float, float | None, str]]] = {c: [] for c in CAP_COLOURS}
    dropped: Counter[str] = Counter()
    no_room = 0
    timings: list[float] = []
    for real_face in real_faces(TESTDATA, context.models):
        path, face, matte = real_face.path, real_face.face, real_face.matte
        distance = eye_distance_px(face)
        top, crown, detail = measured(matte, face)
        if crown is None or top is None:
            unmeasured.append(path.name)
            continue
        started = time.perf_counter()
        crown_detail(matte, face, distance)
        timings.append(time.perf_counter() - started)
        status = render_id_photo(matte, face, icao).report.status.value
        real.append((crown, detail, path.name, status))
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
            capped_top, capped_crown, capped_detail = measured(capped_matte, face)
            if capped_top is None or capped_top < top - 0.2 or capped_crown is None:
                dropped[colour] += 1
                continue
            caps[colour].append((capped_crown, capped_detail, path.name))

    def shown(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    print(f"real faces ({len(real)}), the top of the head's ΔE | detail over the hair's:")
    for crown, detail, name, status in sorted(real, key=lambda r: (r[1] is None, r[1] or 0.0)):
        print(f"  {shown(detail):>5s}  ΔE {crown:5.1f}  {name} ({status})")
    crowns = sorted(crown for crown, *_ in real)
    details = sorted(detail for _, detail, *_ in real if detail is not None)
    print(
        f"ΔE {crowns[0]:.1f}–{crowns[-1]:.1f}, median {crowns[len(crowns) // 2]:.1f}; detail "
        f"{details[0]:.2f}–{details[-1]:.2f}, median {details[len(details) // 2]:.2f}"
    )
    for with_detail in (False, True):
        names = [f"{n} ({s})" for c, d, n, s in real if warned(c, d, with_detail=with_detail)]
        label = f"ΔE over {CROWN_DE_WARN:g}" + (
            f" or detail under {CROWN_DETAIL_MIN:g}" if with_detail else ""
        )
        print(f"  warned, {label}: {', '.join(names) or 'none'}")
    passing = [f"{c:.1f} | {shown(d)}" for c, d, _, s in real if s == "pass"]
    print(f"  faces whose ICAO photo passes: {', '.join(passing)}")
    print(f"  not measured (no crown above the forehead in the cut-out): {', '.join(unmeasured)}")
    print(f"caps worn high ({no_room} faces without room above the head left out):")
    for colour, found in caps.items():
        by_colour = sum(warned(c, d, with_detail=False) for c, d, _ in found)
        by_either = sum(warned(c, d, with_detail=True) for c, d, _ in found)
        values = sorted(d for _, d, _ in found if d is not None)
        print(
            f"  {colour:6s} seen on {by_colour} of {len(found)} by colour, {by_either} with the "
            f"detail (detail {values[0]:.2f}–{values[-1]:.2f}, median "
            f"{values[len(values) // 2]:.2f}); the cut-out dropped it with the hair under it on "
            f"{dropped[colour]}"
        )
        for c, d, name in found:
            if name == "portrait_2.jpg":
                print(f"    portrait_2: ΔE {c:.1f}, detail {shown(d)}")
    timings.sort()
    print(f"crown_detail: median {1000 * timings[len(timings) // 2]:.2f} ms a face")


if __name__ == "__main__":
    main()
