"""Detection's CPU per photo against another checkout's, in one run: the same photos, alternated.

    .venv/bin/python bench/detect_then_now.py --before OTHER/src [--rounds 2] [--repeats 5]

Issue 13 asks detection for "at most half of today's CPU per photo" with the same faces found on
every labelled photo; "today" is the code the issue was filed on, whose figures came from another
machine. This runs ``detect_faces`` as each checkout's own code runs it (its own options from the
settings, its own model loading), on every labelled photo of ../shared/testdata and
../shared/devset, one thread pinned to one core, and prints the CPU ms per photo of both and
whether the faces found are the same. Each checkout runs in a child interpreter of its own
(``PYTHONPATH`` = the checkout's ``src``, then ``--before``'s other entries), the two alternated
``--rounds`` times so that a slow spell of the machine falls on both; each photo's figure is the
median of ``--repeats`` calls after one warm-up call, and the best of the rounds is kept.

An older checkout may import packages this virtualenv no longer has (the code of 2026-11-22 imports
``onnx``): ``pip install --target DIR onnx`` and pass ``--before OLD/src:DIR``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
SHARED = BENCH_DIR.parents[1] / "shared"
FOLDERS = ("testdata", "devset")
CORE = 1


def photos() -> list[Path]:
    """Every labelled photo of the shared folders, in a stable order."""
    found: list[Path] = []
    for folder in FOLDERS:
        labels = json.loads((SHARED / folder / "faces.json").read_text())
        found.extend(SHARED / folder / name for name in sorted(labels) if not name.startswith("_"))
    return found


def child(out: Path, repeats: int) -> None:
    """In a child interpreter: time the checkout on ``PYTHONPATH``, write the figures to ``out``."""
    import cv2

    from faceflow.config import load_settings
    from faceflow.imaging.ingest import decode_image
    from faceflow.models.detector import YuNetDetector
    from faceflow.models.store import ModelStore
    from faceflow.pipeline import detect

    # The options class moved (pipeline.detect → pipeline.detect_options) after 2026-11-22.
    try:
        from faceflow.pipeline.detect_options import DetectOptions
    except ImportError:
        DetectOptions = detect.DetectOptions  # type: ignore[attr-defined,misc]  # noqa: N806

    cv2.setNumThreads(1)
    settings = load_settings(models={"intra_op_threads": 1})
    detector = YuNetDetector.load(ModelStore(settings.models), settings.models)
    options = DetectOptions.from_settings(settings.detection)
    figures: dict[str, dict[str, object]] = {}
    for path in photos():
        image = decode_image(path.read_bytes(), settings.limits)
        detect.detect_faces(image.rgb, detector, options, source_scale=image.scale)  # warm-up
        spent = []
        for _ in range(repeats):
            start = time.process_time()
            faces = detect.detect_faces(image.rgb, detector, options, source_scale=image.scale)
            spent.append((time.process_time() - start) * 1000)
        figures[f"{path.parent.name}/{path.name}"] = {
            "ms": statistics.median(spent),
            "faces": len(faces),
            "boxes": [[round(v) for v in (f.box.x1, f.box.y1, f.box.x2, f.box.y2)] for f in faces],
        }
    out.write_text(json.dumps(figures))


def run(pythonpath: str, repeats: int, work: Path, name: str) -> dict[str, dict[str, object]]:
    out = work / f"{name}.json"
    env = {**os.environ, "PYTHONPATH": pythonpath, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, __file__, "--child", str(out), "--repeats", str(repeats)]
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > CORE:
        command = ["taskset", "-c", str(CORE), *command]
    subprocess.run(command, env=env, check=True, timeout=1800)
    figures: dict[str, dict[str, object]] = json.loads(out.read_text())
    return figures


def best(rounds: list[dict[str, dict[str, object]]]) -> dict[str, float]:
    return {photo: min(float(r[photo]["ms"]) for r in rounds) for photo in rounds[0]}  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--before",
        help="PYTHONPATH of the other checkout: its src folder, then any extra folders",
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="alternations of the two (default: %(default)s)"
    )
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed calls per photo (default: %(default)s)"
    )
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.repeats)
        return
    if not args.before:
        parser.error("--before OTHER/src is required")
    now_path = str(BENCH_DIR.parent / "src")
    then: list[dict[str, dict[str, object]]] = []
    now: list[dict[str, dict[str, object]]] = []
    with tempfile.TemporaryDirectory(prefix="detect-then-now-") as folder:
        work = Path(folder)
        for index in range(args.rounds):
            then.append(run(args.before, args.repeats, work, f"then{index}"))
            now.append(run(now_path, args.repeats, work, f"now{index}"))
    then_ms, now_ms = best(then), best(now)
    differs = [p for p in then_ms if then[0][p]["faces"] != now[0][p]["faces"]]
    ratios = [now_ms[p] / then_ms[p] for p in then_ms if then_ms[p] > 0]
    print(f"{len(then_ms)} labelled photos, CPU ms per photo on one thread (best of {args.rounds})")
    print(f"{'':22} {'mean':>7} {'median':>7}")
    for label, figures in (("then (--before)", then_ms), ("now (this checkout)", now_ms)):
        values = list(figures.values())
        print(f"{label:22} {statistics.mean(values):7.2f} {statistics.median(values):7.2f}")
    print(
        f"now / then per photo: median {statistics.median(ratios):.2f}, "
        f"{min(ratios):.2f}–{max(ratios):.2f}; of the means "
        f"{statistics.mean(now_ms.values()) / statistics.mean(then_ms.values()):.0%}"
    )
    print(f"photos whose face count differs: {len(differs)} {differs}")


if __name__ == "__main__":
    main()
