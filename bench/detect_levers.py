"""What each lever does to detection's CPU cost, and whether the faces stay the same.

    .venv/bin/python bench/detect_levers.py [--repeats 5] [--json]

Over every photo of ``../shared/testdata`` and ``../shared/devset`` (decoded as ``analyze``
decodes them), one thread, CPU time (``time.thread_time``) per call, median of ``--repeats``:

* ``640 (before)``: the single YuNet pass at 640 px on the long side that detection was before,
  the image shrunk with OpenCV's ``INTER_AREA`` (:func:`area_fit`);
* ``640 block+area``: the same pass, shrunk as :func:`faceflow.pipeline.detect.fit_to_detector`
  does now (whole-block averaging, then ``INTER_AREA`` for the rest);
* ``640 block+linear``: the same, bilinear for the rest (:func:`block_linear_fit`);
* ``640 padded``: the same, the input padded to a fixed 640×640 (one shape: no re-planning per
  input shape, but more pixels);
* ``480`` / ``320``: one pass at that long side, shrunk as ``640 (before)`` (what input size alone
  saves, and what it loses);
* ``graph: basic`` / ``graph: extended``: the 640 pass on sessions with lower onnxruntime graph
  optimisation levels than the ``all`` faceflow uses;
* ``320 first``: the adaptive first pass issue 13 asked to try: a 320 px pass, accepted when it is
  clear-cut (at least one face; every face plausibly upright, scored ``UPRIGHT_SURE_SCORE`` or
  more, its eyes ``ADAPTIVE_MIN_EYE_PX`` or more apart at 320 px; no other candidate scored
  ``DOUBT_SCORE`` or more), the 640 px pass as well otherwise;
* ``now``: :func:`faceflow.pipeline.detect.detect_faces` with its defaults (the 640 px pass,
  quick passes in four orientations where its best face is not surely upright, tiles for groups),
  shrinking as ``640 block+area``.

A second table: landmarks of the 320 and 480 px passes, and of the 640 px pass shrunk the
other ways, against the ``640 (before)`` pass's, on the faces both find (roll difference, and
the largest landmark shift in eye distances of the reference face), and how far each pass's roll
misses a known tilt: every one-face photo turned by 12° and −20° (``TILTS_DEG``), the roll's change
against the turn.

A third table: the group and crowd photos (more than two faces labelled, or a range of counts),
faces found with ``small_faces`` off, auto and tiles against the labelled count, and the CPU each
costs.

For each lever: the total CPU over all photos against ``640 (before)``, and on how many photos its
faces match the 640 pass's (same count, each box with IoU ≥ 0.5 to one of them).
"""

from __future__ import annotations

import argparse
import json
import math
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
from faceflow.pipeline.detect import (
    UPRIGHT_SURE_SCORE,
    DetectOptions,
    SmallFaces,
    block_shrink,
    detect_faces,
    fit_to_detector,
    plausibly_upright,
)
from faceflow.runtime.context import load_context
from faceflow.runtime.tasks import ANALYZE_DECODE_PX

SHARED = Path(__file__).resolve().parents[2] / "shared"
Boxes = NDArray[np.float64]
Marks = NDArray[np.float64]

# The adaptive first pass's rule (see the module docstring). Over the 77 labelled photos, 20 px
# between the eyes at 320 px accepted the most photos (58) with no face count changed; 30 and 40 px
# accepted 52 and 29, and no eye distance brought the roll within 1° of the 640 px pass's (the
# landmark table). A candidate scored 0.5 or more besides the faces: the photo is not clear-cut.
ADAPTIVE_SIDE_PX = 320
ADAPTIVE_MIN_EYE_PX = 20.0
DOUBT_SCORE = 0.5
TILTS_DEG = (12.0, -20.0)


Fit = Callable[[NDArray[np.uint8], int], tuple[NDArray[np.uint8], float]]


def area_fit(rgb: NDArray[np.uint8], side: int) -> tuple[NDArray[np.uint8], float]:
    """``rgb`` with its long side ``side``, shrunk with ``INTER_AREA`` as detection did before."""
    height, width = rgb.shape[:2]
    factor = side / max(height, width)
    if factor >= 1.0:
        return fit_to_detector(rgb, side)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return np.asarray(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), np.uint8), 1 / factor


def block_linear_fit(rgb: NDArray[np.uint8], side: int) -> tuple[NDArray[np.uint8], float]:
    """``rgb`` with its long side ``side``: whole blocks averaged, then bilinear for the rest."""
    height, width = rgb.shape[:2]
    factor = side / max(height, width)
    if factor >= 1.0:
        return fit_to_detector(rgb, side)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    blocks = block_shrink(rgb, factor)
    return np.asarray(
        cv2.resize(blocks, size, interpolation=cv2.INTER_LINEAR), np.uint8
    ), 1 / factor


def session(graph: bytes, level: ort.GraphOptimizationLevel) -> ort.InferenceSession:
    """A one-thread session like faceflow's, with another graph optimisation level."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = level
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(graph, sess_options=options, providers=["CPUExecutionProvider"])


def single_pass(
    detector: YuNetDetector, side: int, pad: bool = False, fit: Fit = area_fit
) -> Callable[..., Boxes]:
    def run(rgb: NDArray[np.uint8]) -> Boxes:
        small, back = fit(rgb, side)
        bgr = rgb_to_bgr(small)
        if pad:
            padded = np.zeros((side, side, 3), np.uint8)
            padded[: bgr.shape[0], : bgr.shape[1]] = bgr
            bgr = padded
        raw = detector.detect(bgr, 0.7, 0.3)
        boxes: Boxes = raw.boxes.astype(np.float64) * back
        return boxes[(boxes[:, 2] - boxes[:, 0]) >= 20 / 1.0]

    return run


def pass_at(
    detector: YuNetDetector,
    rgb: NDArray[np.uint8],
    side: int,
    threshold: float = 0.7,
    fit: Fit = area_fit,
) -> tuple[Boxes, Marks, NDArray[np.float64]]:
    """Boxes, landmarks and scores of one pass at ``side`` px, in ``rgb``'s pixels."""
    small, back = fit(rgb, side)
    raw = detector.detect(rgb_to_bgr(small), threshold, 0.3)
    return (
        raw.boxes.astype(np.float64) * back,
        raw.landmarks.astype(np.float64) * back,
        raw.scores.astype(np.float64),
    )


def adaptive(detector: YuNetDetector) -> Callable[..., Boxes]:
    def run(rgb: NDArray[np.uint8]) -> Boxes:
        boxes, marks, scores = pass_at(detector, rgb, ADAPTIVE_SIDE_PX, DOUBT_SCORE)
        faces = scores >= 0.7
        eyes_px = np.hypot(*(marks[:, 1] - marks[:, 0]).T) * ADAPTIVE_SIDE_PX / max(rgb.shape[:2])
        clear_cut = (
            faces.any()
            and faces.all()
            and bool((scores >= UPRIGHT_SURE_SCORE).all())
            and bool((eyes_px >= ADAPTIVE_MIN_EYE_PX).all())
            and all(plausibly_upright(m.astype(np.float32)) for m in marks)
        )
        if not clear_cut:
            boxes = pass_at(detector, rgb, 640)[0]
        return boxes[(boxes[:, 2] - boxes[:, 0]) >= 20]

    return run


def roll_deg(marks: Marks) -> float:
    eye_line = marks[1] - marks[0]
    return math.degrees(math.atan2(eye_line[1], eye_line[0]))


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
        "640 block+area": single_pass(detector, 640, fit=fit_to_detector),
        "640 block+linear": single_pass(detector, 640, fit=block_linear_fit),
        "640 padded": single_pass(detector, 640, pad=True),
        "480": single_pass(detector, 480),
        "320": single_pass(detector, 320),
        "graph: basic": single_pass(basic, 640),
        "graph: extended": single_pass(extended, 640),
        "320 first": adaptive(detector),
        "now": now,
    }
    photos = sorted(
        p for folder in ("testdata", "devset") for p in (SHARED / folder).glob("*.[jp][pn]g")
    )
    totals = dict.fromkeys(levers, 0.0)
    matches = dict.fromkeys(levers, 0)
    mismatched: dict[str, list[str]] = {name: [] for name in levers}
    for path in photos:
        rgb = decoded(path)
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
    marks = landmark_rows(photos, detector)
    groups = small_faces_rows(photos, detector, args.repeats)
    if args.json:
        print(json.dumps({"levers": rows, "landmarks": marks, "small_faces": groups}, indent=1))
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
    landmarks = Table(title="landmarks against the 640 px pass, and a known tilt's roll missed")
    for column in marks[0]:
        landmarks.add_column(column.replace("_", " "))
    for mark in marks:
        landmarks.add_row(*(str(value) for value in mark.values()))
    Console(width=160).print(landmarks)
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


def decoded(path: Path) -> NDArray[np.uint8]:
    return decode_image(path.read_bytes(), LimitSettings(), max_long_side_px=ANALYZE_DECODE_PX).rgb


def landmark_rows(photos: list[Path], detector: YuNetDetector) -> list[dict[str, Any]]:
    """Per pass: its landmarks against the ``640 (before)`` pass's, and its roll on known tilts."""
    passes: dict[str, tuple[int, Fit]] = {
        "320": (320, area_fit),
        "480": (480, area_fit),
        "640 (before)": (640, area_fit),
        "640 block+area": (640, fit_to_detector),
        "640 block+linear": (640, block_linear_fit),
    }
    roll_gaps: dict[str, list[float]] = {name: [] for name in passes}
    shifts: dict[str, list[float]] = {name: [] for name in passes}
    tilt_misses: dict[str, list[float]] = {name: [] for name in passes}
    for path in photos:
        rgb = decoded(path)
        ref_boxes, ref_marks, _ = pass_at(detector, rgb, 640)
        upright_rolls: dict[str, float] = {}
        for name, (side, fit) in passes.items():
            boxes, marks, _ = pass_at(detector, rgb, side, fit=fit)
            for box, mark in zip(boxes, marks, strict=True):
                overlaps = [iou(box, ref) for ref in ref_boxes]
                if not overlaps or max(overlaps) < 0.5:
                    continue
                ref = ref_marks[int(np.argmax(overlaps))]
                roll_gaps[name].append(abs(roll_deg(mark) - roll_deg(ref)))
                shifts[name].append(float(np.abs(mark - ref).max() / np.hypot(*(ref[1] - ref[0]))))
            if len(marks) == 1:
                upright_rolls[name] = roll_deg(marks[0])
        if len(ref_boxes) != 1 or len(upright_rolls) != len(passes):
            continue
        height, width = rgb.shape[:2]
        for degrees in TILTS_DEG:
            # cv2 turns counter-clockwise for positive angles; roll is clockwise on screen.
            turn = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
            tilted = cv2.warpAffine(rgb, turn, (width, height), borderMode=cv2.BORDER_REPLICATE)
            for name, (side, fit) in passes.items():
                marks = pass_at(detector, np.ascontiguousarray(tilted), side, fit=fit)[1]
                if len(marks) == 1:
                    change = roll_deg(marks[0]) - upright_rolls[name]
                    tilt_misses[name].append(abs(change + degrees))
    return [
        {
            "pass": name,
            "faces_matched": len(roll_gaps[name]),
            "roll_gap_median_deg": round(statistics.median(roll_gaps[name]), 2),
            "roll_gap_over_1deg": sum(gap > 1.0 for gap in roll_gaps[name]),
            "roll_gap_max_deg": round(max(roll_gaps[name]), 1),
            "shift_median_eye_distances": round(statistics.median(shifts[name]), 3),
            "tilted_copies": len(tilt_misses[name]),
            "tilt_missed_mean_deg": round(statistics.mean(tilt_misses[name]), 1),
            "tilt_missed_max_deg": round(max(tilt_misses[name]), 1),
        }
        for name in passes
    ]


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
        rgb = decoded(path)
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
