"""Every command-line option of the bench scripts says what it does: each ``add_argument`` call in
bench/*.py has a non-empty ``help=`` (``argparse.SUPPRESS`` counts: an option hidden on purpose).

The scripts are read with :mod:`ast`, never imported: most of them load models or start servers.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import TypeGuard

from tests.fixtures.environment import PROJECT_ROOT

BENCH = PROJECT_ROOT / "bench"


def _is_add_argument(node: ast.AST) -> TypeGuard[ast.Call]:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "add_argument"
    )


def _option_name(call: ast.Call) -> str:
    """The option's names as written (``--kill-image``, ``command``), or the call's source."""
    names = [
        arg.value
        for arg in call.args
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
    ]
    return "/".join(names) if names else ast.unparse(call)


def _has_help(call: ast.Call) -> bool:
    for keyword in call.keywords:
        if keyword.arg == "help":
            value = keyword.value
            if isinstance(value, ast.Constant):
                return isinstance(value.value, str) and bool(value.value.strip())
            return True  # built at run time (a join over choices, argparse.SUPPRESS)
    return False


def options_without_help(source: str) -> list[str]:
    """The names of the options ``source`` adds without a help text, in source order."""
    calls = [node for node in ast.walk(ast.parse(source)) if _is_add_argument(node)]
    return [
        _option_name(call)
        for call in sorted(calls, key=lambda c: (c.lineno, c.col_offset))
        if not _has_help(call)
    ]


def bench_scripts() -> list[Path]:
    return sorted(BENCH.glob("*.py"))


def test_the_check_flags_an_option_without_help_and_passes_one_with_it() -> None:
    source = (
        "import argparse\n"
        "parser = argparse.ArgumentParser()\n"
        "parser.add_argument('--rounds', type=int, default=3)\n"
        "parser.add_argument('--seconds', help='')\n"
        "parser.add_argument('--json', action='store_true', help='print JSON')\n"
        "parser.add_argument('--child', help=argparse.SUPPRESS)\n"
    )

    assert options_without_help(source) == ["--rounds", "--seconds"]


def test_the_bench_scripts_are_found_and_have_options() -> None:
    scripts = bench_scripts()
    with_options = [
        path.name
        for path in scripts
        if any(_is_add_argument(node) for node in ast.walk(ast.parse(path.read_text())))
    ]

    assert len(scripts) > 1, f"no bench scripts under {BENCH}"
    assert "miss_cpu.py" in with_options


def test_every_bench_option_has_a_help_text() -> None:
    missing = {
        path.name: names
        for path in bench_scripts()
        if (names := options_without_help(path.read_text(encoding="utf-8")))
    }

    assert not missing, "add_argument calls without help=: " + "; ".join(
        f"bench/{name} {', '.join(names)}" for name, names in missing.items()
    )
