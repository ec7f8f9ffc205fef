"""What each lever does to detection's CPU cost, and whether the faces stay the same.

    .venv/bin/python bench/detect_levers.py [--repeats 5] [--json]

Over every photo of ``../shared/testdata`` and ``../shared/devset`` (decoded as ``analyze``
decodes them), one thread, CPU time (``time.thread_time``) per call, median of ``--repeats``:

* ``640 (before)``: the single YuNet pass at 640 px on the long side that detection was before;
* ``640 padded``: the same, the input padded to a fixed 640×640 (one shape: no re-planning per
  input shape, but more pixels);
* ``480`` / ``320``: one pass at that long side (what input size alone saves, and what it loses);
* ``graph: basic`` / ``graph: extended``: the 640 pass on sessions with lower onnxruntime graph
  optimisation levels than the ``all`` faceflow uses;
* ``now``: :func:`faceflow.pipeline.detect.detect_faces` with its defaults (quick 320 px pass,
  the 640 px pass only where the quick one is not clear-cut, turned passes for orientation,
  tiles for groups).

A second table: the group and crowd photos (more than two faces labelled, or a range of counts),
faces found with ``small_faces`` off, auto and tiles against the labelled count, and the CPU each
costs.

For each lever: the total CPU over all photos against ``640 (before)``, and on how many photos its
faces match the 640 pass's (same count, each box with IoU ≥ 0.5 to one of them).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray
from rich.console import Console
from rich.table import Table

from faceflow.config import LimitSettings, Settings
from faceflow.imaging.colour import rgb_to_bgr
from faceflow.imaging.ingest import decode_image
from faceflow.models.detector import YuNetDetector, with_symbolic_input_size
from faceflow.models.store import ModelStore
from faceflow.pipeline.detect import DetectOptions, SmallFaces, detect_faces, fit_to_detector
from faceflow.runtime.context import load_context
from faceflow.runtime.tasks import ANALYZE_DECODE_PX

SHARED = Path(__file__).resolve().parents[2] / "shared"
Boxes = NDArray[np.float64]


def session(graph: bytes, level: ort.GraphOptimizationLevel) -> ort.InferenceSession:
    """A one-thread session like faceflow's, with another graph optimisation level."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = level
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(graph, sess_options=options, providers=["CPUExecutionProvider"])


def single_pass(detector: YuNetDetector, side: int, pad: bool = False) -> Callable[..., Boxes]:
    def run(rgb: NDArray[np.uint8]) -> Boxes:
        small, back = fit_to_detector(rgb, side)
        bgr = rgb_to_bgr(small)
        if pad:
            padded = np.zeros((side, side, 3), np.uint8)
            padded[: bgr.shape[0], : bgr.shape[1]] = bgr
            bgr = padded
        raw = detector.detect(bgr, 0.7, 0.3)
        boxes: Boxes = raw.boxes.astype(np.float64) * back
        return boxes[(boxes[:, 2] - boxes[:, 0]) >= 20 / 1.0]

    return run


def iou(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def same_faces(ours: Boxes, reference: Boxes) -> bool:
    return len(ours) == len(reference) and all(
        max((iou(box, ref) for ref in reference), default=0.0) >= 0.5 for box in ours
    )


def cpu_ms(
    lever: Callable[[NDArray[np.uint8]], Boxes], rgb: NDArray[np.uint8], repeats: int
) -> float:
    samples = []
    for _ in range(repeats):
        start = time.thread_time()
        lever(rgb)
        samples.append((time.thread_time() - start) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    cv2.setNumThreads(1)
    settings = Settings()
    context = load_context(settings.model_dump_json())
    detector = context.models.detector
    graph = with_symbolic_input_size(ModelStore(settings.models).read_verified(detector.spec))
    basic = YuNetDetector(session(graph, ort.GraphOptimizationLevel.ORT_ENABLE_BASIC))
    extended = YuNetDetector(session(graph, ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED))
    options = DetectOptions()

    def now(rgb: NDArray[np.uint8]) -> Boxes:
        faces = detect_faces(rgb, detector, options)
        return np.array([[f.box.x1, f.box.y1, f.box.x2, f.box.y2] for f in faces]).reshape(-1, 4)

    levers: dict[str, Callable[[NDArray[np.uint8]], Boxes]] = {
        "640 (before)": single_pass(detector, 640),
        "640 padded": single_pass(detector, 640, pad=True),
        "480": single_pass(detector, 480),
        "320": single_pass(detector, 320),
        "graph: basic": single_pass(basic, 640),
        "graph: extended": single_pass(extended, 640),
        "now": now,
    }
    photos = sorted(
        p for folder in ("testdata", "devset") for p in (SHARED / folder).glob("*.[jp][pn]g")
    )
    totals = dict.fromkeys(levers, 0.0)
    matches = dict.fromkeys(levers, 0)
    mismatched: dict[str, list[str]] = {name: [] for name in levers}
    for path in photos:
        rgb = decode_image(
            path.read_bytes(), LimitSettings(), max_long_side_px=ANALYZE_DECODE_PX
        ).rgb
        reference = levers["640 (before)"](rgb)
        for name, lever in levers.items():
            totals[name] += cpu_ms(lever, rgb, args.repeats)
            if same_faces(lever(rgb), reference):
                matches[name] += 1
            else:
                mismatched[name].append(path.name)
    before = totals["640 (before)"]
    rows: list[dict[str, Any]] = [
        {
            "lever": name,
            "cpu_ms_per_photo": round(totals[name] / len(photos), 1),
            "of_before": round(totals[name] / before, 3),
            "same_faces": f"{matches[name]}/{len(photos)}",
            "differs_on": mismatched[name],
        }
        for name in levers
    ]
    groups = small_faces_rows(photos, detector, args.repeats)
    if args.json:
        print(json.dumps({"levers": rows, "small_faces": groups}, indent=1))
        return
    table = Table(title=f"detection levers, {len(photos)} photos, CPU ms on one thread")
    for column in ("lever", "CPU ms / photo", "of before", "same faces as 640", "differs on"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row["lever"]),
            str(row["cpu_ms_per_photo"]),
            f"{row['of_before']:.0%}",
            str(row["same_faces"]),
            ", ".join(row["differs_on"][:4]) + (" …" if len(row["differs_on"]) > 4 else ""),
        )
    Console(width=160).print(table)
    small = Table(title="small faces: group and crowd photos, faces found (CPU ms)")
    for column in ("photo", "labelled", *(mode.value for mode in SmallFaces)):
        small.add_column(column)
    for group in groups:
        small.add_row(
            group["photo"],
            group["labelled"],
            *(f"{group[m.value]['faces']} ({group[m.value]['cpu_ms']})" for m in SmallFaces),
        )
    Console(width=160).print(small)


def small_faces_rows(
    photos: list[Path], detector: YuNetDetector, repeats: int
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path in photos:
        facts = json.loads((path.parent / "faces.json").read_text()).get(path.name, {})
        low, high = (
            facts.get("faces", facts.get("faces_min")),
            facts.get("faces", facts.get("faces_max")),
        )
        if low is None or (low == high and low <= 2):
            continue
        rgb = decode_image(
            path.read_bytes(), LimitSettings(), max_long_side_px=ANALYZE_DECODE_PX
        ).rgb
        row: dict[str, Any] = {
            "photo": f"{path.parent.name}/{path.name}",
            "labelled": str(low) if low == high else f"{low}–{high}",
        }
        for mode in SmallFaces:
            options = DetectOptions(small_faces=mode)

            def run(image: NDArray[np.uint8], options: DetectOptions = options) -> Boxes:
                return np.zeros((len(detect_faces(image, detector, options)), 4))

            row[mode.value] = {
                "faces": len(detect_faces(rgb, detector, options)),
                "cpu_ms": round(cpu_ms(run, rgb, repeats), 1),
            }
        rows.append(row)
    return rows


if __name__ == "__main__":
    main()
