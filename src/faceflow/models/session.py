"""The one function that creates an ONNX Runtime session."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from faceflow.config import ModelSettings

if TYPE_CHECKING:
    import onnxruntime as ort

log = logging.getLogger(__name__)


def create_session(
    name: str, model: bytes, settings: ModelSettings, *, arena: bool = True
) -> ort.InferenceSession:
    """An inference session for ``model`` (verified bytes) with providers and threads from settings.

    Threads: faceflow scales by processes (one inference process per core), so each session gets
    ``intra_op_threads`` (default 1) and one inter-op thread. More threads per session would make
    the processes fight over the same cores and lower total throughput; a single-process
    deployment may raise it. Providers that this onnxruntime build lacks are dropped, and what the
    session actually got is logged.

    Memory (measured with bench/rss.py): ``arena`` (default) keeps onnxruntime's CPU arena, which
    holds a run's peak of intermediate tensors for the next run, with the memory pattern off:
    a pattern is planned and kept per input shape, and the detector's shapes vary with every
    photo's aspect ratio, as the attribute models' batch does with the face count (YuNet over
    9 shapes: +26 MB with patterns, +10 MB without, same speed). ``arena=False`` suits a model
    with one input shape and a large peak (u2netp: ≈ 290 MB of intermediates at 320 × 320,
    which an arena would hold for the life of the process, 500 MB once the pattern's own block
    is added): the pattern then plans one block per run, allocated and returned whole.
    """
    # Imported here, not at the top: the API process imports the model classes (task requests
    # name them) but never runs one, and onnxruntime costs it ≈ 30 MB.
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_cpu_mem_arena = arena
    options.enable_mem_pattern = not arena
    # Spinning threads burn a core between requests for no gain when a process runs one session
    # at a time.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    available = set(ort.get_available_providers())
    providers = [p for p in settings.providers if p in available] or ["CPUExecutionProvider"]
    session = ort.InferenceSession(model, sess_options=options, providers=providers)
    log.info(
        "onnx session %s: providers=%s intra_op_threads=%d arena=%s",
        name,
        session.get_providers(),
        settings.intra_op_threads,
        arena,
    )
    return session
