"""The session factory: thread counts and providers as configured, unavailable ones dropped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import onnxruntime as ort
import pytest

from faceflow.config import ModelSettings
from faceflow.models.catalog import model_spec
from faceflow.models.registry import ModelSet
from faceflow.models.session import create_session
from faceflow.models.store import ModelStore

UNAVAILABLE_PROVIDER = "NoSuchExecutionProvider"


@pytest.fixture(scope="module")
def yunet_bytes(pulled_model_settings: ModelSettings) -> bytes:
    return ModelStore(pulled_model_settings).read_verified(model_spec("yunet"))


@pytest.mark.parametrize("threads", [1, 3])
def test_session_uses_the_configured_intra_op_threads(yunet_bytes: bytes, threads: int) -> None:
    session = create_session("yunet", yunet_bytes, ModelSettings(intra_op_threads=threads))

    options = session.get_session_options()
    assert options.intra_op_num_threads == threads
    assert options.inter_op_num_threads == 1


@pytest.mark.parametrize(
    "providers",
    [
        [UNAVAILABLE_PROVIDER, "CPUExecutionProvider"],
        [UNAVAILABLE_PROVIDER],
    ],
)
def test_unavailable_providers_are_dropped_and_cpu_remains(
    yunet_bytes: bytes, providers: list[str]
) -> None:
    assert UNAVAILABLE_PROVIDER not in ort.get_available_providers()

    session = create_session("yunet", yunet_bytes, ModelSettings(providers=providers))

    assert session.get_providers() == ["CPUExecutionProvider"]


@pytest.mark.parametrize("arena", [True, False])
def test_arena_and_memory_pattern_are_exclusive(yunet_bytes: bytes, arena: bool) -> None:
    session = create_session("yunet", yunet_bytes, ModelSettings(), arena=arena)

    options = session.get_session_options()
    assert options.enable_cpu_mem_arena is arena
    assert options.enable_mem_pattern is not arena


def test_the_segmenter_runs_without_an_arena(model_set: ModelSet) -> None:
    options = model_set.segmenter._session.get_session_options()

    assert options.enable_cpu_mem_arena is False


_SESSION_AFTER_FACEFLOW = """
import sys
from faceflow.config import ModelSettings
from faceflow.models.session import create_session
create_session("yunet", sys.stdin.buffer.read(), ModelSettings())
"""

_SESSION_ALONE = """
import sys
import onnxruntime
onnxruntime.InferenceSession(sys.stdin.buffer.read(), providers=["CPUExecutionProvider"])
"""


def test_a_session_made_through_faceflow_leaves_no_onnxruntime_telemetry(
    yunet_bytes: bytes, tmp_path: Path
) -> None:
    """onnxruntime records usage telemetry at a process's first session (a device id and a
    queue of events under ~/.cache/Microsoft, posted to Microsoft where the network reaches):
    importing faceflow first turns it off. Each child has a home of its own, no
    ORT_DISABLE_TELEMETRY of its own (this process has faceflow's) and no CI variable:
    onnxruntime records nothing where CI is set, as under .ci/run, but does on a server."""

    def telemetry_after(script: str, home: Path) -> list[Path]:
        home.mkdir()
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("ORT_DISABLE_TELEMETRY", "XDG_CACHE_HOME", "CI")
        }
        env["HOME"] = str(home)
        subprocess.run(
            [sys.executable, "-c", script], input=yunet_bytes, env=env, check=True, timeout=120
        )
        return [path for path in home.rglob("*") if path.is_file()]

    assert telemetry_after(_SESSION_ALONE, tmp_path / "alone"), (
        "this onnxruntime records no telemetry at all: the check below cannot fail"
    )
    assert telemetry_after(_SESSION_AFTER_FACEFLOW, tmp_path / "faceflow") == []
