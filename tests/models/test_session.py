"""The session factory: thread counts and providers as configured, unavailable ones dropped."""

from __future__ import annotations

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
