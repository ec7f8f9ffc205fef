"""The child side of the inference pool: the worker process's entry point and its messages.

One worker serves one task at a time over one duplex pipe, strictly request then reply:

* parent → child: a pickled ``(seq, fn, request)`` tuple, or :data:`STOP` (empty bytes) to exit
  after the current task;
* child → parent: one :class:`Ready` or :class:`InitFailed` after start-up, then exactly one
  :class:`TaskOk` or :class:`TaskFailed` per task.

Cancelling: besides the pipe, each worker shares one integer with its parent, the ``cancel`` cell.
The parent writes a task's ``seq`` into it when that task's caller has given up (its deadline
passed, or it was cancelled); a task calls :func:`checkpoint` between its stages, which raises
:class:`~faceflow.errors.DeadlineExceeded` when the running task's ``seq`` is the one written, so
the worker is free again within one stage. A task that never reaches a checkpoint is killed by
the parent after a grace period. Using a seq, not a flag, means a late write can never stop the
next task.

Memory: after a task's reply is sent, a worker that has grown more than a few MB past its size
after warm-up gives its free heap back (:class:`~faceflow.runtime.heap.HeapKeeper`), so what it
holds between tasks does not depend on which photos it happened to be sent; and a worker left
with nothing to do for :data:`~faceflow.runtime.heap.IDLE_TRIM_S` gives back the rest.

This module imports only the standard library, :mod:`faceflow.errors` and
:mod:`faceflow.runtime.heap` (standard library only): a spawned child loads
the heavy libraries (numpy, onnxruntime, OpenCV) only through the modules ``init`` and the tasks
come from.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import NamedTuple, Protocol, cast

from faceflow.errors import DeadlineExceeded, FaceflowError, JsonScalar, RetryableError
from faceflow.runtime.heap import IDLE_TRIM_S, HeapKeeper

STOP = b""
"""Asks a worker to exit once idle. No pickle is empty, so it cannot be mistaken for a task."""

_PROTOCOL = pickle.HIGHEST_PROTOCOL

_log = logging.getLogger("faceflow.runtime.pool")


class CancelCell(Protocol):
    """A shared integer (``multiprocessing`` ``RawValue('q')``): the seq of a task to stop."""

    value: int


@dataclass(slots=True)
class _Running:
    """What this worker process runs now; set by :func:`_run_one`, read by :func:`checkpoint`.

    Process-local state of the worker loop (one task at a time), not configuration: the
    tasks' own code stays free of any pool plumbing except the :func:`checkpoint` call."""

    cancel: CancelCell | None = None
    seq: int = 0


_running = _Running()


def checkpoint() -> None:
    """Stop here if the caller of the running task has given up (raises DeadlineExceeded).

    Tasks call it between stages. Outside a pool worker (the CLI in-process, an RQ worker, a
    test) it does nothing.
    """
    cancel = _running.cancel
    if cancel is not None and _running.seq and cancel.value == _running.seq:
        raise DeadlineExceeded("the task was stopped: its caller gave up waiting for it")


class Ready(NamedTuple):
    """The worker built its context and warmed up; it now waits for tasks."""

    pid: int


class InitFailed(NamedTuple):
    """The context factory or the warm-up raised; the worker exits after sending this."""

    code: str
    message: str
    details: dict[str, JsonScalar]


class TaskOk(NamedTuple):
    value: object


class TaskFailed(NamedTuple):
    """A task raised. ``code`` is a :class:`FaceflowError` code; ``internal`` for anything else."""

    code: str
    message: str
    details: dict[str, JsonScalar]


Message = Ready | InitFailed | TaskOk | TaskFailed


def task_name(fn: object) -> str:
    """A short, stable name for a task function, for logs and metrics labels."""
    return str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn))


def child_main(
    conn: Connection,
    slot: int,
    setup: bytes,
    cancel: CancelCell | None = None,
) -> None:
    """Entry point of a spawned worker process.

    ``cancel`` is the cell the parent writes the seq of a task to stop into (see the module doc).
    ``setup`` is the pickled ``(init, init_arg, warmup)``. Thread counts are not this function's
    business: the context factory sets them (onnxruntime ``intra_op_num_threads``,
    ``cv2.setNumThreads``), because the design is one thread per process with ``processes`` =
    cores.

    SIGINT and SIGTERM are ignored: Ctrl-C reaches the whole process group, and so does the
    SIGTERM of ``kill -- -PGID`` or of a service manager stopping a control group; shutting
    workers down is the parent's job (:meth:`InferencePool.close`: a stop message, then SIGKILL
    for one that does not stop), not a KeyboardInterrupt in the middle of a task, nor a death
    the pool would answer with a replacement while the server stops.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _running.cancel = cancel
    try:
        init, init_arg, warmup = cast(
            "tuple[Callable[[object], object], object, Callable[[object], object] | None]",
            pickle.loads(setup),  # noqa: S301 - written by our own parent process
        )
        context = init(init_arg)
        if warmup is not None:
            warmup(context)
    except BaseException as exc:
        # BaseException too: a SystemExit in a factory is reported, not taken for a crash.
        if isinstance(exc, FaceflowError):
            failure = InitFailed(exc.code, exc.message, dict(exc.details))
        else:
            _log.exception("worker %d: start-up failed", slot)
            failure = InitFailed(
                "internal", f"worker start-up failed: {type(exc).__name__}: {exc}", {}
            )
        _send(conn, failure)
        return
    _send(conn, Ready(os.getpid()))
    _serve(conn, context)


def _serve(conn: Connection, context: object) -> None:
    heap = HeapKeeper()
    while True:
        try:
            # A poll only while the last task left heap to give back: then, if no task comes
            # for a while, this process gives it back before it waits on.
            if heap.idle_trim_due and not conn.poll(IDLE_TRIM_S):
                heap.idle()
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return  # The parent is gone: nobody is left to answer.
        if data == STOP:
            return
        if not _send(conn, _run_one(context, data)):
            return
        # After the reply, not before: the caller has its answer while this process trims.
        heap.after_task()


def _run_one(context: object, data: bytes) -> bytes:
    """Run one task and return the pickled reply; never raises for a task's own failure."""
    fn: object = "<undecodable task>"
    try:
        seq, fn, request = cast(
            "tuple[int, Callable[[object, object], object], object]",
            pickle.loads(data),  # noqa: S301 - written by our own parent process
        )
        _running.seq = seq
        checkpoint()  # given up on while its payload was on the way
        result = fn(context, request)
        return pickle.dumps(TaskOk(result), protocol=_PROTOCOL)
    except FaceflowError as exc:
        details = dict(exc.details)
        if isinstance(exc, RetryableError):
            # error_from_code reads it back from the details on the other side.
            details.setdefault("retry_after_s", exc.retry_after_s)
        return _encode_failure(TaskFailed(exc.code, exc.message, details))
    except Exception as exc:
        # The traceback stays in this process's log; the caller gets a plain 500 without it.
        _log.exception("task %s failed", task_name(fn))
        return _encode_failure(
            TaskFailed("internal", f"task {task_name(fn)} failed ({type(exc).__name__})", {})
        )
    finally:
        _running.seq = 0


def _encode_failure(failure: TaskFailed) -> bytes:
    try:
        return pickle.dumps(failure, protocol=_PROTOCOL)
    except Exception:
        # Details are meant to be JSON scalars; drop them if something unpicklable got in.
        return pickle.dumps(failure._replace(details={}), protocol=_PROTOCOL)


def _send(conn: Connection, reply: Message | bytes) -> bool:
    """Send a reply; False when the parent has gone away."""
    payload = reply if isinstance(reply, bytes) else pickle.dumps(reply, protocol=_PROTOCOL)
    try:
        conn.send_bytes(payload)
    except OSError:
        return False
    return True
