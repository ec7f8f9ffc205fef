"""Fixtures of the CLI tests that run commands in process (``typer.testing.CliRunner``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import TYPE_CHECKING, cast

import pytest

from faceflow.cli import files
from faceflow.models.segmenter import U2NetpSegmenter
from faceflow.runtime.context import WorkerContext, load_context
from tests.fixtures.idphoto import RememberingSession

if TYPE_CHECKING:
    import onnxruntime as ort


@pytest.fixture(scope="module")
def loaded_contexts() -> Iterator[dict[str, WorkerContext]]:
    """The contexts a module's commands loaded, by their settings (see
    ``commands_load_models_once``), released with the module."""
    contexts: dict[str, WorkerContext] = {}
    yield contexts
    contexts.clear()


@pytest.fixture
def commands_load_models_once(
    monkeypatch: pytest.MonkeyPatch, loaded_contexts: dict[str, WorkerContext]
) -> None:
    """Each command run in this process loads its models once per settings for the module, with
    a u2netp that answers each network input once (:class:`RememberingSession`).

    A command loads its models at every run (~0.2 s of a core): test_analyze.py ran `analyze` in
    process 28 times with one settings; test_idphoto_cli.py ran `id-photo` 14 times, matting
    portrait_1 and portrait_2 15 times (4 distinct u2netp inputs, ~0.5 s of a core each).
    The real :func:`load_context` still loads each settings' context once, and the command's own
    code runs on every call; only the loaded models and onnxruntime's answer to an input it has
    seen are kept. A command run as a subprocess (the interrupt tests) loads its own."""

    def load_once(settings_json: str) -> WorkerContext:
        if settings_json not in loaded_contexts:
            context = load_context(settings_json)
            if (segmenter := context.models.portrait_segmenter) is not None:
                session = cast("ort.InferenceSession", RememberingSession(segmenter._session))
                models = dataclasses.replace(
                    context.models, portrait_segmenter=U2NetpSegmenter(session)
                )
                context = dataclasses.replace(context, models=models)
            loaded_contexts[settings_json] = context
        return loaded_contexts[settings_json]

    monkeypatch.setattr(files, "load_context", load_once)
