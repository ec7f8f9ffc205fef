#!/usr/bin/env bash
# Runs the suite under coverage, prints coverage of src/faceflow by package and, when run without
# arguments (the whole suite, as CI does), fails if the total is under pyproject.toml's
# fail_under; a run narrowed by arguments (-k, a path) only prints the figures. pyproject.toml's
# [tool.coverage.run] also measures pytest-xdist's workers, the inference processes and the
# `faceflow serve` subprocesses; COVERAGE_FILE is absolute so that every process, whatever its
# working directory, writes its data beside the others.
# The whole suite runs in three pytest-xdist workers, a test module to each, handed out in
# collection order (tests/conftest.py puts the longest modules first): much of a test's time is
# waiting (servers starting, leases, a browser), which the other workers fill. A run narrowed by
# arguments runs in one process unless the arguments ask for workers (-n). What each choice was
# measured against, and where the CPU goes: docs/test-suite.md.
# pytest's exit code 5 ("no tests collected") is a failure here: a test command that ran nothing
# must not look green.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p artifacts/coverage
export COVERAGE_FILE="$PWD/artifacts/coverage/data"
# Every process of the run (pytest's workers, ~150 servers, inference processes and CLIs) imports
# faceflow and the tests: with PYTHONDONTWRITEBYTECODE set (some shells and CI images set it) each
# compiled them again, and pytest rewrote every test module's asserts in each worker. Bytecode goes
# to the gitignored __pycache__ folders as usual: measured (issue 12.7), collecting the suite took
# 3.1 s of CPU instead of 7.2, importing the server's modules 0.79 s instead of 0.98.
unset PYTHONDONTWRITEBYTECODE
.venv/bin/python -m coverage erase
if [ $# -eq 0 ]; then
  set -- -n 3 --dist loadscope --no-loadscope-reorder
  whole=1
else
  whole=0
fi
.venv/bin/python -m coverage run -m pytest "$@"
rc=$?
# One pass over the data: `coverage json` writes the figures and exits 2 when the total is under
# pyproject.toml's fail_under (a second `coverage report` pass cost 0.8 s of a core).
json_rc=1
if .venv/bin/python -m coverage combine --quiet; then
  .venv/bin/python -m coverage json --quiet -o artifacts/coverage/coverage.json >/dev/null
  json_rc=$?
fi
if [ $json_rc -eq 0 ] || [ $json_rc -eq 2 ]; then
  .venv/bin/python scripts/coverage_summary.py artifacts/coverage/coverage.json
  if [ $whole -eq 1 ] && [ $json_rc -eq 2 ]; then
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
