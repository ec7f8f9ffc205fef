"""The one function that creates an ONNX Runtime session."""

from __future__ import annotations

import logging

import onnxruntime as ort

from faceflow.config import ModelSettings

log = logging.getLogger(__name__)


def create_session(name: str, model: bytes, settings: ModelSettings) -> ort.InferenceSession:
    """An inference session for ``model`` (verified bytes) with providers and threads from settings.

    Threads: faceflow scales by processes (one inference process per core), so each session gets
    ``intra_op_threads`` (default 1) and one inter-op thread. More threads per session would make
    the processes fight over the same cores and lower total throughput; a single-process
    deployment may raise it. Providers that this onnxruntime build lacks are dropped, and what the
    session actually got is logged.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning threads burn a core between requests for no gain when a process runs one session
    # at a time.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    available = set(ort.get_available_providers())
    providers = [p for p in settings.providers if p in available] or ["CPUExecutionProvider"]
    session = ort.InferenceSession(model, sess_options=options, providers=providers)
    log.info(
        "onnx session %s: providers=%s intra_op_threads=%d",
        name,
        session.get_providers(),
        settings.intra_op_threads,
    )
    return session
