"""faceflow.cli.flags: boolean flags keep typer's meaning without a pydantic adapter."""

from __future__ import annotations

from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from faceflow.cli import flags


def make_app(seen: dict[str, object]) -> typer.Typer:
    flags.install()
    app = typer.Typer()

    @app.command()
    def command(
        plain: Annotated[bool, typer.Option()] = False,
        paired: Annotated[bool, typer.Option("--paired/--unpaired")] = True,
        from_env: Annotated[bool, typer.Option(envvar="FLAGS_TEST_FROM_ENV")] = False,
        maybe: Annotated[bool | None, typer.Option("--maybe/--maybe-not")] = None,
    ) -> None:
        seen.update(plain=plain, paired=paired, from_env=from_env, maybe=maybe)

    return app


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        ([], {}, {"plain": False, "paired": True, "from_env": False, "maybe": None}),
        (
            ["--plain", "--unpaired", "--from-env", "--maybe-not"],
            {},
            {"plain": True, "paired": False, "from_env": True, "maybe": False},
        ),
        (["--maybe"], {"FLAGS_TEST_FROM_ENV": "true"}, {"from_env": True, "maybe": True}),
    ],
)
def test_flags_mean_what_they_meant(
    args: list[str], env: dict[str, str], expected: dict[str, object]
) -> None:
    seen: dict[str, object] = {}

    result = CliRunner().invoke(make_app(seen), args, env=env)

    assert result.exit_code == 0, result.output
    assert {name: seen[name] for name in expected} == expected


def test_install_twice_changes_nothing_more() -> None:
    flags.install()
    from typer.core import _TyperParameter

    first = _TyperParameter.get_runtime_param
    flags.install()

    assert _TyperParameter.get_runtime_param is first


def test_a_help_flag_still_prints_help() -> None:
    result = CliRunner().invoke(make_app({}), ["--help"])

    assert result.exit_code == 0
    assert "--paired" in result.output
