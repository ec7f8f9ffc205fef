#!/usr/bin/env bash
# Runs the whole suite under coverage, prints coverage of src/faceflow by package and, when run
# without arguments (the whole suite, as CI does), fails if the total is under pyproject.toml's
# fail_under; a run narrowed by arguments (-k, a path) only prints the figures. pyproject.toml's [tool.coverage.run] also measures
# pytest-xdist's workers, the inference processes and the `faceflow serve` subprocesses;
# COVERAGE_FILE is absolute so that every process, whatever its working directory, writes its
# data beside the others.
# One process by default: the suite's servers, inference processes and browser already use both
# cores of a 2-core machine, and its load-bound tests (leases, deadlines) are steadiest alone.
# Measured (issue 12.7, 2026-12-05, the jobs/runtime/cache tests and six server modules, load
# average ~10): one process 285.6 s of pytest, 94 CPU s; "-n 2 --dist loadscope" 287.9 s and
# 250.6 s, 118-125 CPU s (each worker starts its own session servers), and one of those two runs
# failed a test. ARGS="-n 2 --dist loadscope" runs it in two pytest-xdist workers, a module to a
# worker.
# pytest's exit code 5 ("no tests collected") is a failure here: a test command that ran nothing
# must not look green.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p artifacts/coverage
export COVERAGE_FILE="$PWD/artifacts/coverage/data"
.venv/bin/python -m coverage erase
.venv/bin/python -m coverage run -m pytest "$@"
rc=$?
if .venv/bin/python -m coverage combine --quiet \
  && .venv/bin/python -m coverage json --quiet --fail-under=0 -o artifacts/coverage/coverage.json; then
  .venv/bin/python scripts/coverage_summary.py artifacts/coverage/coverage.json
  if [ $# -eq 0 ] && ! .venv/bin/python -m coverage report --format=total >/dev/null; then
    echo "test.sh: total coverage under fail_under in pyproject.toml" >&2
    [ $rc -eq 0 ] && rc=2
  fi
else
  echo "test.sh: no coverage figures" >&2
  [ $rc -eq 0 ] && rc=1
fi
if [ $rc -eq 5 ]; then
  echo "test.sh: pytest collected no tests" >&2
  exit 1
fi
exit $rc
