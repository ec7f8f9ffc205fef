"""Log set-up for faceflow's long-running processes (`faceflow serve`, `faceflow worker` and its
worker processes): readable lines by default, one JSON object per line on request."""

from __future__ import annotations

import json
import logging
import time

_EXTRA_FIELDS = ("request_id", "client", "status", "route", "ms", "error_code")


def printable(text: str) -> str:
    """``text`` with every character that is not printable (a newline, an escape) written as its
    Python escape (``\\n``, ``\\x1b``): lines carry what clients send (a request's path is
    percent-decoded), and a ``%0A`` in it wrote a second, forged line into the log."""
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text
    )


class TextFormatter(logging.Formatter):
    """The readable format, one line per message whatever the message holds (a traceback after
    it keeps its lines)."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        record.message = printable(record.message)
        return super().formatMessage(record)


class JsonFormatter(logging.Formatter):
    def __init__(self, process: str | None = None) -> None:
        super().__init__()
        self._process = process

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self._process is not None:
            entry["process"] = self._process
        for name in _EXTRA_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str, as_json: bool, process: str | None = None) -> None:
    """Root logging for a process; replaces earlier handlers. ``process`` names one of several
    processes writing to the same output (``worker-0``), in each line."""
    handler = logging.StreamHandler()
    if as_json:
        handler.setFormatter(JsonFormatter(process))
    else:
        name = f"{process} " if process else ""
        handler.setFormatter(
            TextFormatter(f"%(asctime)s %(levelname)-7s {name}%(name)s: %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's own access log would duplicate ours (which carries the request id).
    logging.getLogger("uvicorn.access").disabled = True
    rq_worker = logging.getLogger("rq.worker")
    if not any(isinstance(f, RoutineAtDebug) for f in rq_worker.filters):
        rq_worker.addFilter(RoutineAtDebug())


class RoutineAtDebug(logging.Filter):
    """RQ's line for each maintenance pass, logged at info every few seconds all day by some
    worker (``jobs.maintenance_interval_s``: two lines a pass, ~35,000 a day), as debug: shown
    only when the level is debug. The lines that say something (a job taken, done, failed) stay.
    """

    ROUTINE = frozenset(
        {"Worker %s: cleaning registries for queue: %s", "Worker %s: cleaning group registries"}
    )

    def filter(self, record: logging.LogRecord) -> bool:
        if not (isinstance(record.msg, str) and record.msg in self.ROUTINE):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(logging.DEBUG)
