"""A spawned process that stops itself once the process that started it is gone.

`faceflow worker`'s worker processes and the HTTP workers of `faceflow serve --http-workers N`
are spawned by a supervisor that stops them (SIGTERM) when it stops. A supervisor that is
killed outright (``kill -9``, a service manager's last resort, the OOM killer) stops nothing:
its processes carried on unmanaged, each holding its models, stopped by nothing but their own
pids. The HTTP workers kept the port, so the server started again to replace them failed with
"Address already in use"; the queue workers kept taking jobs beside the ones started again.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


def stop_when_parent_is_gone(name: str, stopping: Callable[[], bool] = lambda: False) -> None:
    """Send this process SIGTERM, its own way to stop gracefully (a worker finishes its current
    job; an HTTP worker its requests), once the process that spawned it has exited. ``name``
    says which process this is in the log line. Nothing for a process not started by
    multiprocessing, nor if ``stopping()`` says it is stopping already: its parent, stopping
    it, sent the SIGTERM, and a second one more than a second later means "stop at once" to
    RQ (uvicorn takes it as the first): a supervisor killed while it waits for its workers must
    not cut their jobs short.

    Waits on the sentinel multiprocessing hands a spawned process (the end of a pipe that only
    the parent holds open), from a daemon thread: no polling, and a parent killed by any signal
    is seen at once."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()
        if stopping():
            # Said all the same: the operator learns why no supervisor reports its exit.
            log.warning(
                "%s: the process that started it (pid %s) is gone; it stops as that process asked",
                name,
                parent.pid,
            )
            return
        log.warning("%s: the process that started it (pid %s) is gone; stopping", name, parent.pid)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
