"""What each lever does to detection's CPU cost, and whether the faces stay the same.

    .venv/bin/python bench/detect_levers.py [--repeats 5] [--json] [--levers earlier|new]

Over every photo of ``../shared/testdata`` and ``../shared/devset`` (decoded as ``analyze``
decodes them), one thread, CPU time (``time.thread_time``) per call, median of ``--repeats``:

* ``640 (before)``: the single YuNet pass at 640 px on the long side that detection was before,
  the image shrunk with OpenCV's ``INTER_AREA`` (:func:`area_fit`);
* ``640 block+area``: the same pass, shrunk as :func:`faceflow.pipeline.detect.fit_to_detector`
  does (whole-block averaging, then ``INTER_AREA`` for the rest; :func:`block_area_fit`);
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

``--levers new`` measures the levers tried after those (issue 13, second round) instead, against
``now (before)`` (detection as it ran before them) and with faces matched against
``640 block+area``:

* ``640 block+area``: the 640 px pass as it ran before: shrunk by :func:`block_area_fit`, the
  detector's input built from a BGR copy of the shrunk image (``rgb_to_bgr``);
* ``640 BGR planes``: the same shrink, the float BGR planes written straight from the RGB image
  in one strided copy, as the detector builds them now
  (:func:`faceflow.models.detector.input_tensor`);
* ``640 up2+area``: that, shrunk by :func:`block_up2_fit` (whole blocks averaged, then
  bilinear up to twice the target and 2 × 2 averaging, OpenCV's fast integer ``INTER_AREA``,
  instead of ``INTER_AREA`` at a fractional ratio, which has no fast path);

the rows below are ``640 BGR planes`` with one thing changed:
* ``mem pattern`` / ``parallel mode`` / ``spinning``: onnxruntime session options faceflow does
  not use (memory pattern on, ``ORT_PARALLEL`` execution, ``session.intra_op.allow_spinning`` 1);
* ``offline-optimised``: a model optimised once at ``ORT_ENABLE_ALL`` and saved
  (``optimized_model_filepath``, as ``models pull`` could do), loaded with optimisation off;
  session creation CPU for both is printed below the table;
* ``int8 QDQ``: static QDQ quantization (``onnxruntime.quantization``, per-channel int8 weights,
  uint8 activations, MinMax) calibrated on the example photos ``models pull`` fetches and
  generated variants of them (flipped, scaled, darker and brighter), never on ``../shared``;
  needs the ``onnx`` package (``pip install onnx``), left out without it;
* ``child: FTZ off`` / ``child: FTZ on``: the pass in a child process whose first session has
  ``session.set_denormal_as_zero`` off / on (onnxruntime applies it once per process, to the
  thread that creates the first session, so it cannot be switched within one process);
* ``now (before)``: :func:`detect_faces` with the detector's input built as before
  (``640 block+area``); ``now``: as it runs.

YuNet holds no denormal weights (``bench/detect_levers.py --levers new`` counts them, and the
denormal activations over a sample of photos, before the tables).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import multiprocessing
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
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
from faceflow.models.catalog import EXAMPLES
from faceflow.models.detector import (
    INPUT_SIZE_PX,
    RawDetections,
    YuNetDetector,
    input_tensor,
    with_symbolic_input_size,
)
from faceflow.models.session import create_session
from faceflow.models.store import ModelStore
from faceflow.pipeline.detect import (
    UPRIGHT_SURE_SCORE,
    block_shrink,
    detect_faces,
    fit_to_detector,
    plausibly_upright,
)
from faceflow.pipeline.detect_options import DetectOptions, SmallFaces
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


def _blocks_then(
    rgb: NDArray[np.uint8],
    side: int,
    rest: Callable[[NDArray[np.uint8], tuple[int, int]], NDArray[np.uint8]],
) -> tuple[NDArray[np.uint8], float]:
    """``rgb`` with its long side ``side``: whole blocks averaged, then ``rest(blocks, size)``
    for what is left of the shrink (a photo already small enough: as :func:`fit_to_detector`)."""
    height, width = rgb.shape[:2]
    factor = side / max(height, width)
    if factor >= 1.0:
        return fit_to_detector(rgb, side)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return np.asarray(rest(block_shrink(rgb, factor), size), np.uint8), 1 / factor


def block_area_fit(
    rgb: NDArray[np.uint8], side: int = INPUT_SIZE_PX
) -> tuple[NDArray[np.uint8], float]:
    """``rgb`` with its long side ``side``: whole blocks averaged, then ``INTER_AREA`` for the
    rest, as :func:`fit_to_detector` shrinks (spelt out so the second round's rows keep it
    whatever ``fit_to_detector`` becomes)."""

    def area(blocks: NDArray[np.uint8], size: tuple[int, int]) -> NDArray[np.uint8]:
        return np.asarray(cv2.resize(blocks, size, interpolation=cv2.INTER_AREA), np.uint8)

    return _blocks_then(rgb, side, area)


def block_up2_fit(
    rgb: NDArray[np.uint8], side: int = INPUT_SIZE_PX
) -> tuple[NDArray[np.uint8], float]:
    """``rgb`` with its long side ``side``: whole blocks averaged, then bilinear up to twice the
    target size and 2 × 2 averaging (OpenCV's fast integer ``INTER_AREA``) for the rest."""

    def up2_area(blocks: NDArray[np.uint8], size: tuple[int, int]) -> NDArray[np.uint8]:
        doubled = cv2.resize(blocks, (2 * size[0], 2 * size[1]), interpolation=cv2.INTER_LINEAR)
        return np.asarray(cv2.resize(doubled, size, interpolation=cv2.INTER_AREA), np.uint8)

    return _blocks_then(rgb, side, up2_area)


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


def session(
    graph: bytes,
    level: ort.GraphOptimizationLevel = ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    *,
    mem_pattern: bool = False,
    parallel: bool = False,
    spinning: bool = False,
    flush_denormals: bool | None = None,
    save_to: Path | None = None,
) -> ort.InferenceSession:
    """A one-thread session like faceflow's (arena on, memory pattern off, no spinning), with one
    thing changed."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = level
    options.enable_cpu_mem_arena = True
    options.enable_mem_pattern = mem_pattern
    if parallel:
        options.execution_mode = ort.ExecutionMode.ORT_PARALLEL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    if flush_denormals is not None:
        options.add_session_config_entry(
            "session.set_denormal_as_zero", "1" if flush_denormals else "0"
        )
    if save_to is not None:
        options.optimized_model_filepath = str(save_to)
    options.log_severity_level = 3
    return ort.InferenceSession(graph, sess_options=options, providers=["CPUExecutionProvider"])


class BgrCopyDetector(YuNetDetector):
    """The detector with its input built as before: a BGR copy of the image (``rgb_to_bgr``),
    then zero-padded float planes from it."""

    def detect(
        self, rgb: NDArray[np.uint8], score_threshold: float, nms_threshold: float
    ) -> RawDetections:
        bgr = rgb_to_bgr(rgb)
        height, width = bgr.shape[:2]
        tensor = np.zeros((1, 3, -(-height // 32) * 32, -(-width // 32) * 32), np.float32)
        tensor[0, :, :height, :width] = bgr.transpose(2, 0, 1)
        return self.detect_tensor(tensor, score_threshold, nms_threshold)


def single_pass(
    detector: YuNetDetector, side: int, pad: bool = False, fit: Fit = area_fit
) -> Callable[..., Boxes]:
    def run(rgb: NDArray[np.uint8]) -> Boxes:
        small, back = fit(rgb, side)
        if pad:
            padded = np.zeros((side, side, 3), np.uint8)
            padded[: small.shape[0], : small.shape[1]] = small
            small = padded
        raw = detector.detect(small, 0.7, 0.3)
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
    raw = detector.detect(small, threshold, 0.3)
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


def now_lever(detector: YuNetDetector) -> Callable[[NDArray[np.uint8]], Boxes]:
    """:func:`detect_faces` with its defaults."""
    options = DetectOptions()

    def now(rgb: NDArray[np.uint8]) -> Boxes:
        faces = detect_faces(rgb, detector, options)
        return np.array([[f.box.x1, f.box.y1, f.box.x2, f.box.y2] for f in faces]).reshape(-1, 4)

    return now


def earlier_levers(
    detector: YuNetDetector, bgr_copy: BgrCopyDetector, graph: bytes
) -> dict[str, Callable[[NDArray[np.uint8]], Boxes]]:
    """The levers of the first round, the input built as it was then."""
    basic = BgrCopyDetector(session(graph, ort.GraphOptimizationLevel.ORT_ENABLE_BASIC))
    extended = BgrCopyDetector(session(graph, ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED))
    return {
        "640 (before)": single_pass(bgr_copy, 640),
        "640 block+area": single_pass(bgr_copy, 640, fit=block_area_fit),
        "640 block+linear": single_pass(bgr_copy, 640, fit=block_linear_fit),
        "640 padded": single_pass(bgr_copy, 640, pad=True),
        "480": single_pass(bgr_copy, 480),
        "320": single_pass(bgr_copy, 320),
        "graph: basic": single_pass(basic, 640),
        "graph: extended": single_pass(extended, 640),
        "320 first": adaptive(bgr_copy),
        "now": now_lever(detector),
    }


def new_levers(
    detector: YuNetDetector,
    bgr_copy: BgrCopyDetector,
    graph: bytes,
    settings: Settings,
    folder: Path,
    notes: dict[str, Any],
) -> tuple[
    dict[str, Callable[[NDArray[np.uint8]], Boxes]],
    dict[str, tuple[YuNetDetector, int, Fit]],
    list[ChildLever],
]:
    """The second round's levers (see the module docstring), the landmark passes to compare,
    and the child processes to close."""
    saved = folder / "yunet.optimised.onnx"
    started = time.process_time()
    session(graph, save_to=saved)
    notes["session_cpu_ms_optimising_at_load"] = round((time.process_time() - started) * 1000)
    started = time.process_time()
    offline = YuNetDetector(session(saved.read_bytes(), ort.GraphOptimizationLevel.ORT_DISABLE_ALL))
    notes["session_cpu_ms_loading_offline_optimised"] = round(
        (time.process_time() - started) * 1000
    )
    children = [ChildLever(graph, flush_denormals=False), ChildLever(graph, flush_denormals=True)]
    levers: dict[str, Callable[[NDArray[np.uint8]], Boxes]] = {
        "640 block+area": single_pass(bgr_copy, 640, fit=block_area_fit),
        "640 BGR planes": single_pass(detector, 640, fit=block_area_fit),
        "640 up2+area": single_pass(detector, 640, fit=block_up2_fit),
        "mem pattern": single_pass(
            YuNetDetector(session(graph, mem_pattern=True)), 640, fit=fit_to_detector
        ),
        "parallel mode": single_pass(
            YuNetDetector(session(graph, parallel=True)), 640, fit=fit_to_detector
        ),
        "spinning": single_pass(
            YuNetDetector(session(graph, spinning=True)), 640, fit=fit_to_detector
        ),
        "offline-optimised": single_pass(offline, 640, fit=fit_to_detector),
        "child: FTZ off": children[0],
        "child: FTZ on": children[1],
    }
    passes: dict[str, tuple[YuNetDetector, int, Fit]] = {
        "640 block+area": (bgr_copy, 640, block_area_fit),
        "640 BGR planes": (detector, 640, block_area_fit),
        "640 up2+area": (detector, 640, block_up2_fit),
        "offline-optimised": (offline, 640, fit_to_detector),
    }
    if importlib.util.find_spec("onnx") is not None:
        store = ModelStore(settings.models)
        int8 = YuNetDetector(session(with_symbolic_input_size(int8_yunet(store, folder))))
        levers["int8 QDQ"] = single_pass(int8, 640, fit=fit_to_detector)
        passes["int8 QDQ"] = (int8, 640, fit_to_detector)
    levers["now (before)"] = now_lever(bgr_copy)
    levers["now"] = now_lever(detector)
    return levers, passes, children


def calibration_tensors(store: ModelStore) -> Iterator[dict[str, NDArray[np.float32]]]:
    """YuNet inputs for calibration, made from the example photos ``models pull`` fetches (never
    from ../shared): each flipped or not, at 640, 480, 320 and 200 px, darker, as is and
    brighter, padded to 640 × 640 (the graph as published)."""
    for spec in EXAMPLES:
        path = store.path_for(spec)
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            continue
        for flipped in (bgr, bgr[:, ::-1]):
            for side in (640, 480, 320, 200):
                factor = side / max(flipped.shape[:2])
                size = (round(flipped.shape[1] * factor), round(flipped.shape[0] * factor))
                small = cv2.resize(flipped, size, interpolation=cv2.INTER_AREA)
                for gain in (0.6, 1.0, 1.3):
                    tensor = np.zeros((1, 3, INPUT_SIZE_PX, INPUT_SIZE_PX), np.float32)
                    lit = np.clip(small.astype(np.float32) * gain, 0, 255)
                    tensor[0, :, : size[1], : size[0]] = lit.transpose(2, 0, 1)
                    yield {"input": tensor}


def int8_yunet(store: ModelStore, folder: Path) -> bytes:
    """YuNet statically quantized (QDQ, per-channel int8 weights, uint8 activations)."""
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._tensors = calibration_tensors(store)

        def get_next(self) -> dict[str, NDArray[np.float32]] | None:
            return next(self._tensors, None)

    published = onnx.load_from_string(store.read_verified(YuNetDetector.spec))
    # Per-channel DequantizeLinear needs opset 13; YuNet 2023mar is opset 11.
    onnx.save(version_converter.convert_version(published, 13), folder / "opset13.onnx")
    quant_pre_process(folder / "opset13.onnx", folder / "prepared.onnx", skip_symbolic_shape=True)
    quantize_static(
        folder / "prepared.onnx",
        folder / "int8.onnx",
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
    )
    return (folder / "int8.onnx").read_bytes()


def denormal_counts(model: bytes, photos: list[Path]) -> dict[str, Any]:
    """YuNet's float weights and how many are denormal; and the same for every intermediate
    tensor on every fourth photo at 640 px (a session with every node's output exposed, graph
    optimisation off); needs the onnx package for the latter."""
    tiny = np.finfo(np.float32).tiny
    weights = denormal = 0
    for tensor in initializer_arrays(model):
        weights += tensor.size
        denormal += int(((tensor != 0) & (np.abs(tensor) < tiny)).sum())
    counts: dict[str, Any] = {"yunet_weights": weights, "denormal_weights": denormal}
    if importlib.util.find_spec("onnx") is None:
        return counts
    import onnx

    graph = onnx.load_from_string(model)
    for node in graph.graph.node:
        for name in node.output:
            graph.graph.output.append(
                onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
            )
    every = session(graph.SerializeToString(), ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    values = denormal = 0
    sample = photos[::4]
    for path in sample:
        small, _ = fit_to_detector(decoded(path))
        padded = np.zeros((1, 3, INPUT_SIZE_PX, INPUT_SIZE_PX), np.float32)
        padded[0, :, : small.shape[0], : small.shape[1]] = input_tensor(small)[
            0, :, : small.shape[0], : small.shape[1]
        ]
        for output in every.run(None, {"input": padded}):
            array = np.asarray(output)
            if array.dtype == np.float32:
                values += array.size
                denormal += int(((array != 0) & (np.abs(array) < tiny)).sum())
    counts[f"activation_values_{len(sample)}_photos"] = values
    counts["denormal_activations"] = denormal
    return counts


def initializer_arrays(model: bytes) -> Iterator[NDArray[np.float32]]:
    """Every float32 initializer's values (raw_data or float_data), read on the wire."""
    from faceflow.models import protowire

    for top in protowire.parse(model):
        if top.number != 7 or top.wire_type != protowire.LEN:  # ModelProto.graph
            continue
        for field in protowire.parse(top.payload):
            if field.number != 5 or field.wire_type != protowire.LEN:  # GraphProto.initializer
                continue
            parts = protowire.parse(field.payload)
            if not any(p.number == 2 and p.payload == protowire.encode_varint(1) for p in parts):
                continue  # TensorProto.data_type FLOAT only
            for part in parts:
                if part.number in (4, 9) and part.wire_type in (protowire.LEN, protowire.I32):
                    yield np.frombuffer(part.payload, dtype="<f4")


class ChildLever:
    """The 640 px pass (shrunk as ``640 block+area``) in a child process whose first session has
    ``session.set_denormal_as_zero`` set as asked; it measures its own CPU."""

    def __init__(self, graph: bytes, *, flush_denormals: bool) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child_end = context.Pipe()
        self._process = context.Process(
            target=child_main, args=(child_end, graph, flush_denormals), daemon=True
        )
        self._process.start()
        child_end.close()

    def __call__(self, rgb: NDArray[np.uint8]) -> Boxes:
        return self._ask(rgb, 1)[0]

    def cpu_ms(self, rgb: NDArray[np.uint8], repeats: int) -> float:
        return self._ask(rgb, repeats)[1]

    def _ask(self, rgb: NDArray[np.uint8], repeats: int) -> tuple[Boxes, float]:
        self._conn.send((rgb, repeats))
        if not self._conn.poll(120):
            raise TimeoutError("the child pass did not answer within 120 s")
        boxes, ms = self._conn.recv()
        return boxes, ms

    def close(self) -> None:
        self._conn.send(None)
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()


def child_main(conn: Connection, graph: bytes, flush_denormals: bool) -> None:
    cv2.setNumThreads(1)
    lever = single_pass(
        YuNetDetector(session(graph, flush_denormals=flush_denormals)), 640, fit=fit_to_detector
    )
    while (request := conn.recv()) is not None:
        rgb, repeats = request
        conn.send((lever(rgb), cpu_ms(lever, rgb, repeats)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--repeats",
        type=int,
        default=5,
        help="timed calls per lever per photo, the median kept (default: %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument(
        "--levers",
        choices=("earlier", "new"),
        default="earlier",
        help="which levers: earlier (issue 13's first round) or new (its second round; "
        "default: %(default)s)",
    )
    args = parser.parse_args()

    cv2.setNumThreads(1)
    settings = Settings()
    context = load_context(settings.model_dump_json())
    detector = context.models.detector
    graph = with_symbolic_input_size(ModelStore(settings.models).read_verified(detector.spec))
    # Detection as it was before the input was built in one pass: same session options.
    bgr_copy = BgrCopyDetector(create_session("yunet", graph, settings.models))
    photos = sorted(
        p for folder in ("testdata", "devset") for p in (SHARED / folder).glob("*.[jp][pn]g")
    )
    notes: dict[str, Any] = {}
    children: list[ChildLever] = []
    passes: dict[str, tuple[YuNetDetector, int, Fit]]
    if args.levers == "earlier":
        levers = earlier_levers(detector, bgr_copy, graph)
        reference_name, before_name = "640 (before)", "640 (before)"
        passes = {
            "320": (bgr_copy, 320, area_fit),
            "480": (bgr_copy, 480, area_fit),
            "640 (before)": (bgr_copy, 640, area_fit),
            "640 block+area": (bgr_copy, 640, block_area_fit),
            "640 block+linear": (bgr_copy, 640, block_linear_fit),
        }
    else:
        notes = denormal_counts(ModelStore(settings.models).read_verified(detector.spec), photos)
        with tempfile.TemporaryDirectory() as folder:
            levers, passes, children = new_levers(
                detector, bgr_copy, graph, settings, Path(folder), notes
            )
        reference_name, before_name = "640 block+area", "now (before)"
    try:
        totals = dict.fromkeys(levers, 0.0)
        matches = dict.fromkeys(levers, 0)
        mismatched: dict[str, list[str]] = {name: [] for name in levers}
        for path in photos:
            rgb = decoded(path)
            reference = levers[reference_name](rgb)
            for name, lever in levers.items():
                if isinstance(lever, ChildLever):
                    totals[name] += lever.cpu_ms(rgb, args.repeats)
                else:
                    totals[name] += cpu_ms(lever, rgb, args.repeats)
                if same_faces(lever(rgb), reference):
                    matches[name] += 1
                else:
                    mismatched[name].append(path.name)
    finally:
        for child in children:
            child.close()
    before = totals[before_name]
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
    marks = landmark_rows(photos, bgr_copy, passes)
    groups = small_faces_rows(photos, detector, args.repeats)
    if args.json:
        print(
            json.dumps(
                {"levers": rows, "landmarks": marks, "small_faces": groups, "notes": notes},
                indent=1,
            )
        )
        return
    for key, value in notes.items():
        print(f"{key.replace('_', ' ')}: {value}")
    table = Table(title=f"detection levers, {len(photos)} photos, CPU ms on one thread")
    for column in (
        "lever",
        "CPU ms / photo",
        f"of {before_name}",
        f"same faces as {reference_name}",
        "differs on",
    ):
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


def landmark_rows(
    photos: list[Path],
    reference: YuNetDetector,
    passes: dict[str, tuple[YuNetDetector, int, Fit]],
) -> list[dict[str, Any]]:
    """Per pass (detector, long side, shrink): its landmarks against the ``640 (before)`` pass's
    (``reference`` at 640 px shrunk with ``INTER_AREA``), and its roll on known tilts."""
    roll_gaps: dict[str, list[float]] = {name: [] for name in passes}
    shifts: dict[str, list[float]] = {name: [] for name in passes}
    tilt_misses: dict[str, list[float]] = {name: [] for name in passes}
    for path in photos:
        rgb = decoded(path)
        ref_boxes, ref_marks, _ = pass_at(reference, rgb, 640)
        upright_rolls: dict[str, float] = {}
        for name, (detector, side, fit) in passes.items():
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
            for name, (detector, side, fit) in passes.items():
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
