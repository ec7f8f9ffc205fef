"""Shared fixtures. Fixture modules live in tests/fixtures/ and are registered here."""

pytest_plugins = [
    "tests.fixtures.environment",
    "tests.fixtures.browser",
    "tests.fixtures.images",
    "tests.fixtures.live_server",
    "tests.fixtures.models",
    "tests.fixtures.redis_server",
]
