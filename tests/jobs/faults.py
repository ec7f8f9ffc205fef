"""A ``faceflow worker`` whose jobs can be told to hold or to crash: test and benchmark code only.

Run as ``python -m tests.jobs.faults -n N`` from the repository root (settings from the
environment, as ``faceflow worker``). It is the real supervisor and the real worker processes;
the only difference is a ``before_job`` callable injected in code:

* a job whose image bytes contain ``FF-GATE=<path>`` (:class:`Gate`) waits until the file
  ``<path>`` exists (at most :data:`GATE_BOUND_S`), so a test holds a worker mid-job exactly as
  long as it needs to (to kill it, to stop its queue Redis, to fill the queue) and lets it go by
  creating the file (:meth:`Gate.release`), instead of every held job costing a fixed time;
* one containing :data:`HOLD_MARKER` sleeps :data:`HOLD_S` first (bench/jobs.py's recovery rows,
  which time the recovery of a job of known length);
* one containing :data:`CRASH_MARKER` kills its own worker process with SIGKILL on every
  attempt (a poison job);
* with :data:`START_GATE_ENV` naming a file in the environment, each worker process holds the
  loading of its models until that file exists (at most :data:`GATE_BOUND_S`), so a test
  signals a worker that is still starting, at a moment it chose.

No setting can switch this on in a production worker.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import time
from multiprocessing.synchronize import Event
from pathlib import Path

from faceflow.config import load_settings
from faceflow.jobs.records import JobPayload
from faceflow.jobs.supervisor import Supervisor, worker_process_main
from faceflow.logs import configure_logging
from faceflow.runtime.context import WorkerContext, load_context

HOLD_MARKER = b"FF-HOLD"
CRASH_MARKER = b"FF-CRASH"
HOLD_S = 4.0
GATE_MARKER = "FF-GATE="
# A bound, not a margin: a test releases its gates within seconds; one that fails before it does
# must not leave a worker (and the fixture's stop, which waits for the current job) hanging.
GATE_BOUND_S = 120.0
_GATE = re.compile(rb"FF-GATE=(\S+)")
_GATE_POLL_S = 0.02
START_GATE_ENV = "FF_START_GATE"
START_GATE_LINE = "start gate: holding the model load"

log = logging.getLogger(__name__)


def inject_faults(payload: JobPayload) -> None:
    """Hold or crash according to the markers in the job's image bytes."""
    gate = _GATE.search(payload.data)
    if gate is not None:
        path = Path(gate.group(1).decode())
        log.warning("gate marker: holding until %s exists", path)
        _wait_for(path)
    if HOLD_MARKER in payload.data:
        log.warning("hold marker: sleeping %.1f s", HOLD_S)
        time.sleep(HOLD_S)
    if CRASH_MARKER in payload.data:
        log.warning("crash marker: killing this worker process (pid %d)", os.getpid())
        os.kill(os.getpid(), signal.SIGKILL)


def _wait_for(path: Path) -> None:
    """Until ``path`` exists, at most :data:`GATE_BOUND_S`."""
    deadline = time.monotonic() + GATE_BOUND_S
    # Another process creates the file: nothing can signal this one.
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(_GATE_POLL_S)


def held_load(settings_json: str) -> WorkerContext:
    """The worker's loading of its models, held first while the start gate (if any) is shut."""
    gate = os.environ.get(START_GATE_ENV)
    if gate:
        log.warning("%s (pid %d) until %s exists", START_GATE_LINE, os.getpid(), gate)
        _wait_for(Path(gate))
    return load_context(settings_json)


class Gate:
    """A file that jobs marked with :attr:`marker` wait for: they hold their worker until
    :meth:`release` creates it (or :data:`GATE_BOUND_S` has passed)."""

    def __init__(self, path: Path) -> None:
        # The marker ends at the first whitespace.
        assert not re.search(r"\s", str(path)), f"a gate path with whitespace: {path}"
        self.path = path

    @property
    def marker(self) -> str:
        """For :func:`tests.jobs.support.variant`: a job whose image carries it is held."""
        return GATE_MARKER + str(self.path)

    def release(self) -> None:
        """Let every job held on this gate go on (and any started later). Idempotent."""
        self.path.touch()


def faulty_process_main(settings_json: str, slot: int, ready: Event, log_level: str) -> None:
    """A worker process entry point (importable by name, as spawn needs) with the faults on."""
    worker_process_main(
        settings_json, slot, ready, log_level, before_job=inject_faults, load=held_load
    )


def main() -> int:
    parser = argparse.ArgumentParser(description="faceflow worker with test faults")
    parser.add_argument("-n", "--processes", type=int, default=2)
    args = parser.parse_args()
    settings = load_settings()
    configure_logging(settings.server.log_level, settings.server.log_json)
    supervisor = Supervisor(
        settings,
        args.processes,
        log_level=settings.server.log_level,
        process_main=faulty_process_main,
    )
    return supervisor.run()


if __name__ == "__main__":
    raise SystemExit(main())
