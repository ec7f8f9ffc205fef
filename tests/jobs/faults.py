"""A ``faceflow worker`` whose jobs can be told to hold or to crash: test and benchmark code only.

Run as ``python -m tests.jobs.faults -n N`` from the repository root (settings from the
environment, as ``faceflow worker``). It is the real supervisor and the real worker processes;
the only difference is a ``before_job`` callable injected in code: a job whose image bytes
contain :data:`HOLD_MARKER` sleeps :data:`HOLD_S` first (so a test can kill the worker mid-job),
and one containing :data:`CRASH_MARKER` kills its own worker process with SIGKILL on every
attempt (a poison job). No setting can switch this on in a production worker.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import time
from multiprocessing.synchronize import Event

from faceflow.config import load_settings
from faceflow.jobs.records import JobPayload
from faceflow.jobs.supervisor import Supervisor, worker_process_main
from faceflow.service.logs import configure_logging

HOLD_MARKER = b"FF-HOLD"
CRASH_MARKER = b"FF-CRASH"
HOLD_S = 4.0

log = logging.getLogger(__name__)


def inject_faults(payload: JobPayload) -> None:
    """Hold or crash according to the markers in the job's image bytes."""
    if HOLD_MARKER in payload.data:
        log.warning("hold marker: sleeping %.1f s", HOLD_S)
        time.sleep(HOLD_S)
    if CRASH_MARKER in payload.data:
        log.warning("crash marker: killing this worker process (pid %d)", os.getpid())
        os.kill(os.getpid(), signal.SIGKILL)


def faulty_process_main(settings_json: str, slot: int, ready: Event, log_level: str) -> None:
    """A worker process entry point (importable by name, as spawn needs) with the faults on."""
    worker_process_main(settings_json, slot, ready, log_level, before_job=inject_faults)


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
