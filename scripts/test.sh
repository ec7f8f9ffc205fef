#!/usr/bin/env bash
# Runs the suite under coverage, prints coverage of src/faceflow by package and, when run without
# arguments (the whole suite, as CI does), fails if the total is under pyproject.toml's
# fail_under; a run narrowed by arguments (-k, a path) only prints the figures. pyproject.toml's
# [tool.coverage.run] also measures pytest-xdist's workers, the inference processes and the
# `faceflow serve` subprocesses; COVERAGE_FILE is absolute so that every process, whatever its
# working directory, writes its data beside the others.
# The whole suite runs in three pytest-xdist workers (two until the fifth round below), a test
# module to each: much of a test's time is waiting (servers starting, leases, a browser), which
# the other workers fill. Measured on an
# idle 2-core machine (2026-12-05, 1,869 tests): 203 s of pytest in two workers, against 362 s in
# one process earlier the same day (before that round's test changes); 299 s for 1,883 tests on
# a later idle VM of the same size, with 434 s of CPU (-n 3: 285 s). On a busy machine the
# two workers cost ~20 % more CPU (each starts its own session servers). A run narrowed by
# arguments runs in one process unless the arguments ask for workers (-n).
# Issue 12.7 round of 2026-12-05 (1,883 tests, never idle: three other engineers' work): with the
# web page's kept renderer (tests/fixtures/browser.py), `make test` at 11:58 UTC (load 4-9)
# 422 s of pytest, 425 s of user+sys; the code before it at 12:09 (load 2-6) 307 s, 463 s.
# user+sys misses part of Chromium (renderers not reaped into this script's children): sampled
# per process, the two web page modules took 145 s of CPU before, 107 s after. Coverage is ~22 %
# of the CPU (304 s against 236 s without it, load 13-20): ~0.45 s per measured process start
# (about 150 processes: servers, inference processes, CLIs), ~15 % of in-process compute.
# Idle, same VM: 200 s of pytest (205 s total, 285 s of user+sys) at 10:51 UTC for 1,883 tests;
# 291 s (301 s total, 456 s) at 12:22 for 1,910 tests after that round's merges, when the VM ran
# ~40 % slower per CPU-second than at 10:51 (bench/jobs.py's ceiling: 18.3 against 13.1 ms a job).
# Third round (2026-12-05, 1,910 tests, never idle: others' benchmarks ran throughout). Sampled
# per process from /proc, a run's CPU is ~125-140 s in the two pytest workers, ~80-90 s in ~90
# inference processes, ~65-70 s in Chromium (~157 processes), ~30 s in 17 `faceflow serve`. With
# bytecode caches written and the short last modules handed out early, back to back at 14:54 and
# 14:58 UTC: before 225 s of pytest, 308 s of user+sys (load median 5.3); after 195 s, 286 s (load
# median 3.7, mostly this run). Both workers now end within 3 s of each other (were 10-27 s).
# Modules are handed out in the workers' collection order (--no-loadscope-reorder), which
# tests/conftest.py starts with the longest modules: loadscope's own order (most tests first) left
# the longest single-test modules for last, one worker running them alone at the end.
# Fourth round (issue 12.7, 2026-12-05 15:26-15:37 UTC, load 5-9, others' work running), CPU of
# every process of the run by scripts/cpu_time.py (a subreaper: renderers and orphans counted),
# one process, no coverage. test_web_page.py: 57 s, of which Chromium's browser process 11 s,
# Playwright's driver 2.6 s, 6 inference processes 8.6 s, 4 servers 3.1 s. Launch flags: Playwright
# 1.65 already passes --disable-extensions, -default-apps, -background-networking,
# -component-update, --no-first-run and --disable-features=OptimizationHints,...; adding
# --process-per-site changed nothing (test_web_page.py B 59.1 s, A 58.4; test_web_page_tools.py
# A 50.5 s, B 47.4: noise), the kept renderer already shares them. Kept pages cost nothing idle
# (4 contexts idle 2 s or 22 s: 5.1-5.4 s either way); a new context and its first page ~1 s.
# Dropping --disable-gpu (a GPU process composites): test_web_page_tools.py 52.0 s, 52.0 against
# 51.6, 49.4 with it (A B A B, 15:35-15:38, load 4.4-6).
# Fifth round (issue 12.7, 2026-12-05 16:15-17:10 UTC, idle 2-core Xeon VM, cpu_time.py around
# `make test`, 1,925 tests). Before: 156-164 s of pytest, 269 s of CPU (without coverage 141 s,
# 214 s). Sampled per process, a pytest worker spends ~70 % of its test time waiting on its
# subprocesses (87 s of CPU in 287 s of tests): the supervisor's leases, the browser, servers.
# Debian's chromium-headless-shell instead of `chromium --headless` (tests/fixtures/browser.py):
# 147 s, 233 s of CPU. Then three workers instead of two: 134 s and 135 s, 251-254 s of CPU (a
# third worker's collection and session servers cost ~20 s of CPU; the waits it fills are worth
# more). Not kept: the waiting modules (supervisor, serve_workers, pool, load_limits, cluster) in
# one xdist group of their own, -n 3 --dist loadgroup: 158 s, 296 s of CPU. Python 3.12 with
# coverage's sys.monitoring core: 28.1 against 29.9 s on the pipeline, cache and faces modules,
# not worth another interpreter. As merged, 17:14 UTC: 133.7 s idle; 203 s beside two busy loops
# (one per core): within the 6 minutes a busy machine is given, not yet the 2 idle ones.
# Sixth round (issue 12.7, 2026-12-05 17:40-19:00 UTC, idle 2-core Xeon VM slower than the fifth
# round's: 156-159 s of pytest, 295-301 s of CPU; without coverage 130 s, 238 s). The run is
# CPU-bound (2 cores x the wall ~ its CPU). Per process: pytest workers ~115 s, ~100 inference
# and pool processes ~82 s, Chromium ~31 s, 20 servers ~26 s. Coverage's own start is ~0.065 s
# in every Python process (its import); the inference processes started it twice (the
# multiprocessing patch beside the subprocess one: dropped, the same lines covered, 7 % less CPU
# over the pool's tests), schemathesis's unused pytest plugin is no longer loaded, and the
# figures take one pass over the data instead of two. Over the whole suite these are inside the
# VM's own swing between runs (163-172 s either way, alternated twice). py-spy over a whole run
# (the pytest workers and, with --subprocesses, everything they start) then found two wastes in
# the tests themselves: httpx loading the CA bundle for every client, even for http:// (9 s; the
# clients now share one context: the two largest client modules 20.5 -> 16.8 s of CPU, alternated
# twice), and the fixtures hashing every model at every app and server (now the stamp check
# `faceflow serve` does). What it shows left: in an inference process started by a test, imports
# are ~45 % of its life (the interpreter's site and coverage's .pth, faceflow.config's pydantic,
# numpy, OpenCV, onnxruntime): a forkserver preloading them would save ~0.3-0.4 s a process, at
# ~94 MB more RSS for the forkserver in every server; not done. The VM slowed through the session
# (the same code 156 s at 17:45 UTC, 181 s at 18:45), so whole-suite A/B pairs must alternate:
# this round's changes against the round's start, alternated twice at 18:46-18:59 UTC: 178.1 and
# 182.7 s (338 and 349 s of CPU) against 180.3 and 178.5 s (345 and 342): no change the VM's
# swing lets one read (py-spy's 9 s for the SSL contexts counts wall time in a busy process, not
# CPU; measured per module it was 3.7 s).
# Seventh round (issue 12.7, 2026-12-05 19:40-20:00 UTC, idle 2-core Xeon VM, 1,925 tests):
# 152-158 s of pytest. Sampled per process: the 3 pytest workers 111 s of CPU (each waits on
# its subprocesses ~75 % of its test time), ~100 inference processes 85 s (60 started by the
# pytest workers for the pool's own tests, 0.4 s each; 23 under servers, 1.9 s each: working),
# Chromium 35 s, 19 servers 25 s; besides, the VM's own kdamond, beam.smp and nats ~25 s. A
# multiprocessing forkserver preloading numpy, OpenCV and onnxruntime for the inference
# processes (the lever the sixth round named) was tried: 153.7 s against 153.4 and 161 s
# without, no gain (the processes it would speed up spend little on imports), not kept.
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
