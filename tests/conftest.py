"""Shared fixtures. Fixture modules live in tests/fixtures/ and are registered here."""

import os

# pytest-xdist's workers inherit COLUMNS=80; rich's module-level consoles (faceflow.cli) would fix
# that width when imported at collection, and the CLI tests' own COLUMNS (CliRunner's env) would
# no longer widen their tables. Without it a console measures its width on each print.
os.environ.pop("COLUMNS", None)

pytest_plugins = [
    "tests.fixtures.environment",
    "tests.fixtures.browser",
    "tests.fixtures.images",
    "tests.fixtures.live_server",
    "tests.fixtures.models",
    "tests.fixtures.redis_server",
]
