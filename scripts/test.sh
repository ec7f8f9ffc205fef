#!/usr/bin/env bash
# Runs the whole suite under coverage, then prints coverage of src/faceflow by package (no
# threshold yet). pyproject.toml's [tool.coverage.run] also measures the inference processes and
# the `faceflow serve` subprocesses; COVERAGE_FILE is absolute so that every process, whatever
# its working directory, writes its data beside the others.
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
  && .venv/bin/python -m coverage json --quiet -o artifacts/coverage/coverage.json; then
  .venv/bin/python scripts/coverage_summary.py artifacts/coverage/coverage.json
else
  echo "test.sh: no coverage figures" >&2
fi
if [ $rc -eq 5 ]; then
  echo "test.sh: pytest collected no tests" >&2
  exit 1
fi
exit $rc
