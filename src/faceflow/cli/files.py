"""Running one task over many files, in this process or in a pool of spawned processes."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from faceflow.config import Settings
from faceflow.domain import Operation
from faceflow.errors import FaceflowError, InvalidParameter
from faceflow.runtime.context import WorkerContext, load_context, load_pool_context
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


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidParameter(f"cannot read {path}: {exc.strerror}") from None


def _outcome(
    context: WorkerContext,
    path: Path,
    make_request: Callable[[bytes], Req],
    task: Callable[[WorkerContext, Req], Res],
) -> FileOutcome[Res]:
    try:
        return FileOutcome(path, task(context, make_request(_read(path))), None)
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
    """``task(context, make_request(bytes))`` for every file; ``on_done`` sees each outcome once.

    One worker: the models load here once and files run in order. More: this process is one of
    the workers and starts on the files at once; the other ``workers - 1`` are inference
    processes, started only when the work left would pay for their start-up (see
    :data:`POOL_WORTH_S`), which then take files from the same queue beside this process until
    none is left, outcomes arriving as they complete. So a pool never makes a batch slower than
    one worker, and no worker's models are loaded for nothing. A file's error is its outcome;
    the others go on. Errors that stop everything (missing models) propagate.

    The processes load the models of ``settings.runtime.operations`` only: a caller running one
    operation narrows it to that one.
    """
    if workers == 1:
        context = load_context(settings.model_dump_json())
        for path in paths:
            on_done(_outcome(context, path, make_request, task))
        return
    asyncio.run(_run_in_pool(settings, paths, make_request, task, workers, on_done))


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
    paths: list[Path],
    make_request: Callable[[bytes], Req],
    task: Callable[[WorkerContext, Req], Res],
    workers: int,
    on_done: Callable[[FileOutcome[Res]], None],
) -> None:
    pending = deque(paths)  # popleft is atomic: this thread and the pool's feeders share it
    reported = threading.Lock()  # outcomes come from the local thread and the event loop
    progress = _Progress()

    def report(outcome: FileOutcome[Res]) -> None:
        with reported:
            on_done(outcome)

    def work_here() -> None:
        """Run files in this process until none is left (the pool, once ready, takes some)."""
        context = load_context(settings.model_dump_json())
        progress.started_at = time.monotonic()
        while True:
            try:
                path = pending.popleft()
            except IndexError:
                return
            report(_outcome(context, path, make_request, task))
            progress.done += 1

    local = asyncio.create_task(asyncio.to_thread(work_here))
    while not local.done() and not progress.pool_pays(len(pending), time.monotonic()):
        await asyncio.wait({local}, timeout=_POLL_S)
    if not local.done():
        await _join_in(settings, workers - 1, pending, local, make_request, task, report)
    await local  # its last file, or its start-up error (missing models)


async def _join_in(
    settings: Settings,
    processes: int,
    pending: deque[Path],
    local: asyncio.Task[None],
    make_request: Callable[[bytes], Req],
    task: Callable[[WorkerContext, Req], Res],
    report: Callable[[FileOutcome[Res]], None],
) -> None:
    """Start ``processes`` inference processes while this process goes on; once they are ready
    they take files from ``pending`` beside it.

    Its processes keep this process's CPU priority: ``runtime.nice`` is for a server, where it
    keeps the API process responsive; here nothing needs that, and a lower priority only made
    the pool lose the cores to whatever else ran (304 photos, load average 3 from other work:
    2 workers 23–24 s against one worker's 14–17 s)."""
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
                path = pending.popleft()
            except IndexError:
                return
            try:
                request = make_request(_read(path))
                report(FileOutcome(path, await pool.run(task, request), None))
            except FaceflowError as exc:
                report(FileOutcome(path, None, exc))

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
