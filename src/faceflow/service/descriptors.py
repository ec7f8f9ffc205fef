"""The file descriptors an HTTP worker's connections take, against its open-file limit.

Each open connection is a descriptor of the HTTP worker process. ``server.max_connections``
(1,000) works by closing an idle connection when one more arrives, which needs the one more to
be accepted. A process whose soft ``RLIMIT_NOFILE`` is 1,024 (a shell's default; Docker's for a
container since Docker 25) runs out of descriptors first, with its inference processes' pipes
and its own files beside them: ``accept`` fails with ``EMFILE``, and uvloop (libuv) then accepts
and at once closes every connection waiting, to drain them. One client holding 1,100 idle
connections had 35 of 36 other clients' requests reset over 20 s (docs/performance.md, round
ten), the cap never reached. The cap must fit under the limit.
"""

from __future__ import annotations

import logging
import resource
from pathlib import Path

log = logging.getLogger(__name__)

HEADROOM = 128
"""Descriptors kept beside the connections for what a worker opens while it serves: the web
page's files, Redis connections (cache, rate limits, jobs), the pipes of an inference process
started in place of one that died."""


def open_descriptors() -> int:
    """The descriptors this process has open now (0 where the system does not list them)."""
    for listing in (Path("/proc/self/fd"), Path("/dev/fd")):
        try:
            # Less the one the listing itself holds open while it is read.
            return max(0, sum(1 for _ in listing.iterdir()) - 1)
        except OSError:
            continue
    return 0


def fit_connections(max_connections: int) -> int:
    """The connection cap this process can hold: ``max_connections`` when it fits beside the
    descriptors open now and :data:`HEADROOM` under the soft open-file limit, which is first
    raised as far as that needs (never past the hard limit, never lowered); else as many as
    fit, at least 1, with a warning naming the limit to raise."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    in_use = open_descriptors()
    needed = max_connections + in_use + HEADROOM
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return max_connections
    wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if wanted > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError) as exc:
            log.debug("could not raise the open-file limit to %d: %r", wanted, exc)
    if soft >= needed:
        return max_connections
    fitted = max(1, soft - in_use - HEADROOM)
    log.warning(
        "server.max_connections %d does not fit under this process's open-file limit (%d,"
        " %d in use): at most %d connections are kept open; raise the limit to %d or more"
        " (ulimit -n, systemd LimitNOFILE, docker --ulimit nofile)",
        max_connections,
        soft,
        in_use,
        fitted,
        needed,
    )
    return fitted
