"""Standard output that says when what is written to it is lost.

A command's result (the analysis table, ``--json`` lines, the model list, bench's figures) is
what it writes to standard output. Started with it closed (``>&-``), Python sets ``sys.stdout``
to None, and rich and click both write to nothing: `faceflow analyze --json x.jpg >&-` exited
0 with its output gone. A full disk (``> /dev/full``) ended in an OSError traceback, and a
reader that stopped early (``| head -1``) in click's silent exit 1, indistinguishable from "a
file failed". :func:`guard` wraps ``sys.stdout`` so that any failed write or flush raises
:class:`OutputLost`, which the entry point turns into one line on stderr (or, for a broken pipe,
the exit status of a Unix tool killed by SIGPIPE).
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path
from typing import IO, Any

BROKEN_PIPE_STATUS = 128 + 13
"""The exit status of a broken pipe: what the shell reports for a tool killed by SIGPIPE
(`yes | head -1`), so `set -o pipefail` and callers tell it from a file that failed (1). The
process exits normally, not by the signal: its cleanups (a half-written output removed, forked
workers stopped) still run."""
LOST_STATUS = 1
"""The exit status when standard output is closed or cannot be written (a full disk)."""


class OutputLost(Exception):
    """Standard output could not be written: closed, full, or its reader gone (``errno``).

    Not an OSError: click takes an OSError of EPIPE as its own, exiting 1 without a word, and
    the commands' own ``except OSError`` (around the files they write) must not take it as
    theirs."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.errno = code
        self.reason = reason


class _Guarded:
    """``sys.stdout`` as it was (or None when closed), each write and flush raising
    :class:`OutputLost` if it fails; every other attribute is the stream's."""

    def __init__(self, stream: IO[str] | None) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        stream = self._open()
        try:
            return stream.write(text)
        except OSError as exc:
            raise _lost(exc) from None

    def flush(self) -> None:
        stream = self._stream
        if stream is None:  # nothing was written (a write raised): nothing is lost by this
            return
        try:
            stream.flush()
        except OSError as exc:
            raise _lost(exc) from None

    def isatty(self) -> bool:
        return self._stream is not None and self._stream.isatty()

    def _open(self) -> IO[str]:
        if self._stream is None:
            raise OutputLost(errno.EBADF, "standard output is closed")
        return self._stream

    def __getattr__(self, name: str) -> Any:
        return getattr(self._open(), name)


def _lost(exc: OSError) -> OutputLost:
    code = exc.errno or errno.EIO
    return OutputLost(code, exc.strerror or os.strerror(code))


def guard() -> None:
    """Wrap ``sys.stdout`` (see the module's docstring); done once, by the entry point."""
    if not isinstance(sys.stdout, _Guarded):
        sys.stdout = _Guarded(sys.stdout)


def closed() -> bool:
    """Whether standard output was closed when the command started (``>&-``)."""
    return sys.stdout is None or (isinstance(sys.stdout, _Guarded) and sys.stdout._stream is None)


def check() -> None:
    """OutputLost now if standard output is closed: for a command whose whole result is printed
    at its end, so that no work is done for nothing."""
    if closed():
        raise OutputLost(errno.EBADF, "standard output is closed")


def fill_closed_descriptors() -> None:
    """Open /dev/null on standard input, output and error where the command was started with
    them closed (``<&-``, ``>&-``, ``2>&-``); the entry point's first step.

    A closed descriptor is the next one a file or pipe gets: a forked worker's results pipe, the
    workers' shared counter, an ID photo being written could be descriptor 1 or 2, and what a
    library writes to standard output or error below Python (onnxruntime's and OpenCV's
    warnings) would land in it. ``sys.stdin`` and ``sys.stdout`` stay None, so reading ``-``
    and printing a result still say the stream is closed. ``sys.stderr`` becomes /dev/null: a
    command with standard error closed runs as with ``2>/dev/null``, its errors lost (its
    caller closed where they go) and its exit status the same. Left None, it was a traceback
    into nowhere: ``analyze --workers 2`` flushed it before forking (AttributeError), and
    exited 1 with nothing printed, its results lost with its errors."""
    for descriptor in (0, 1, 2):
        try:
            os.fstat(descriptor)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)  # the lowest free: this one, 0 and 1 being open
            if null != descriptor:
                os.dup2(null, descriptor)
                os.close(null)
            os.set_inheritable(descriptor, True)  # as the shell's are, for any process started
    if sys.stderr is None:
        sys.stderr = open(2, "w", errors="backslashreplace", closefd=False)  # noqa: SIM115


def lost(exc: OutputLost) -> int:
    """Report ``exc`` as Unix tools do and return the exit status: nothing for a broken pipe
    (the reader stopped on purpose), else one line on stderr. Standard output is then pointed
    at /dev/null, so that what is still buffered for it is not written again at exit (Python's
    own "Exception ignored … BrokenPipeError" lines)."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)  # descriptor 1 itself if it was closed
        if null != 1:
            os.dup2(null, 1)
            os.close(null)
    except OSError:
        pass
    # Flushed at exit by Python: into /dev/null now, without raising again.
    sys.stdout = sys.__stdout__ or Path(os.devnull).open("w")  # noqa: SIM115 - kept to the exit
    if exc.errno == errno.EPIPE:
        return BROKEN_PIPE_STATUS
    if sys.stderr is not None:
        sys.stderr.write(f"error: cannot write to standard output: {exc.reason}\n")
        sys.stderr.flush()
    return LOST_STATUS
