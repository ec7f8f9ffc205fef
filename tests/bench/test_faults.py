"""The pure parts of bench/faults.py: reading a metric off /metrics, and the markdown table."""

from __future__ import annotations

import importlib.util
import math
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "faults.py"


@pytest.fixture(scope="module")
def faults() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_faults", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


EXPOSITION = """\
# HELP faceflow_redis_errors_total failed or timed-out Redis calls
# TYPE faceflow_redis_errors_total counter
faceflow_redis_errors_total{op="get"} 3.0
faceflow_redis_errors_total{op="set"} 2.0
faceflow_redis_errors_created{op="get"} 1.7e+09
# TYPE faceflow_pool_ready_workers gauge
faceflow_pool_ready_workers 2.0
faceflow_pool_ready_workers_extra 9.0
"""


def test_a_metric_is_the_sum_of_its_samples_over_labels(faults: ModuleType) -> None:
    assert faults.metric_value(EXPOSITION, "faceflow_redis_errors_total") == 5.0
    assert faults.metric_value(EXPOSITION, "faceflow_pool_ready_workers") == 2.0


def test_a_metric_without_samples_is_nan(faults: ModuleType) -> None:
    assert math.isnan(faults.metric_value(EXPOSITION, "faceflow_redis_breaker_open"))


def test_the_table_is_markdown_with_a_row_per_fault_and_pipes_escaped(faults: ModuleType) -> None:
    rows = [
        faults.FaultRow("process killed", "200", "back in 5 s"),
        faults.FaultRow("Redis hung", "a | b", "fail\nopen"),
    ]

    lines = faults.faults_table(rows).splitlines()

    assert lines[0] == "| fault | what clients got | recovery, figures |"
    assert lines[1] == "|---|---|---|"
    assert lines[2] == "| process killed | 200 | back in 5 s |"
    assert lines[3] == "| Redis hung | a \\| b | fail open |"
    assert len(lines) == 4


def test_figures_are_formatted_for_the_table(faults: ModuleType) -> None:
    assert faults.fmt_ms(8.44) == "8.4 ms"
    assert faults.fmt_ms(312.4) == "312 ms"
    assert faults.fmt_ms(float("nan")) == "–"
    assert faults.fmt_counts(Counter({"overloaded": 2, "worker_crashed": 5})) == (
        "5 × worker_crashed, 2 × overloaded"
    )
    assert faults.percentile_ms([0.010, 0.020, 0.030], 50) == pytest.approx(20.0)
    assert math.isnan(faults.percentile_ms([], 99))


def test_a_metric_can_be_narrowed_to_some_labels(faults: ModuleType) -> None:
    assert faults.metric_value(EXPOSITION, "faceflow_redis_errors_total", 'op="set"') == 2.0
    assert math.isnan(faults.metric_value(EXPOSITION, "faceflow_redis_errors_total", 'op="x"'))
