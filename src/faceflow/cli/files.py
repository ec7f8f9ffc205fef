"""Running one task over many files: in this process, beside processes forked from it before
any model is loaded, or (where a fork is not safe) beside a pool of spawned processes."""

from __future__ import annotations

import contextlib
import functools
import gc
import glob
import logging
import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import sys
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Generic, NoReturn, TypeVar

from faceflow.cli.common import IMAGE_SUFFIXES, STDIN, Terminated, read_at_most
from faceflow.config import Settings
from faceflow.domain import Operation
from faceflow.errors import FaceflowError, InvalidParameter, TooLarge, WorkerCrashed
from faceflow.runtime.context import WorkerContext, load_context

if TYPE_CHECKING:  # the spawned pool is the fallback where no fork is safe (macOS, Windows)
    import asyncio

    from faceflow.runtime.pool import InferencePool

Req = TypeVar("Req")
Res = TypeVar("Res")

POOL_START_TIMEOUT_S = 180.0

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FileOutcome(Generic[Res]):
    """One file's result, or the typed error that stopped it."""

    path: Path
    result: Res | None
    error: FaceflowError | None


def _read(path: Path, max_bytes: int) -> bytes:
    """The file's bytes, refused past ``max_bytes`` (the server's upload limit) after reading
    one more. A 700 MB file was read whole, 942 MB of RSS, before the size check refused it; a
    FIFO without a writer hung the run in ``open`` (the files after it never read): it now
    reads as empty, while a pipe with a writer (``<(curl …)``) is read as before."""
    try:
        # Standard input is read where its file's task runs: by one process, once (a forked
        # worker inherits the descriptor; nothing was read from it before the fork).
        if path == STDIN:
            if sys.stdin is None:  # started with it closed (`<&-`): an AttributeError traceback
                raise InvalidParameter(f"cannot read {path}: standard input is closed")
            data = sys.stdin.buffer.read(max_bytes + 1)
        else:
            data = read_at_most(path, max_bytes)
    except FileNotFoundError as exc:
        # A glob that matched nothing is kept as its pattern (faceflow.cli.analyze.expand_paths):
        # "cannot read photos/*.JPG: No such file or directory" read as if '*' had been taken
        # as a file's name.
        if glob.has_magic(str(path)):
            raise InvalidParameter(f"no file matches {path}") from None
        raise InvalidParameter(f"cannot read {path}: {exc.strerror}") from None
    except IsADirectoryError:
        # A folder is an input only when no image file was found under it (expand_paths).
        raise InvalidParameter(
            f"no image file under {path} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})"
        ) from None
    except OSError as exc:
        raise InvalidParameter(f"cannot read {path}: {exc.strerror}") from None
    if len(data) > max_bytes:
        raise TooLarge(
            f"{path} is over the {max_bytes}-byte upload limit", {"limit_bytes": max_bytes}
        )
    return data


def _outcome(
    context: WorkerContext,
    path: Path,
    make_request: Callable[[bytes], Req],
    task: Callable[[WorkerContext, Req], Res],
) -> FileOutcome[Res]:
    try:
        data = _read(path, context.settings.limits.max_upload_bytes)
        return FileOutcome(path, task(context, make_request(data)), None)
    except FaceflowError as exc:
        return FileOutcome(path, None, exc)


def only(settings: Settings, operation: Operation) -> Settings:
    """``settings`` with ``runtime.operations`` narrowed to ``operation``: the processes of a
    command that runs one operation load its models only (`faceflow analyze` no u2netp, and no
    age, gender or dlib model for detection alone)."""
    # Validated, so an operation no process loads models for (a sheet) is refused here.
    runtime = type(settings.runtime).model_validate(
        {**settings.runtime.model_dump(), "operations": [operation.value]}
    )
    return settings.model_copy(update={"runtime": runtime})


def run_files(
    settings: Settings,
    paths: list[Path],
    make_request: Callable[[bytes], Req],
    task: Callable[[WorkerContext, Req], Res],
    workers: int,
    on_done: Callable[[FileOutcome[Res]], None],
) -> None:
    """``task(context, make_request(bytes))`` for every file; ``on_done`` sees each outcome once,
    in the order of ``paths`` whatever the number of workers.

    One worker: the models load here once and files run in order. More: this process forks
    ``workers - 1`` copies of itself before loading anything (see :func:`fork_refusal`), then
    each loads its models and takes files from the same counter; this process is one of the
    workers, and the copies start with every module already imported. Where a fork is not safe,
    this process works alone and starts ``workers - 1`` spawned inference processes only when the
    work left would pay for their start-up (see :data:`POOL_WORTH_S`), which then take files from
    the same queue beside it. So a pool never makes a batch slower than one worker. A file's error
    is its outcome; the others go on. Errors that stop everything (missing models) propagate.

    The processes load the models of ``settings.runtime.operations`` only: a caller running one
    operation narrows it to that one.

    SIGTERM stops the run as Ctrl-C does (:func:`_terminated_as_interrupt`).
    """
    with _terminated_as_interrupt():
        _run_files(settings, paths, make_request, task, workers, on_done)


@contextlib.contextmanager
def _terminated_as_interrupt() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` here while the files run, so that it unwinds the run
    as Ctrl-C does: a half-written output removed (no photo left without its report), the
    forked workers killed, then exit 143. By default SIGTERM (``timeout``, ``kill``, a CI
    job's cancel) ended the process where it stood: a photo could be left without its report,
    an output cut short, and each forked worker ran on, orphaned, to the end of its file.

    Only where a handler can be set (the main thread) and SIGTERM is not ignored (a caller
    that ignores it keeps that). A handler installed before (coverage's, which saves its data
    and dies of the signal again) is set aside for the run and put back after it: left in
    place, it ended the process where it stood, as the default did, and the exit through
    ``sys.exit`` runs the ``atexit`` work such handlers exist for."""
    before = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread() or before is signal.SIG_IGN:
        yield
        return

    def terminate(signum: int, _frame: object) -> None:
        raise Terminated(signum)

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def _run_files(
    settings: Settings,
    paths: list[Path],
    make_request: Callable[[bytes], Req],
    task: Callable[[WorkerContext, Req], Res],
    workers: int,
    on_done: Callable[[FileOutcome[Res]], None],
) -> None:
    if workers == 1:
        context = load_context(settings.model_dump_json())
        for path in paths:
            on_done(_outcome(context, path, make_request, task))
        return
    library_threads = _library_threads()
    refusal = fork_refusal(library_threads)
    in_order = _InOrder(paths, on_done)
    if refusal is None and len(paths) > 1:
        load = functools.partial(load_context, settings.model_dump_json())
        _run_forked(load, paths, make_request, task, min(workers, len(paths)) - 1, in_order)
        return
    context = load_context(settings.model_dump_json())
    if refusal is None:
        for index, path in enumerate(paths):
            in_order.add(index, _outcome(context, path, make_request, task))
        return
    log.info("not forking (%s): spawning the inference processes instead", refusal)
    # Imported here, as in the functions below: only this fallback runs an event loop, and
    # asyncio cost every other run ≈ 10 ms of CPU before its first file.
    import asyncio

    asyncio.run(_run_in_pool(settings, context, paths, make_request, task, workers, in_order))


class _InOrder(Generic[Res]):
    """Hands outcomes to ``on_done`` in the order of the files, whichever worker finished first
    (so ``--json`` prints the same lines in the same order with any number of workers); called
    from more than one thread beside a spawned pool (this process's worker thread and the
    pool's feeders), from the main thread alone beside forked workers.

    An exception from ``on_done`` (its output lost: ``| head -1``) is raised again by every
    later :meth:`add` and by :meth:`check`, so that it stops the run from whichever thread saw
    it first: raised in a thread of its own, it was a traceback on stderr while the run went on
    to its end."""

    def __init__(self, paths: list[Path], on_done: Callable[[FileOutcome[Res]], None]) -> None:
        self.paths = paths
        self._on_done = on_done
        self._next = 0
        self._held: dict[int, FileOutcome[Res]] = {}
        self._lock = threading.Lock()
        self._failure: BaseException | None = None

    def add(self, index: int, outcome: FileOutcome[Res]) -> None:
        with self._lock:
            self.check()
            self._held[index] = outcome
            while self._next in self._held:
                try:
                    self._on_done(self._held.pop(self._next))
                except BaseException as exc:
                    self._failure = exc
                    raise
                self._next += 1

    def check(self) -> None:
        """The exception ``on_done`` raised, if it did."""
        if self._failure is not None:
            raise self._failure

    def missing(self) -> list[int]:
        with self._lock:
            return [i for i in range(self._next, len(self.paths)) if i not in self._held]


def _threads() -> set[str] | None:
    """This process's threads (kernel task ids), None where they cannot be listed."""
    try:
        return {task.name for task in Path("/proc/self/task").iterdir()}
    except OSError:
        return None


def _library_threads() -> set[str] | None:
    """The threads this process has once the inference libraries are imported.

    numpy's and OpenCV's OpenBLAS each start a pool when imported (one thread on 2 cores), which
    OpenBLAS stops before a fork and restarts after it (its ``pthread_atfork`` handler), and
    onnxruntime starts one that waits on a timer; none holds anything a task needs. Threads
    beyond these (an onnxruntime session pool with ``intra_op_threads`` above 1, OpenCV's own
    pool) are started by loading or running models, and a fork would copy their locks, not them.
    """
    import cv2  # noqa: F401
    import numpy  # noqa: F401
    import onnxruntime  # noqa: F401

    return _threads()


def fork_refusal(library_threads: set[str] | None) -> str | None:
    """Why this process must not fork its workers now, None if it may.

    The workers are forked before any model is loaded, and each loads its own (no onnxruntime
    session crosses a fork: ../shared/DESIGN.md §5); what a child shares is the interpreter with
    its modules imported. A child copies only the thread that forks: a lock held by any other
    thread stays held in the child for ever. So no thread may exist beyond the ones
    the libraries start when imported (:func:`_library_threads`): no Python thread (a progress
    bar refreshed by one, an executor, a test runner's) and no native one started since.
    """
    if "fork" not in multiprocessing.get_all_start_methods():
        return "no fork on this platform"
    if threading.active_count() > 1:
        others = [t.name for t in threading.enumerate() if t is not threading.current_thread()]
        names = ", ".join(others)
        return f"other Python threads run: {names}"
    now = _threads()
    if now is None or library_threads is None:
        return "this process's threads cannot be listed"
    if started := now - library_threads:
        return f"{len(started)} native thread(s) started since the libraries were imported"
    return None


def _run_forked(
    load: Callable[[], WorkerContext],
    paths: list[Path],
    make_request: Callable[[bytes], Req],
    task: Callable[[WorkerContext, Req], Res],
    children: int,
    in_order: _InOrder[Res],
) -> None:
    """Fork ``children`` copies of this process, then each (this one too) loads its models with
    ``load`` and takes the next file from a shared counter until none is left. Each child sends
    its outcomes over its own pipe, read by a thread here (started after the forks) so a large
    result never waits for this process to finish a file of its own. A child that dies loses only
    the file it was on, reported as :class:`WorkerCrashed`; one left running when this process
    stops early is killed.

    The children's outcomes are handed to ``on_done`` by this thread, the main one, between its
    own files (and after its last, until the children are done), never by the reading thread:
    so a Ctrl-C or SIGTERM, raised in the main thread, stops the writing where it stands and
    its cleanups run (a file cut short removed, no photo left without its report), as with one
    worker, and nothing writes after it. Written by the reading thread, an outcome could be
    between a photo and its report when the interrupt ended the process, the photo left alone.
    """
    fork = multiprocessing.get_context("fork")
    counter = fork.Value("q", 0)

    def take() -> int:
        with counter.get_lock():
            index = int(counter.value)
            counter.value = index + 1
        return index

    parent = os.getpid()
    # Output this process has buffered would be written again by a child that flushed it.
    sys.stdout.flush()
    sys.stderr.flush()
    # Objects that exist now are never scanned by the children's collector, so the pages holding
    # them (every module imported) stay shared instead of being copied.
    gc.freeze()
    results: list[Connection] = []
    pids: list[int] = []
    finished = False
    try:
        for _ in range(children):
            reader, writer = fork.Pipe(duplex=False)
            with warnings.catch_warnings():
                # Python 3.12+ warns about any fork of a process with threads; the only ones
                # here are the libraries' own (fork_refusal checked).
                warnings.filterwarnings("ignore", ".*multi-threaded.*", DeprecationWarning)
                try:
                    pid = os.fork()
                except OSError as exc:  # out of processes or memory: go on with fewer workers
                    reader.close()
                    writer.close()
                    log.warning("cannot fork a worker (%s): %d at work", exc, len(pids) + 1)
                    break
            if pid == 0:
                for other in [reader, *results]:
                    other.close()
                _work_as_child(load, paths, take, make_request, task, writer, parent)
            writer.close()
            results.append(reader)
            pids.append(pid)
        gc.unfreeze()
        arrived: _Arrived[Res] = _Arrived(ARRIVED_PER_CHILD * len(pids))
        receiving = threading.Thread(
            target=_receive, args=(results, arrived), name="forked-results", daemon=True
        )
        receiving.start()
        context = load()
        while (index := take()) < len(paths):
            in_order.add(index, _outcome(context, paths[index], make_request, task))
            arrived.pass_on(in_order, wait=False)
        arrived.pass_on(in_order, wait=True)
        finished = True
    finally:
        gc.unfreeze()
        for pid in pids:
            if not finished:
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    for index in in_order.missing():
        crashed = WorkerCrashed("the process running this file exited before it finished")
        in_order.add(index, FileOutcome(paths[index], None, crashed))


def _work_as_child(
    load: Callable[[], WorkerContext],
    paths: list[Path],
    take: Callable[[], int],
    make_request: Callable[[bytes], Req],
    task: Callable[[WorkerContext, Req], Res],
    results: Connection,
    parent: int,
) -> NoReturn:
    """A forked worker's life: its own models loaded, files until none is left, then exit
    without running anything the parent set up for its own exit (atexit handlers, buffered
    output, the progress bar)."""
    code = 0
    try:
        # Ctrl-C reaches the whole process group: the parent decides, and kills its children.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # A SIGTERM to the group (`timeout` sends one) ends a child at once, as it always did:
        # the parent's handler, inherited, made it a "forked worker failed" traceback.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        # Anything a child writes (a library's warning) goes straight to the real stderr: never
        # into stdout, where --json prints data, nor through the parent's progress bar, which
        # wraps sys.stderr to draw itself below what is written.
        sys.stdout = sys.stderr = sys.__stderr__
        context = load()
        # Stop at the next file if the parent is gone (killed without a chance to kill this one).
        while os.getppid() == parent and (index := take()) < len(paths):
            results.send((index, _outcome(context, paths[index], make_request, task)))
    except BrokenPipeError:  # the parent stopped reading: it is exiting
        code = 1
    except BaseException:
        log.exception("a forked worker failed")
        code = 1
    finally:
        os._exit(code)


ARRIVED_PER_CHILD = 16
"""Outcomes read from a child and not yet handed on, at most, before it waits to send more: the
reading thread never stalls a child behind a file of the main thread's own, and a main thread
held up (by a slow reader of ``--json``) holds the children up rather than their outcomes
piling up in memory."""


class _Arrived(Generic[Res]):
    """The children's outcomes, from the thread reading their pipes to the main thread."""

    def __init__(self, most: int) -> None:
        self._queue: queue.Queue[tuple[int, FileOutcome[Res]] | None] = queue.Queue(most)
        self._complete = False

    def put(self, index: int, outcome: FileOutcome[Res]) -> None:
        self._queue.put((index, outcome))

    def close(self) -> None:
        """Every child has closed its pipe: no more outcomes."""
        self._queue.put(None)

    def pass_on(self, in_order: _InOrder[Res], *, wait: bool) -> None:
        """Hand the outcomes received to ``in_order``, in the calling thread; with ``wait``,
        every one until :meth:`close`."""
        while not self._complete:
            try:
                item = self._queue.get(block=wait)
            except queue.Empty:
                return
            if item is None:
                self._complete = True
            else:
                in_order.add(*item)


def _receive(results: list[Connection], arrived: _Arrived[Res]) -> None:
    """Pass the children's outcomes on until every child has closed its pipe."""
    live = list(results)
    try:
        while live:
            for ready in multiprocessing.connection.wait(live):
                assert isinstance(ready, Connection)
                try:
                    index, outcome = ready.recv()
                except EOFError:
                    live.remove(ready)
                    ready.close()
                    continue
                arrived.put(index, outcome)
    finally:
        arrived.close()


POOL_AFTER_S = 0.5
"""This process works alone this long (after loading its models) before a pool is considered,
to know its own pace; a batch done by then never pays for one."""
POOL_WORTH_S = 2.0
"""Work left, at this process's own pace, from which the inference processes are started. Each
spends about 1 s of a core starting (interpreter, imports, models, warm-up: `faceflow analyze`
loads no u2netp) while this process goes on; a pool started for less work than twice that
would finish after this process alone on a busy machine."""
_POLL_S = 0.05


@dataclass(slots=True)
class _Progress:
    """This process's own pace, for the decision to start a pool."""

    started_at: float | None = None
    """When its models were loaded (monotonic), None before."""
    done: int = 0

    def pool_pays(self, left: int, now: float) -> bool:
        if self.started_at is None or now - self.started_at < POOL_AFTER_S:
            return False
        per_file = (now - self.started_at) / max(self.done, 1)
        return left * per_file >= POOL_WORTH_S


async def _run_in_pool(
    settings: Settings,
    context: WorkerContext,
    paths: list[Path],
    make_request: Callable[[bytes], Req],
    task: Callable[[WorkerContext, Req], Res],
    workers: int,
    in_order: _InOrder[Res],
) -> None:
    import asyncio

    # popleft is atomic: this process's worker thread and the pool's feeders share it
    pending = deque(enumerate(paths))
    progress = _Progress()

    def work_here() -> None:
        """Run files in this process until none is left (the pool, once ready, takes some)."""
        progress.started_at = time.monotonic()
        while True:
            try:
                index, path = pending.popleft()
            except IndexError:
                return
            in_order.add(index, _outcome(context, path, make_request, task))
            progress.done += 1

    local = asyncio.create_task(asyncio.to_thread(work_here))
    while not local.done() and not progress.pool_pays(len(pending), time.monotonic()):
        await asyncio.wait({local}, timeout=_POLL_S)
    if not local.done():
        await _join_in(settings, workers - 1, pending, local, make_request, task, in_order)
    await local  # its last file, or its start-up error (missing models)


async def _join_in(
    settings: Settings,
    processes: int,
    pending: deque[tuple[int, Path]],
    local: asyncio.Task[None],
    make_request: Callable[[bytes], Req],
    task: Callable[[WorkerContext, Req], Res],
    in_order: _InOrder[Res],
) -> None:
    """Start ``processes`` inference processes while this process goes on; once they are ready
    they take files from ``pending`` beside it.

    Its processes keep this process's CPU priority: ``runtime.nice`` is for a server, where it
    keeps the API process responsive; here nothing needs that, and a lower priority only made
    the pool lose the cores to whatever else ran (304 photos, load average 3 from other work:
    2 workers 23–24 s against one worker's 14–17 s)."""
    # Imported here: every other run forks its workers, and this module costs each ≈ 15 ms of CPU
    # before its first file.
    import asyncio

    from faceflow.runtime.context import load_pool_context
    from faceflow.runtime.pool import InferencePool

    own_priority = settings.runtime.model_copy(update={"nice": 0})
    pool: InferencePool[WorkerContext] = InferencePool(
        processes=processes,
        max_waiting=processes,
        deadline_s=settings.runtime.deadline_s,
        init=load_pool_context,
        init_arg=settings.model_copy(update={"runtime": own_priority}).model_dump_json(),
    )

    async def feed_pool() -> None:
        while True:
            try:
                index, path = pending.popleft()
            except IndexError:
                return
            try:
                request = make_request(_read(path, settings.limits.max_upload_bytes))
                in_order.add(index, FileOutcome(path, await pool.run(task, request), None))
            except FaceflowError as exc:
                in_order.add(index, FileOutcome(path, None, exc))

    await pool.start()
    try:
        ready = asyncio.create_task(pool.wait_ready(timeout_s=POOL_START_TIMEOUT_S))
        await asyncio.wait({local, ready}, return_when=asyncio.FIRST_COMPLETED)
        if not local.done():
            try:
                await ready
            except FaceflowError:
                log.warning("inference processes did not start; working in this process alone")
            else:
                # Never more in flight than the pool admits (running + waiting): nothing is shed.
                await asyncio.gather(*(feed_pool() for _ in range(2 * processes)))
        ready.cancel()
    finally:
        await pool.close()
