"""Shared fixtures. Fixture modules live in tests/fixtures/ and are registered here."""

import os
from collections import Counter

import pytest

# pytest-xdist's workers inherit COLUMNS=80; rich's module-level consoles (faceflow.cli) would fix
# that width when imported at collection, and the CLI tests' own COLUMNS (CliRunner's env) would
# no longer widen their tables. Without it a console measures its width on each print.
os.environ.pop("COLUMNS", None)

# Each before the plugins that import it: pytest imports it first and rewrites its asserts.
pytest_plugins = [
    "tests.fixtures.environment",
    "tests.fixtures.live_server",
    "tests.fixtures.models",
    "tests.fixtures.browser",
    "tests.fixtures.images",
    "tests.fixtures.redis_server",
]


# The longest modules of a full run, longest first (seconds in one busy run of 2026-12-05, load
# ~15, two xdist workers: the order matters, not the figures). pytest-xdist's loadscope hands
# modules out most tests first, which put these single-test modules last: one worker then ran
# test_verdicts alone for its last 212 s. Handed out first, they overlap the many short modules.
LONGEST_MODULES = (
    "tests/pipeline/idphoto/",  # 212 (test_verdicts alone), handed out whole: SHARED_PACKAGES
    "tests/service/test_web_page.py",  # 165
    "tests/service/test_web_page_tools.py",  # 110
    "tests/service/test_idphoto_api.py",  # 101
    "tests/service/test_jobs_api.py",  # 84
    "tests/jobs/test_supervisor.py",  # 79
    "tests/service/test_system.py",  # 79
    "tests/jobs/test_cluster.py",  # 79
    "tests/cli/test_serve.py",  # 78
    "tests/service/test_openapi.py",  # 77
    "tests/service/test_upload_forms.py",  # 75
    "tests/runtime/test_pool.py",  # 65
    "tests/cli/test_analyze.py",  # 62
    "tests/service/test_hotpath.py",  # 61
    # Short but few tests, so loadscope's order put them last, one worker running them alone at
    # the end (2026-12-05, 13:51 and 13:59 UTC, load 3-10: the last 10-27 s of the run). The
    # first is mostly a deliberate 8 s stall, which the other worker's compute fills.
    "tests/cli/test_serve_workers.py",  # 17-28
    "tests/service/test_pool_limits.py",  # 10-19
    "tests/service/test_shared_cache.py",  # 7-20
)


# Packages whose tests share package-scoped fixtures too costly to build twice: each is handed to
# one worker whole. The ID-photo pipeline's tests share the cut-outs of their conftest.py (one
# u2netp run each, ~0.5 s of a core): handed out module by module, the modules that read the same
# portraits ran on different workers and each matted them again. Measured on an idle 2-core EPYC
# (2026-12-06): its modules' durations summed to 178 s on three workers, the package alone in
# one process takes 62 s.
SHARED_PACKAGES = ("tests/pipeline/idphoto/",)


def work_unit(nodeid: str) -> str:
    """The scope a test is scheduled with: its package for SHARED_PACKAGES, else its module."""
    module = nodeid.split("::", 1)[0]
    return next((package for package in SHARED_PACKAGES if module.startswith(package)), module)


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """loadscope (scripts/test.sh), with :func:`work_unit`'s scopes."""
    if config.getoption("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SharedPackageScheduling(LoadScopeScheduling):  # type: ignore[misc]  # untyped
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return SharedPackageScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In pytest-xdist's workers (whose collection the controller schedules from, in order, with
    ``--no-loadscope-reorder``, see scripts/test.sh): :data:`LONGEST_MODULES` first, then the
    others most tests first, as loadscope's own order. A run in one process keeps pytest's
    order."""
    if not hasattr(config, "workerinput"):
        return
    rank = {path: index for index, path in enumerate(LONGEST_MODULES)}
    sizes = Counter(work_unit(item.nodeid) for item in items)

    def key(item: pytest.Item) -> tuple[int, int]:
        unit = work_unit(item.nodeid)
        return rank.get(unit, len(rank)), -sizes[unit]

    items.sort(key=key)  # stable: a module's tests keep their order
