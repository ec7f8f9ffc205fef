"""The compute ceiling: the service's own task, in this process, one image at a time, one thread."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import TypeVar

from faceflow.config import Settings
from faceflow.runtime.context import WorkerContext, load_context, warm_up

Req = TypeVar("Req")


def single_thread_rate(
    settings: Settings,
    task: Callable[[WorkerContext, Req], object],
    requests: Callable[[int], Req],
    repeats: int = 40,
) -> float:
    """Tasks per second for ``task`` on ``requests(i)``, median of ``repeats`` timed runs.

    The context is the inference processes' own (same settings, one ONNX thread each), so the
    figure times exactly what a worker does per request. Multiply by the number of inference
    processes for the ceiling the service is measured against.
    """
    context = load_context(settings.model_dump_json())
    warm_up(context)
    task(context, requests(-1))
    times = []
    for index in range(repeats):
        request = requests(index)
        start = time.perf_counter()
        task(context, request)
        times.append(time.perf_counter() - start)
    return 1.0 / statistics.median(times)
