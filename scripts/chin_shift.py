"""Where the chin finder puts the chin on every real face, and how far a change moves it.

    .venv/bin/python scripts/chin_shift.py --save before.json     # on the old code
    .venv/bin/python scripts/chin_shift.py --compare before.json  # on the new code

Every face of ``../shared/testdata`` and ``../shared/devset`` (or ``FACEFLOW_TESTDATA`` and the
``devset`` folder beside it) with its eyes 40 px or more apart is cut out as the service does it
and measured (:func:`~faceflow.pipeline.idphoto.layout.measure_head`). Prints the chin below
the mouth in eye-to-mouth and in eye distances (the face's proportions a bound on the search
would have to hold), and with ``--compare`` each face's move in millimetres at ICAO size (the
head 34 mm tall, the middle of its range), the faces moved over 0.2 mm listed apart, to be
looked at. About a minute on 2 busy cores.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.environment import TESTDATA
from tests.pipeline.idphoto.verdict_cases import real_faces

from faceflow.config import Settings
from faceflow.pipeline.idphoto.layout import apply, measure_head, to_level
from faceflow.runtime.context import load_context

MIN_EYE_DISTANCE_PX = 40.0
ICAO_HEAD_MM = 34.0
MOVED_MM = 0.2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save", type=Path, help="write the chins found (JSON)")
    parser.add_argument("--compare", type=Path, help="a --save file to compare with")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    models = load_context(Settings().model_dump_json()).models
    chins: dict[str, dict[str, float]] = {}
    for real_face in real_faces(TESTDATA, models):
        head = measure_head(real_face.matte, real_face.face)
        if head.eye_distance_px < MIN_EYE_DISTANCE_PX:
            continue
        level = to_level(head.roll_deg, head.eye_centre)  # measure_head's frame
        mouth = apply(level, real_face.face.landmarks.mouth_centre).y
        name = real_face.path.name
        key = next(f"{name}#{n}" for n in range(1, 100) if f"{name}#{n}" not in chins)
        chins[key] = {
            "chin_px": head.chin_y,
            "head_px": head.head_height_px,
            "below_mouth_e2m": (head.chin_y - mouth) / mouth,
            "below_mouth_eyes": (head.chin_y - mouth) / head.eye_distance_px,
        }
    for what in ("below_mouth_e2m", "below_mouth_eyes"):
        ranked = sorted(chins, key=lambda key: chins[key][what])
        low, high = ranked[0], ranked[-1]
        print(
            f"{len(chins)} faces, chin {what}: {chins[low][what]:.2f} ({low}) – "
            f"{chins[high][what]:.2f} ({high})"
        )
    if args.save:
        args.save.write_text(json.dumps(chins, indent=1))
    if args.compare:
        before: dict[str, dict[str, float]] = json.loads(args.compare.read_text())
        moved = []
        for key, after in chins.items():
            if key not in before:
                print(f"{key}: not measured before")
                continue
            mm = (after["chin_px"] - before[key]["chin_px"]) / before[key]["head_px"] * ICAO_HEAD_MM
            print(
                f"{key:32} {before[key]['below_mouth_e2m']:6.2f} → "
                f"{after['below_mouth_e2m']:6.2f}  {mm:+6.2f} mm"
            )
            if abs(mm) > MOVED_MM:
                moved.append(f"{key} {mm:+.2f} mm")
        print(f"moved over {MOVED_MM} mm at ICAO size: {', '.join(moved) or 'none'}")


if __name__ == "__main__":
    main()
