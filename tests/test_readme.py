"""The README is the front door: its settings table and its two commands must stay true."""

from __future__ import annotations

from pydantic import BaseModel

from faceflow.config import Settings
from faceflow.service.metrics import Metrics
from tests.fixtures.environment import PROJECT_ROOT

README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_documented_with_its_environment_variable() -> None:
    settings = Settings()
    missing = []
    for group in Settings.model_fields:
        values = getattr(settings, group)
        assert isinstance(values, BaseModel)
        for name in type(values).model_fields:
            if f"`FACEFLOW_{group.upper()}__{name.upper()}`" not in README:
                missing.append(f"{group}.{name}")
    assert not missing, f"README configuration table lacks {missing}; run scripts/config_table.py"


def test_readme_gives_the_two_commands_and_ci_runs_the_same_test_command() -> None:
    assert "make serve" in README
    assert "make test" in README
    ci = (PROJECT_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in ci


def test_every_metric_is_documented() -> None:
    # Counters are scraped with a _total suffix, and the README names them as scraped.
    scraped = [
        f"{family.name}_total" if family.type == "counter" else family.name
        for family in Metrics().registry.collect()
    ]
    missing = [name for name in scraped if f"`{name}`" not in README]
    assert not missing, f"README's metrics table lacks {missing}"
