"""faceflow.lazy: a package's names read from their modules only when first asked for."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from faceflow.lazy import lazy_attributes


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A package ``lazypkg`` with a submodule ``heavy`` that its ``__init__`` names lazily."""
    root = tmp_path / "lazypkg"
    root.mkdir()
    (root / "__init__.py").write_text(
        "from faceflow.lazy import lazy_attributes\n"
        "__getattr__ = lazy_attributes(__name__, {'answer': 'heavy'})\n"
    )
    (root / "heavy.py").write_text("answer = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "lazypkg"
    for name in [name for name in sys.modules if name.split(".")[0] == "lazypkg"]:
        del sys.modules[name]


def test_a_listed_name_imports_its_module_on_first_read_only(package: str) -> None:
    module = __import__(package)
    assert f"{package}.heavy" not in sys.modules
    assert module.answer == 42
    assert f"{package}.heavy" in sys.modules


def test_an_unlisted_name_is_an_attribute_error_naming_the_package() -> None:
    attribute = lazy_attributes("somepkg", {"answer": "heavy"})
    with pytest.raises(AttributeError, match="module 'somepkg' has no attribute 'question'"):
        attribute("question")
