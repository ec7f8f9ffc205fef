"""Run a command and print the CPU time of it and of every process it started, however deep.

Usage: ``python scripts/cpu_time.py COMMAND [ARG...]``; prints one line on stderr and exits with
the command's code.

``time`` (and a shell's ``user``/``sys``) counts only the descendants their parents waited for:
Chromium's renderers and zygote, or a server's orphaned inference processes, are reparented to
init when their parent exits first, and their CPU is lost. Here this process is made a child
subreaper (Linux ``PR_SET_CHILD_SUBREAPER``): orphans are reparented to it, it reaps them, and
``RUSAGE_CHILDREN`` holds every process of the run (issue 12.7's A/B figures in scripts/test.sh).
"""

from __future__ import annotations

import ctypes
import os
import resource
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
# A descendant still running when the command has ended is waited for this long, then left.
ORPHAN_WAIT_S = 60.0


def reap_orphans(deadline: float) -> None:
    """Reap the orphans reparented here until none is left or ``deadline`` passes."""
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.2)


def main(command: list[str]) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    code = subprocess.call(command)  # noqa: S603 - the command line is the caller's own
    reap_orphans(time.monotonic() + ORPHAN_WAIT_S)
    wall = time.monotonic() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(
        f"cpu_time: exit {code}, wall {wall:.1f} s, user {usage.ru_utime:.1f} s,"
        f" sys {usage.ru_stime:.1f} s, total {usage.ru_utime + usage.ru_stime:.1f} s,"
        f" load {load_before:.2f} -> {os.getloadavg()[0]:.2f}",
        file=sys.stderr,
    )
    return code


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1:]))
